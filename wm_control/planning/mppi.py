"""MPPI in latent space with TD-MPC2 semantics, as a pure function.

``plan`` takes the warm-start state and every random draw as arguments and returns the action and
the next warm-start state; it never touches global RNG state or mutates its inputs. The same inputs
give the same plan in torch, ONNX Runtime and TensorRT.

One solve (Hansen et al. 2024, Sec. 3.3): ``num_pi_trajs`` trajectories from the policy prior plus
Gaussian samples around the warm-started mean are scored by the model — discounted predicted
rewards over the horizon plus the discounted Q-value of the policy's action at the horizon (mean of
two random heads) — and the mean/std are refit to the softmax-weighted ``num_elites`` best, for
``iterations`` rounds. The executed action is the first action of an elite drawn in proportion to its
weight, plus exploration noise scaled by the final std unless in evaluation mode.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from wm_control.errors import ConfigError, InputError
from wm_control.model.protocol import LatentModel
from wm_control.planning.config import MppiConfig

__all__ = [
    "IterationResult",
    "MppiConfig",
    "PlanInfo",
    "PlanNoise",
    "PlanResult",
    "PlanState",
    "draw_noise",
    "mppi_iteration",
    "plan",
    "plan_flops",
    "policy_trajectories",
    "select_action",
    "shift",
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
    """Every random draw of one solve. ``P = num_pi_trajs``, ``S = num_samples - P``.

    pi_eps ``(H, P, A)``: policy-prior trajectories. samples ``(I, H, S, A)``: Gaussian samples.
    value_eps ``(I, K, A)``: policy action at the horizon. q_heads ``(I, 2)`` long: the two Q heads
    averaged in each iteration. gumbel ``(K,)``: elite selection, one variate per sample (indexed by
    sample, not by rank, so the pick does not depend on how a runtime orders tied elites).
    explore ``(A,)``: exploration noise.
    All Gaussian draws are standard normal; gumbel is standard Gumbel.
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


