"""MPPI planner: a pure, deterministic function of its inputs that finds good actions."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from wm_control.errors import ConfigError, InputError
from wm_control.model.config import model_config
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import _trajectory_value, plan_flops
from wm_control.planning.solve import PlanState, draw_noise, plan

SMALL = MppiConfig(horizon=3, iterations=4, num_samples=128, num_elites=16, num_pi_trajs=8)


class Quadratic:
    """Toy latent model: z is a position, next = z + 0.1 a, reward = -|next - goal|^2."""

    episodic = False

    def __init__(self, goal: Tensor) -> None:
        self.goal = goal

    def encode(self, obs: Tensor) -> Tensor:
        return obs

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        return z + 0.1 * a

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        return -((self.next(z, a) - self.goal) ** 2).sum(-1)

    def value(self, z: Tensor, a: Tensor, heads: Tensor | None = None, reduce: str = "avg") -> Tensor:
        return 10 * self.reward(z, a)

    def policy(self, z: Tensor, eps: Tensor) -> Tensor:
        return torch.tanh(0.5 * eps)


def _solve(model, z, cfg=SMALL, seed=0, state=None, eval_mode=True):  # noqa: ANN001, ANN202
    A = 2 if isinstance(model, Quadratic) else model.cfg.action_dim
    num_q = 2 if isinstance(model, Quadratic) else model.cfg.num_q
    state = state if state is not None else PlanState.zeros(cfg, A)
    noise = draw_noise(cfg, A, num_q, torch.Generator().manual_seed(seed))
    return plan(model, z, state, cfg, noise, eval_mode=eval_mode)


def test_finds_the_optimum_of_a_known_problem() -> None:
    goal = torch.tensor([0.5, -0.3])
    cfg = dataclasses.replace(SMALL, iterations=6, num_samples=256)
    results = [_solve(Quadratic(goal), torch.zeros(2), cfg, seed=s) for s in range(8)]
    actions = torch.stack([r.action for r in results])
    # Best first action moves straight towards the goal at full speed; the executed action is an
    # elite drawn by weight, so single draws scatter around it (by about the final std).
    assert actions[:, 0].mean() > 0.8 and actions[:, 1].mean() < -0.8
    assert torch.all(actions[:, 0] > 0.6) and torch.all(actions[:, 1] < -0.6)
    assert all(r.info.elite_value_std >= 0 for r in results)


def test_same_inputs_same_plan_and_inputs_untouched() -> None:
    m = WorldModel(model_config("small", 10, 3)).eval()
    z = m.encode(torch.randn(10))
    state = PlanState(torch.rand(3, 3) * 2 - 1)
    saved = state.mean.clone()
    r1 = _solve(m, z, state=state, seed=3, eval_mode=False)
    r2 = _solve(m, z, state=state, seed=3, eval_mode=False)
    r3 = _solve(m, z, state=state, seed=4, eval_mode=False)
    assert torch.equal(r1.action, r2.action) and torch.equal(r1.state.mean, r2.state.mean)
    assert not torch.equal(r1.action, r3.action)
    assert torch.equal(state.mean, saved)


def test_actions_within_bounds_and_warm_start_shifted() -> None:
    goal = torch.tensor([5.0, 5.0])  # unreachable: pushes samples against the bounds
    res = _solve(Quadratic(goal), torch.zeros(2), eval_mode=False)
    assert res.action.abs().max() <= 1.0
    assert res.state.mean.shape == (3, 2)
    assert torch.all(res.state.mean[-1] == 0)  # shifted: the last step is a fresh zero
    assert torch.all(res.state.mean[:-1] > 0.5)


def test_eval_mode_removes_exploration_noise() -> None:
    q = Quadratic(torch.tensor([0.0, 0.0]))
    a_eval = _solve(q, torch.zeros(2), seed=1, eval_mode=True).action
    a_expl = _solve(q, torch.zeros(2), seed=1, eval_mode=False).action
    assert not torch.equal(a_eval, a_expl)


def test_mppi_weights_are_a_distribution_that_favours_higher_values() -> None:
    from wm_control.planning.mppi import mppi_iteration, policy_trajectories

    model, z, cfg = Quadratic(torch.tensor([0.2, 0.1])), torch.zeros(2), SMALL
    noise = draw_noise(cfg, 2, 2, torch.Generator().manual_seed(0))
    prior = policy_trajectories(model, z, cfg, noise.pi_eps)
    mean, std = torch.zeros(3, 2), torch.full((3, 2), cfg.max_std)
    r = mppi_iteration(model, z, prior, mean, std, noise.samples[0], noise.value_eps[0], noise.q_heads[0], cfg)
    w, v = r.weight, r.elite_value
    assert torch.all(w >= 0) and float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert len(torch.unique(v)) > 1, "distinct elite values, or the ordering below says nothing"
    order = torch.argsort(v)
    assert torch.all(torch.diff(w[order]) >= 0), "a higher value never gets a smaller weight"
    assert float(w[order[-1]]) > float(w[order[0]])
    # The refit mean is the weighted mean of the elites (a convex combination, so inside their hull).
    torch.testing.assert_close(r.mean, torch.einsum("e,hea->ha", w, r.elite_actions))


def test_shape_errors_name_the_input() -> None:
    q = Quadratic(torch.zeros(2))
    noise = draw_noise(SMALL, 2, 2, torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=r"state.mean has shape \(2, 2\); expected \(3, 2\)"):
        plan(q, torch.zeros(2), PlanState(torch.zeros(2, 2)), SMALL, noise)
    with pytest.raises(InputError, match="z has shape"):
        plan(q, torch.zeros(1, 2), PlanState.zeros(SMALL, 2), SMALL, noise)
    with pytest.raises(InputError, match="noise.samples"):
        plan(q, torch.zeros(2), PlanState.zeros(SMALL, 2), dataclasses.replace(SMALL, num_samples=64), noise)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="planner.num_elites=600 is out of range"):
        MppiConfig(num_samples=512, num_elites=600)
    with pytest.raises(ConfigError, match="planner.num_pi_trajs"):
        MppiConfig(num_samples=16, num_pi_trajs=16, num_elites=4)


def test_flop_count_scales_with_budget() -> None:
    mc = model_config("1M", 23, 7)
    base = plan_flops(MppiConfig(), mc)
    assert plan_flops(MppiConfig(iterations=12), mc) > 1.9 * base
    assert 12e9 < base < 15e9  # ~13.2 GFLOP for the 1M model at the default budget


class Cliff(Quadratic):
    """Every step earns 1 + x (further right pays more), but crossing x = 0.15 ends the episode."""

    def __init__(self, episodic: bool, p_end: float | None = None) -> None:
        super().__init__(torch.zeros(2))
        self.episodic = episodic
        self.p_end = p_end

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        return 1.0 + self.next(z, a)[..., 0]

    def value(self, z: Tensor, a: Tensor, heads: Tensor | None = None, reduce: str = "avg") -> Tensor:
        return 10.0 + 10.0 * z[..., 0]

    def termination(self, z: Tensor) -> Tensor:
        if self.p_end is not None:
            return torch.full(z.shape[:-1], self.p_end)
        return torch.sigmoid(200.0 * (z[..., 0] - 0.15))


def test_episodic_value_weights_by_the_probability_of_still_running() -> None:
    model = Cliff(episodic=True, p_end=0.25)
    z = torch.zeros(4, 2)
    actions = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    g = 0.9
    got = _trajectory_value(model, z, actions, torch.zeros(4, 2), torch.zeros(2), g ** torch.arange(4.0))
    x = 0.1 * actions[:, :, 0].cumsum(0)  # positions after each step
    want = (1 + x[0]) + g * 0.75 * (1 + x[1]) + g**2 * 0.75**2 * (1 + x[2]) + g**3 * 0.75**3 * (10 + 10 * x[2])
    assert torch.allclose(got, want, atol=1e-5)
    plain = _trajectory_value(Cliff(False), z, actions, torch.zeros(4, 2), torch.zeros(2), g ** torch.arange(4.0))
    assert not torch.allclose(plain, want, atol=1e-3)


def test_episodic_planner_stops_before_a_predicted_termination() -> None:
    cfg = dataclasses.replace(SMALL, iterations=6, num_samples=256)
    blind = [_solve(Cliff(episodic=False), torch.zeros(2), cfg, seed=s) for s in range(4)]
    aware = [_solve(Cliff(episodic=True), torch.zeros(2), cfg, seed=s) for s in range(4)]
    # Blind to the cliff, the plan runs right at full speed (3 steps of 0.1 reach x = 0.3); seeing it,
    # the plan's remaining steps stay left of x = 0.15 (the warm start holds steps 2 and 3).
    for b, a in zip(blind, aware, strict=True):
        assert b.action[0] > 0.6 and b.state.mean[:2, 0].min() > 0.6
        assert 0.1 * (a.action[0] + a.state.mean[:2, 0].sum()) < 0.15


def test_elite_margin_is_the_gap_at_the_elite_cut() -> None:
    from wm_control.planning.mppi import mppi_iteration, policy_trajectories

    goal = torch.tensor([0.5, -0.3])
    model, z, cfg = Quadratic(goal), torch.zeros(2), SMALL
    noise = draw_noise(cfg, 2, 2, torch.Generator().manual_seed(0))
    prior = policy_trajectories(model, z, cfg, noise.pi_eps)
    mean, std = torch.zeros(3, 2), torch.full((3, 2), cfg.max_std)
    r = mppi_iteration(model, z, prior, mean, std, noise.samples[0], noise.value_eps[0], noise.q_heads[0], cfg)
    sampled = (mean.unsqueeze(1) + std.unsqueeze(1) * noise.samples[0]).clamp(-1.0, 1.0)
    actions = torch.cat([prior, sampled], dim=1)
    discounts = cfg.discount ** torch.arange(cfg.horizon + 1, dtype=torch.float32)
    values = _trajectory_value(
        model, z.expand(cfg.num_samples, -1), actions, noise.value_eps[0], noise.q_heads[0], discounts
    )
    ranked = torch.sort(values, descending=True).values
    E = cfg.num_elites
    assert float(r.margin) == pytest.approx(float(ranked[E - 1] - ranked[E]), abs=1e-6) and float(r.margin) >= 0
    everyone = dataclasses.replace(cfg, num_elites=cfg.num_samples)
    r_all = mppi_iteration(model, z, prior, mean, std, noise.samples[0], noise.value_eps[0], noise.q_heads[0], everyone)
    assert torch.isinf(r_all.margin)  # no rejected sample: no tie possible
