"""Actions -> trajectory chunks: whatever the action sequence, the 1 kHz command a real Franka would
receive stays inside its position, velocity, acceleration and jerk limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.errors import ConfigError, InputError
from wm_control.robot import FR3, velocity_bounds
from wm_control.trajectory import sample_hermite

H = 0.001  # servo period


def _rollout(gen: ChunkGenerator, q0: np.ndarray, actions: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Commanded positions at 1 kHz; where ``drop`` is set the tick is missed and the chunk runs out."""
    state = gen.rest(q0)
    samples = [np.repeat(q0[None], 3, axis=0)]
    for a, missed in zip(actions, drop, strict=True):
        res = gen.generate(state, a)
        horizon = res.chunk.duration + gen.dt if missed else gen.dt
        s = sample_hermite(state.q, state.dq, res.chunk, H * np.arange(1, int(round(horizon / H)) + 1))
        samples.append(s.q)
        state = gen.rest(s.q[-1]) if missed else res.next_state
    return np.concatenate(samples)


def _assert_within_limits(Q: np.ndarray, margin: float) -> None:
    lim = FR3.limits
    V = np.diff(Q, axis=0) / H
    A = np.diff(V, axis=0) / H
    J = np.diff(A, axis=0) / H
    lo, hi = velocity_bounds(FR3, Q[:-1])
    assert np.all(hi >= V) and np.all(lo <= V), "velocity limit"
    assert np.all(np.abs(A) <= lim.ddq_max), "acceleration limit"
    assert np.all(np.abs(J) <= lim.dddq_max), "jerk limit"
    assert np.all(lim.q_min + margin <= Q) and np.all(lim.q_max - margin >= Q), "position margin"


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    fraction=st.floats(0.1, 1.0),
    pattern=st.sampled_from(["uniform", "bang", "hold", "flip"]),
)
def test_any_action_sequence_respects_limits(seed: int, fraction: float, pattern: str) -> None:
    rng = np.random.default_rng(seed)
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=fraction), 0.02)
    q0 = rng.uniform(FR3.limits.q_min + 0.06, FR3.limits.q_max - 0.06)
    n = 150
    if pattern == "uniform":
        actions = rng.uniform(-1, 1, (n, 7))
    elif pattern == "bang":
        actions = rng.choice([-1.0, 1.0], (n, 7))
    elif pattern == "hold":  # drive every joint into one of its limits and keep pushing
        actions = np.tile(rng.choice([-1.0, 1.0], 7), (n, 1))
    else:  # full speed one way, then the other
        actions = np.where((np.arange(n) // 40 % 2 == 0)[:, None], 1.0, -1.0) * np.ones((n, 7))
    drop = rng.random(n) < 0.03
    _assert_within_limits(_rollout(gen, q0, actions, drop), margin=0.025)


def test_chunks_end_at_rest_and_have_fixed_length() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=1.0), 0.02)
    state = gen.rest(FR3.start_q)
    for _ in range(30):
        res = gen.generate(state, np.ones(7))
        assert res.chunk.positions.shape == (gen.num_knots, 7)
        assert np.all(res.chunk.velocities[-1] == 0.0)
        state = res.next_state
    assert np.all(np.abs(state.dq) > 0.5)


def test_velocity_target_is_reached_without_overshoot() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.5), 0.02)
    state = gen.rest(np.zeros(7) + FR3.start_q)
    action = np.array([0.3, -0.2, 0.1, 0.2, -0.4, 0.3, 0.5])
    target = action * gen.velocity_scale
    peak = np.zeros(7)
    for _ in range(15):
        state = gen.generate(state, action).next_state
        peak = np.maximum(peak, np.abs(state.dq))
    np.testing.assert_allclose(state.dq, target, atol=1e-9)
    assert np.all(peak <= np.abs(target) + 1e-9)


def test_same_inputs_same_chunk() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(), 0.02)
    a = np.linspace(-1, 1, 7)
    r1, r2 = gen.generate(gen.rest(FR3.start_q), a), gen.generate(gen.rest(FR3.start_q), a)
    np.testing.assert_array_equal(r1.chunk.positions, r2.chunk.positions)


def test_bad_actions_are_rejected_by_name() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(), 0.02)
    s = gen.rest(FR3.start_q)
    with pytest.raises(InputError, match=r"action has shape \(6,\)"):
        gen.generate(s, np.zeros(6))
    with pytest.raises(InputError, match="fr3_joint3"):
        gen.generate(s, np.array([0, 0, np.nan, 0, 0, 0, 0.0]))
    with pytest.raises(InputError, match=r"action\[4\] \(fr3_joint5\) = 1.5 is outside \[-1, 1\]"):
        gen.generate(s, np.array([0, 0, 0, 0, 1.5, 0, 0.0]))


def test_bad_configs_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"velocity_fraction\[0\]=1.5 is out of range"):
        ChunkConfig(velocity_fraction=1.5)
    with pytest.raises(ConfigError, match="whole multiple of servo_period"):
        ChunkGenerator(FR3, ChunkConfig(), 0.0205)
    with pytest.raises(ConfigError, match="expected 1 or 7"):
        ChunkGenerator(FR3, ChunkConfig(velocity_fraction=(0.5, 0.5)), 0.02)