def draw_noise(
    cfg: MppiConfig,
    action_dim: int,
    num_q: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PlanNoise:
    """Draw the noise of one solve from ``generator`` (on ``device``)."""
    H, I, K, P, A = cfg.horizon, cfg.iterations, cfg.num_samples, cfg.num_pi_trajs, action_dim

    def normal(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)

    heads = torch.stack([torch.randperm(num_q, generator=generator, device=device)[:2] for _ in range(I)])
    uniform = torch.rand(K, generator=generator, device=device, dtype=dtype).clamp_(1e-20, 1.0 - 1e-7)
    return PlanNoise(
        pi_eps=normal(H, P, A),
        samples=normal(I, H, K - P, A),
        value_eps=normal(I, K, A),
        q_heads=heads,
        gumbel=-torch.log(-torch.log(uniform)),
        explore=normal(A),
    )


def _check(z: Tensor, state: PlanState, cfg: MppiConfig, noise: PlanNoise) -> None:
    H, I, K, P = cfg.horizon, cfg.iterations, cfg.num_samples, cfg.num_pi_trajs
    if z.ndim != 1:
        raise InputError(f"plan: z has shape {tuple(z.shape)}; expected (latent_dim,)")
    A = state.mean.shape[-1]
    expected = {
        "state.mean": (state.mean, (H, A)),
        "noise.pi_eps": (noise.pi_eps, (H, P, A)),
        "noise.samples": (noise.samples, (I, H, K - P, A)),
        "noise.value_eps": (noise.value_eps, (I, K, A)),
        "noise.q_heads": (noise.q_heads, (I, 2)),
        "noise.gumbel": (noise.gumbel, (K,)),
        "noise.explore": (noise.explore, (A,)),
    }
    for name, (t, shape) in expected.items():
        if tuple(t.shape) != shape:
            raise InputError(f"plan: {name} has shape {tuple(t.shape)}; expected {shape}")


def _trajectory_value(
    model: LatentModel, z: Tensor, actions: Tensor, eps: Tensor, heads: Tensor, discounts: Tensor
) -> Tensor:
    """Discounted predicted return of action sequences ``actions`` ``(H, K, A)`` from ``z`` ``(K, dz)``.

    ``discounts`` is ``(H + 1,)``: ``gamma^t`` for the rewards and ``gamma^H`` for the terminal value.
    The latents are rolled out first and the rewards of all steps predicted in one batched call
    (measured faster on CPU than a reward call per step).

    With an episodic model each reward and the terminal value are weighted by the predicted
    probability that the episode is still running when they are earned (a step that ends the
    episode still earns its own reward). The reference thresholds the probability at 0.5 instead; the
    product of probabilities is continuous, so backends that differ by rounding cannot flip a
    trajectory between "ended" and "running".
    """
    H = actions.shape[0]
    states = [z]
    for t in range(H):
        z = model.next(z, actions[t])
        states.append(z)
    rewards = model.reward(torch.stack(states[:H]), actions)  # (H, K); stack, not slice writes (ONNX scatter)
    terminal = model.value(z, model.policy(z, eps), heads, reduce="avg")
    if not model.episodic:
        return discounts[:H] @ rewards + discounts[H] * terminal
    running = 1.0 - model.termination(torch.stack(states[1:]))  # (H, K): the step into z_t+1 did not end it
    alive = [torch.ones_like(terminal)]
    for t in range(H):
        alive.append(alive[-1] * running[t])
    alive_t = torch.stack(alive)  # (H + 1, K): probability that no earlier step ended the episode
    return discounts[:H] @ (alive_t[:H] * rewards) + discounts[H] * alive_t[H] * terminal


class IterationResult(NamedTuple):
    """MPPI state after one iteration: the refit mean and std ``(H, A)``, the elites ``(H, E, A)``,
    their predicted values ``(E,)``, softmax weights ``(E,)`` and sample indices ``(E,)``, and the
    elite margin (scalar): the last elite's value minus the best rejected one's (``inf`` when every
    sample is an elite). Values that differ by less than the margin select the same elites, so it
    says how close the refit is to a tie that rounding could flip.
    """

    mean: Tensor
    std: Tensor
    elite_actions: Tensor
    elite_value: Tensor
    weight: Tensor
    elite_index: Tensor
    margin: Tensor


def policy_trajectories(model: LatentModel, z: Tensor, cfg: MppiConfig, pi_eps: Tensor) -> Tensor:
    """Action sequences ``(H, P, A)`` sampled from the policy prior along its own latent rollout.

    These ``P = num_pi_trajs`` candidates are part of every iteration's sample set.
    """
    H, P = cfg.horizon, cfg.num_pi_trajs
    if P == 0:
        return pi_eps.new_zeros(H, 0, pi_eps.shape[-1])
    zp = z.expand(P, -1)
    steps = []
    for t in range(H):
        a = model.policy(zp, pi_eps[t])
        steps.append(a)
        if t < H - 1:
            zp = model.next(zp, a)
    return torch.stack(steps)


def mppi_iteration(
    model: LatentModel,
    z: Tensor,
    prior: Tensor,
    mean: Tensor,
    std: Tensor,
    samples: Tensor,
    value_eps: Tensor,
    heads: Tensor,
    cfg: MppiConfig,
) -> IterationResult:
    """One MPPI refit: score the prior trajectories and ``mean + std * samples`` (clamped to
    [-1, 1]), keep the ``num_elites`` best, and return their softmax-weighted mean and std.

    Args:
        z: ``(dz,)`` current latent. prior: ``(H, P, A)`` from ``policy_trajectories``.
        mean, std: ``(H, A)`` sampling distribution. samples: ``(H, K - P, A)`` standard normal.
        value_eps: ``(K, A)`` policy draws at the horizon. heads: ``(2,)`` Q heads to average.
    """
    H, K, E = cfg.horizon, cfg.num_samples, cfg.num_elites
    sampled = (mean.unsqueeze(1) + std.unsqueeze(1) * samples).clamp(-1.0, 1.0)
    actions = torch.cat([prior, sampled], dim=1)  # (H, K, A)
    discounts = cfg.discount ** torch.arange(H + 1, dtype=z.dtype, device=z.device)
    value = _trajectory_value(model, z.expand(K, -1), actions, value_eps, heads, discounts)
    value = torch.nan_to_num(value, nan=0.0)
    if E < K:  # one more than the elites, for the margin (a free extra element of the same top-k)
        top_value, top_idx = torch.topk(value, E + 1)
        elite_value, elite_idx = top_value[:E], top_idx[:E]
        margin = top_value[E - 1] - top_value[E]
    else:
        elite_value, elite_idx = torch.topk(value, E)
        margin = torch.full((), float("inf"), dtype=value.dtype, device=value.device)
    elite_actions = actions[:, elite_idx]  # (H, E, A)
    weight = torch.softmax(cfg.temperature * elite_value, dim=0)  # (E,)
    new_mean = weight @ elite_actions  # (H, A)
    var = weight @ (elite_actions - new_mean.unsqueeze(1)).pow(2)
    std = var.sqrt().clamp(cfg.min_std, cfg.max_std)
    return IterationResult(new_mean, std, elite_actions, elite_value, weight, elite_idx, margin)


def select_action(result: IterationResult, gumbel: Tensor, explore: Tensor, explore_scale: float | Tensor) -> Tensor:
    """First action of an elite drawn in proportion to its weight (Gumbel-max), plus
    ``explore_scale * std * explore`` exploration noise, clamped to [-1, 1].
    """
    pick = torch.argmax(torch.log(result.weight) + gumbel[result.elite_index])
    action = result.elite_actions[0, pick] + explore_scale * result.std[0] * explore
    return action.clamp(-1.0, 1.0)


def shift(mean: Tensor) -> Tensor:
    """Warm start for the next tick: the mean sequence advanced by one step, zero at the end."""
    return torch.cat([mean[1:], torch.zeros_like(mean[:1])], dim=0)


@torch.no_grad()
def plan(
    model: LatentModel, z: Tensor, state: PlanState, cfg: MppiConfig, noise: PlanNoise, eval_mode: bool = False
) -> PlanResult:
    """One receding-horizon MPPI solve in latent space.

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
    _check(z, state, cfg, noise)
    prior = policy_trajectories(model, z, cfg, noise.pi_eps)
    mean = state.mean
    std = torch.full_like(mean, cfg.max_std)
    result = None
    for i in range(cfg.iterations):
        result = mppi_iteration(model, z, prior, mean, std, noise.samples[i], noise.value_eps[i], noise.q_heads[i], cfg)
        mean, std = result.mean, result.std
    assert result is not None
    action = select_action(result, noise.gumbel, noise.explore, 0.0 if eval_mode else 1.0)
    info = PlanInfo(result.elite_value.mean(), result.elite_value.std(), result.std[0])
    return PlanResult(action, PlanState(shift(result.mean)), info)


def plan_flops(cfg: MppiConfig, model_cfg: object) -> int:
    """Matmul FLOPs (2 per multiply-add) of one ``plan`` call with a ``WorldModel`` of ``model_cfg``
    (encoder excluded; two Q heads per value estimate).
    """
    try:
        dz, A, h, bins = model_cfg.latent_dim, model_cfg.action_dim, model_cfg.mlp_dim, model_cfg.num_bins  # type: ignore[attr-defined]
    except AttributeError as exc:
        raise ConfigError(f"plan_flops needs a ModelConfig; got {type(model_cfg).__name__}") from exc
    za = dz + A
    dyn = za * h + h * h + h * dz
    rew = za * h + h * h + h * bins
    pi = dz * h + h * h + h * 2 * A
    q = 2 * (za * h + h * h + h * bins)
    term = (dz * h + h * h + h) if getattr(model_cfg, "episodic", False) else 0
    K, H, P = cfg.num_samples, cfg.horizon, cfg.num_pi_trajs
    per_iter = K * (H * (dyn + rew + term) + pi + q)
    prior = P * (H * pi + (H - 1) * dyn)
    return 2 * (cfg.iterations * per_iter + prior)
