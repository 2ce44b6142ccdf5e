"""One MPPI iteration in latent space with TD-MPC2 semantics: the math of a refit, as pure functions.

The solve that iterates it (warm start, noise, the executed action) is ``wm_control.planning.solve``.

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

from wm_control.errors import ConfigError
from wm_control.model.protocol import LatentModel
from wm_control.planning.config import MppiConfig

__all__ = ["IterationResult", "mppi_iteration", "plan_flops", "policy_trajectories", "select_action"]


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
    pick = torch.argmax(torch.log(result.weight) + gumbel[result.elite_index]).reshape(1)
    # index_select, not elite_actions[0, pick]: indexing with a 0-d tensor is a data-dependent int
    # that torch.export (the ONNX exporter) refuses in some torch versions (2.11, seen on a GPU machine).
    action = result.elite_actions[0].index_select(0, pick)[0] + explore_scale * result.std[0] * explore
    return action.clamp(-1.0, 1.0)


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
