"""The MPPI solve as pure functions: the one driver that training, the torch runtime and the exported
graphs all run.

``plan`` takes the warm-start state and every random draw as arguments and returns the action and
the next warm-start state; it never touches global RNG state or mutates its inputs, so the same
inputs give the same plan in torch, ONNX Runtime and TensorRT.

The four stages mirror the calls of a deployed model (``wm_control.runtime.backend.Backend``), and
the exported graphs are these functions traced (``export/graphs.py``):

- ``policy_action(model, obs, action_dim)``: the policy prior's deterministic action (the cheap
  fallback);
- ``solve(model, z, mean, cfg, noise, explore_scale)``: one complete solve (``plan`` checks shapes
  and calls it);
- ``plan_init`` + ``plan_step``: the same solve split per iteration, so a deadline-aware loop can
  stop between iterations and keep the best-so-far action. ``plan_init`` then ``iterations`` calls
  of ``plan_step`` and a ``shift`` of the last mean reproduce ``solve``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from wm_control.errors import InputError
from wm_control.model.protocol import LatentModel
from wm_control.planning.config import MppiConfig, noise_shapes, shift
from wm_control.planning.mppi import IterationResult, mppi_iteration, policy_trajectories, select_action

__all__ = [
    "PlanInfo",
    "PlanNoise",
    "PlanResult",
    "PlanState",
    "StepResult",
    "check_plan_inputs",
    "draw_noise",
    "iterate",
    "plan",
    "plan_init",
    "plan_step",
    "policy_action",
    "solve",
]


class PlanState(NamedTuple):
    """Warm start carried between ticks: the mean action sequence ``(H, A)`` in [-1, 1], already
    shifted by one step (zeros at the start of an episode).
    """

    mean: Tensor

    @staticmethod
    def zeros(
        cfg: MppiConfig, action_dim: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> PlanState:
        """Cold start."""
        return PlanState(torch.zeros(cfg.horizon, action_dim, device=device, dtype=dtype))


class PlanNoise(NamedTuple):
    """Every random draw of one solve, with the shapes of ``noise_shapes`` (``q_heads`` long).

    All Gaussian draws are standard normal; gumbel is standard Gumbel, one variate per sample (indexed
    by sample, not by rank, so the pick does not depend on how a runtime orders tied elites).
    """

    pi_eps: Tensor
    samples: Tensor
    value_eps: Tensor
    q_heads: Tensor
    gumbel: Tensor
    explore: Tensor


class PlanInfo(NamedTuple):
    """Diagnostics of a solve: mean and std of the elite values of the last iteration, and the final
    sampling std of the first action ``(A,)``.
    """

    elite_value_mean: Tensor
    elite_value_std: Tensor
    std: Tensor


class PlanResult(NamedTuple):
    """Action ``(A,)`` in [-1, 1], the next warm-start state, and diagnostics."""

    action: Tensor
    state: PlanState
    info: PlanInfo


class StepResult(NamedTuple):
    """One iteration of a split solve: the refit (unshifted) mean and std ``(H, A)``, the action this
    iteration would execute ``(A,)``, and the elite value mean and std (scalars).
    """

    mean: Tensor
    std: Tensor
    action: Tensor
    elite_value_mean: Tensor
    elite_value_std: Tensor


def draw_noise(
    cfg: MppiConfig,
    action_dim: int,
    num_q: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PlanNoise:
    """Draw the noise of one solve from ``generator`` (on ``device``), in the shapes of ``noise_shapes``."""
    shapes = noise_shapes(cfg, action_dim)

    def normal(name: str) -> Tensor:
        return torch.randn(*shapes[name], generator=generator, device=device, dtype=dtype)

    heads = torch.stack([torch.randperm(num_q, generator=generator, device=device)[:2] for _ in range(cfg.iterations)])
    uniform = torch.rand(*shapes["gumbel"], generator=generator, device=device, dtype=dtype).clamp_(1e-20, 1.0 - 1e-7)
    return PlanNoise(
        pi_eps=normal("pi_eps"),
        samples=normal("samples"),
        value_eps=normal("value_eps"),
        q_heads=heads,
        gumbel=-torch.log(-torch.log(uniform)),
        explore=normal("explore"),
    )


def check_plan_inputs(z: Tensor, state: PlanState, cfg: MppiConfig, noise: PlanNoise) -> None:
    """Raise ``InputError`` naming the first input of ``plan`` whose shape does not fit ``cfg``."""
    if z.ndim != 1:
        raise InputError(f"plan: z has shape {tuple(z.shape)}; expected (latent_dim,)")
    A = state.mean.shape[-1]
    if tuple(state.mean.shape) != (cfg.horizon, A):
        raise InputError(f"plan: state.mean has shape {tuple(state.mean.shape)}; expected {(cfg.horizon, A)}")
    for name, shape in noise_shapes(cfg, A).items():
        t = getattr(noise, name)
        if tuple(t.shape) != shape:
            raise InputError(f"plan: noise.{name} has shape {tuple(t.shape)}; expected {shape}")


def iterate(
    model: LatentModel, z: Tensor, prior: Tensor, mean: Tensor, cfg: MppiConfig, noise: PlanNoise
) -> Iterator[IterationResult]:
    """The ``cfg.iterations`` refits of one solve from warm start ``mean (H, A)`` (initial std
    ``max_std``), each yielded as it is computed.
    """
    std = torch.full_like(mean, cfg.max_std)
    for i in range(cfg.iterations):
        result = mppi_iteration(model, z, prior, mean, std, noise.samples[i], noise.value_eps[i], noise.q_heads[i], cfg)
        yield result
        mean, std = result.mean, result.std


def solve(
    model: LatentModel, z: Tensor, mean: Tensor, cfg: MppiConfig, noise: PlanNoise, explore_scale: float | Tensor
) -> PlanResult:
    """One complete MPPI solve from latent ``z (dz,)`` and warm start ``mean (H, A)``.

    The executed action is the first action of an elite drawn by Gumbel-max, plus
    ``explore_scale * std * noise.explore`` (0 in evaluation and on a robot).
    """
    prior = policy_trajectories(model, z, cfg, noise.pi_eps)
    *_, result = iterate(model, z, prior, mean, cfg, noise)  # MppiConfig.iterations >= 1
    action = select_action(result, noise.gumbel, noise.explore, explore_scale)
    info = PlanInfo(result.elite_value.mean(), result.elite_value.std(), result.std[0])
    return PlanResult(action, PlanState(shift(result.mean)), info)


@torch.no_grad()
def plan(
    model: LatentModel, z: Tensor, state: PlanState, cfg: MppiConfig, noise: PlanNoise, eval_mode: bool = False
) -> PlanResult:
    """One receding-horizon MPPI solve in latent space (shapes checked first).

    Args:
        model: the world model (any ``LatentModel`` backend).
        z: ``(dz,)`` latent of the current observation.
        state: warm start from the previous tick (``PlanState.zeros`` after a reset).
        cfg: planner budget.
        noise: all random draws (``draw_noise``), so a solve is a deterministic function of its inputs.
        eval_mode: no exploration noise on the executed action.

    Returns:
        ``PlanResult`` with the action in [-1, 1] and the next (shifted) warm start.
    """
    check_plan_inputs(z, state, cfg, noise)
    return solve(model, z, state.mean, cfg, noise, 0.0 if eval_mode else 1.0)


def policy_action(model: LatentModel, obs: Tensor, action_dim: int) -> Tensor:
    """The policy prior's deterministic action ``tanh(mu(encode(obs)))``: obs ``(B, O)`` -> ``(B, A)``."""
    z = model.encode(obs)
    return model.policy(z, torch.zeros(obs.shape[0], action_dim, dtype=obs.dtype, device=obs.device))


