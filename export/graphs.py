"""The computations that get exported, as ``nn.Module`` wrappers around the planner's stage functions.

Each wrapper's ``forward`` is one call of ``wm_control.planning.solve`` (the code the training agent
and the torch runtime run), so an exported graph is the training-time planner traced, not a
re-implementation. All random draws are inputs, which makes every graph a deterministic function that
can be compared with torch on identical inputs. Input and output names are
``wm_control.runtime.graph_backend.GRAPH_IO`` (the runtimes bind by name).

- ``PolicyGraph``: obs ``(B, O)`` -> action ``(B, A)`` (policy-prior mean).
- ``PlannerGraph``: one full MPPI solve.
- ``PlannerInitGraph`` + ``PlannerStepGraph``: the same solve split into an encode/prior stage and
  one graph per iteration, so a controller can stop between iterations when its budget runs out.
"""

from __future__ import annotations

from torch import Tensor, nn

from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.solve import PlanNoise, plan_init, plan_step, policy_action, solve

__all__ = ["PlannerGraph", "PlannerInitGraph", "PlannerStepGraph", "PolicyGraph"]


class PolicyGraph(nn.Module):
    """Deterministic policy prior (``policy_action``)."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, obs: Tensor) -> Tensor:  # noqa: D102
        return policy_action(self.model, obs, self.model.cfg.action_dim)


class PlannerGraph(nn.Module):
    """One MPPI solve (``solve``): ``obs (O,)``, warm start ``mean (H, A)``, the draws of ``PlanNoise``
    and an ``explore_scale`` scalar (0 in evaluation) -> action ``(A,)``, shifted warm start ``(H, A)``,
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
        noise = PlanNoise(pi_eps, samples, value_eps, q_heads, gumbel, explore)
        r = solve(self.model, self.model.encode(obs), mean, self.cfg, noise, explore_scale)
        return r.action, r.state.mean, r.info.elite_value_mean, r.info.elite_value_std, r.info.std


class PlannerInitGraph(nn.Module):
    """``plan_init``: ``obs (O,)``, ``pi_eps (H, P, A)`` -> latent ``z (dz,)`` and prior ``(H, P, A)``."""

    def __init__(self, model: WorldModel, cfg: MppiConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, obs: Tensor, pi_eps: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        return plan_init(self.model, obs, pi_eps, self.cfg)


class PlannerStepGraph(nn.Module):
    """``plan_step``: state ``(z, prior, mean, std)`` plus one iteration's draws -> refit mean and std,
    the action this iteration would execute, and the elite value statistics.
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
        return tuple(
            plan_step(
                self.model, z, prior, mean, std, samples, value_eps, q_heads, gumbel, explore, explore_scale, self.cfg
            )
        )  # type: ignore[return-value]
