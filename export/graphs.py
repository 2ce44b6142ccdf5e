"""The computations that get exported, as ``nn.Module`` wrappers around the library functions.

Each wrapper calls the same code the torch runtime runs (``WorldModel``, ``wm_control.planning``),
so an exported graph is the training-time planner, not a re-implementation. All random draws are
inputs, which makes every graph a deterministic function that can be compared bit for bit with torch.

- ``PolicyGraph``: obs ``(B, O)`` -> action ``(B, A)`` (policy-prior mean).
- ``PlannerGraph``: one full MPPI solve.
- ``PlannerInitGraph`` + ``PlannerStepGraph``: the same solve split into an encode/prior stage and
  one graph per iteration, so a controller can stop between iterations when its budget runs out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wm_control.model.world_model import WorldModel
from wm_control.planning.mppi import MppiConfig, mppi_iteration, policy_trajectories, select_action, shift

__all__ = ["PlannerGraph", "PlannerInitGraph", "PlannerStepGraph", "PolicyGraph", "io_names"]


def io_names() -> dict[str, tuple[list[str], list[str]]]:
    """Input and output names of every graph (the runtime binds by name)."""
    return {
        "policy": (["obs"], ["action"]),
        "planner": (
            ["obs", "mean", "pi_eps", "samples", "value_eps", "q_heads", "gumbel", "explore", "explore_scale"],
            ["action", "next_mean", "elite_value_mean", "elite_value_std", "std"],
        ),
        "planner_init": (["obs", "pi_eps"], ["z", "prior"]),
        "planner_step": (
            ["z", "prior", "mean", "std", "samples", "value_eps", "q_heads", "gumbel", "explore", "explore_scale"],
            ["next_mean_unshifted", "next_std", "action", "elite_value_mean", "elite_value_std"],
        ),
    }


class PolicyGraph(nn.Module):
    """Deterministic policy prior: ``tanh(mu(encode(obs)))``."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, obs: Tensor) -> Tensor:  # noqa: D102
        z = self.model.encode(obs)
        return self.model.policy(z, torch.zeros(obs.shape[0], self.model.cfg.action_dim, dtype=obs.dtype))


class PlannerGraph(nn.Module):
    """One MPPI solve: ``obs (O,)``, warm start ``mean (H, A)``, the noise of ``PlanNoise`` and an
    ``explore_scale`` scalar (0 in evaluation) -> action ``(A,)``, shifted warm start ``(H, A)``,
    elite value mean and std, and the final std of the first action ``(A,)``.
    """

    def __init__(self, model: WorldModel, cfg: MppiConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(  # noqa: D102
        self,
        obs: Tensor,
        mean: Tensor,
        pi_eps: Tensor,
        samples: Tensor,
        value_eps: Tensor,
        q_heads: Tensor,
        gumbel: Tensor,
        explore: Tensor,
        explore_scale: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        cfg = self.cfg
        z = self.model.encode(obs)
        prior = policy_trajectories(self.model, z, cfg, pi_eps)
        std = torch.full_like(mean, cfg.max_std)
        result = None
        for i in range(cfg.iterations):
            result = mppi_iteration(self.model, z, prior, mean, std, samples[i], value_eps[i], q_heads[i], cfg)
            mean, std = result.mean, result.std
        assert result is not None
        action = select_action(result, gumbel, explore, explore_scale)
        return action, shift(result.mean), result.elite_value.mean(), result.elite_value.std(), result.std[0]


class PlannerInitGraph(nn.Module):
    """``obs (O,)``, ``pi_eps (H, P, A)`` -> latent ``z (dz,)`` and the prior trajectories ``(H, P, A)``."""

    def __init__(self, model: WorldModel, cfg: MppiConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, obs: Tensor, pi_eps: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        z = self.model.encode(obs)
        return z, policy_trajectories(self.model, z, self.cfg, pi_eps)


class PlannerStepGraph(nn.Module):
    """One MPPI iteration with its candidate action: state ``(z, prior, mean, std)`` plus one
    iteration's noise -> refit mean and std, the action this iteration would execute (Gumbel pick +
    exploration), and the elite value statistics. Calling it ``iterations`` times and shifting the
    last mean reproduces ``PlannerGraph``.
    """

    def __init__(self, model: WorldModel, cfg: MppiConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(  # noqa: D102
        self,
        z: Tensor,
        prior: Tensor,
        mean: Tensor,
        std: Tensor,
        samples: Tensor,
        value_eps: Tensor,
        q_heads: Tensor,
        gumbel: Tensor,
        explore: Tensor,
        explore_scale: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        result = mppi_iteration(self.model, z, prior, mean, std, samples, value_eps, q_heads, self.cfg)
        action = select_action(result, gumbel, explore, explore_scale)
        return result.mean, result.std, action, result.elite_value.mean(), result.elite_value.std()