def plan_init(model: LatentModel, obs: Tensor, pi_eps: Tensor, cfg: MppiConfig) -> tuple[Tensor, Tensor]:
    """First stage of a split solve: ``obs (O,)``, ``pi_eps (H, P, A)`` -> latent ``(dz,)`` and the
    policy-prior trajectories ``(H, P, A)``.
    """
    z = model.encode(obs)
    return z, policy_trajectories(model, z, cfg, pi_eps)


def plan_step(
    model: LatentModel,
    z: Tensor,
    prior: Tensor,
    mean: Tensor,
    std: Tensor,
    samples: Tensor,
    value_eps: Tensor,
    q_heads: Tensor,
    gumbel: Tensor,
    explore: Tensor,
    explore_scale: float | Tensor,
    cfg: MppiConfig,
) -> StepResult:
    """One iteration of a split solve with its candidate action, from sampling distribution
    ``mean, std (H, A)`` and one iteration's draws (samples ``(H, S, A)``, value_eps ``(K, A)``,
    q_heads ``(2,)``; gumbel and explore as in ``PlanNoise``).
    """
    result = mppi_iteration(model, z, prior, mean, std, samples, value_eps, q_heads, cfg)
    action = select_action(result, gumbel, explore, explore_scale)
    return StepResult(result.mean, result.std, action, result.elite_value.mean(), result.elite_value.std())
