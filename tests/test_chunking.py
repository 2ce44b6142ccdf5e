"""Actions -> trajectory chunks: whatever the action sequence, the 1 kHz command a real Franka would
receive stays inside its position, velocity, acceleration and jerk limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_control.chunking import ChunkConfig, ChunkGenerator, CommandState
from wm_control.errors import ConfigError, InputError, WmControlError
from wm_control.robot import FR3, velocity_bounds
from wm_control.trajectory import sample_hermite

H = 0.001  # servo period
# Floating-point rounding of positions near 3 rad, far below any physical meaning [rad].
ROUNDING = 1e-9


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
    _assert_within_limits(_rollout(gen, q0, actions, drop), margin=gen.config.position_margin - ROUNDING)


def _adversarial_actions(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    """Action sequences that push joints into their limits: uniform, bang-bang, held, and bang-bang
    with random dwell times (pushing, releasing and reversing next to a limit).
    """
    if kind == 0:
        return rng.uniform(-1, 1, (n, 7))
    if kind == 1:
        return rng.choice([-1.0, 1.0], (n, 7))
    if kind == 2:
        return np.tile(rng.choice([-1.0, 1.0], 7), (n, 1))
    out = np.empty((n, 7))
    for j in range(7):
        k = 0
        while k < n:
            dwell = int(rng.integers(1, 15))
            out[k : k + dwell, j] = rng.choice([1.0, -1.0, 0.0, rng.uniform(-1, 1)], p=[0.45, 0.3, 0.15, 0.1])
            k += dwell
    return out


@pytest.mark.parametrize("fraction", [0.3, 1.0])  # fr3-reach's setting and the full velocity range
def test_position_margin_holds_in_every_chunk_and_between_knots(fraction: float) -> None:
    """Every chunk, knots and the 1 kHz interpolation between them, keeps ``position_margin`` from the
    position limits; any chunk may run to its end (missed ticks), so the whole chunk counts. Starts at
    rest next to the margin (or anywhere) and drives joints into the limits.
    """
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=fraction), 0.02)
    lim, margin = FR3.limits, gen.config.position_margin
    rng = np.random.default_rng(2024)
    times = H * np.arange(1, gen.num_knots * round(gen.dt / H) + 1)
    closest = np.inf
    for seq in range(60):
        side = rng.choice(3, 7)  # next to the lower margin, next to the upper one, anywhere
        q0 = np.select(
            [side == 0, side == 1],
            [lim.q_min + margin + rng.uniform(0, 0.4, 7), lim.q_max - margin - rng.uniform(0, 0.4, 7)],
            rng.uniform(lim.q_min + margin, lim.q_max - margin),
        )
        state = gen.rest(q0)
        for action in _adversarial_actions(rng, 60, seq % 4):
            res = gen.generate(state, action)
            q = np.concatenate([res.chunk.positions, sample_hermite(state.q, state.dq, res.chunk, times).q])
            closest = min(closest, float(np.min(np.minimum(q - lim.q_min, lim.q_max - q))))
            state = res.next_state
    assert closest >= margin - ROUNDING, f"came {closest * 1e3:.3f} mrad from a limit; margin {margin * 1e3} mrad"


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
    # Barely outside: the message shows the digits that put it outside.
    with pytest.raises(InputError, match=r"action\[2\] \(fr3_joint3\) = 1.000002 is outside \[-1, 1\]"):
        gen.generate(s, np.array([0, 0, 1 + 2e-6, 0, 0, 0, 0.0]))


def test_bad_states_are_rejected_by_field_and_joint() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(), 0.02)
    q, zero = FR3.start_q.copy(), np.zeros(7)
    nan = np.where(np.arange(7) == 2, np.nan, 0.0)
    for field, state in (
        ("q", CommandState(q + nan, zero, zero)),
        ("dq", CommandState(q, nan, zero)),
        ("ddq", CommandState(q, zero, nan)),
    ):
        with pytest.raises(InputError, match=rf"state\.{field} contains NaN or inf at fr3_joint3"):
            gen.generate(state, zero)
    fast = np.where(np.arange(7) == 4, 6.0, 0.0)  # joint 5's limit is 5.26 rad/s
    with pytest.raises(InputError, match=r"state\.dq\[4\] \(fr3_joint5\) = 6.0 rad/s is outside \[-5.26"):
        gen.generate(CommandState(q, fast, zero), zero)
    with pytest.raises(InputError, match=r"state\.ddq\[0\] \(fr3_joint1\) = -9.0 rad/s\^2 is outside \[-8.0"):
        gen.generate(CommandState(q, zero, np.where(np.arange(7) == 0, -9.0, 0.0)), zero)
    with pytest.raises(InputError, match=r"state\.ddq has shape \(6,\); expected \(7,\)"):
        gen.generate(CommandState(q, zero, np.zeros(6)), zero)


def test_a_nan_state_is_rejected_under_python_O() -> None:
    """With assertions compiled out a NaN state once looped forever; the check does not use assert."""
    code = (
        "import numpy as np\n"
        "from wm_control.chunking import ChunkConfig, ChunkGenerator, CommandState\n"
        "from wm_control.errors import InputError\n"
        "from wm_control.robot import FR3\n"
        "gen = ChunkGenerator(FR3, ChunkConfig(), 0.02)\n"
        "dq = np.zeros(7); dq[1] = np.nan\n"
        "try:\n"
        "    gen.generate(CommandState(FR3.start_q, dq, np.zeros(7)), np.zeros(7))\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "state.dq contains NaN or inf at fr3_joint2" in out.stdout


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    fraction=st.sampled_from([0.1, 0.3, 1.0]),
    servo=st.sampled_from([0.001, 0.002]),
    extreme=st.booleans(),
)
def test_every_valid_state_brakes_to_rest_within_the_chunk(
    seed: int, fraction: float, servo: float, extreme: bool
) -> None:
    """From any finite state inside the limits (velocity up to dq_max, acceleration up to the budget,
    position anywhere in range), the chunk ends at rest within ``num_knots``: the brake's bounded loop
    never runs out.
    """
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=fraction), 0.02, servo_period=servo)
    lim, A = FR3.limits, gen.max_acceleration
    rng = np.random.default_rng(seed)
    q = rng.uniform(lim.q_min, lim.q_max)
    if extreme:  # the corners: full speed while still accelerating, either way
        dq, ddq = rng.choice([-1.0, 1.0], 7) * lim.dq_max, rng.choice([-1.0, 1.0], 7) * A
    else:
        dq, ddq = rng.uniform(-1, 1, 7) * lim.dq_max, rng.uniform(-1, 1, 7) * A
    res = gen.generate(CommandState(q, dq, ddq), rng.uniform(-1, 1, 7))
    assert res.chunk.positions.shape == (gen.num_knots, 7)
    assert np.all(res.chunk.velocities[-1] == 0.0)
    assert np.all(np.isfinite(res.chunk.positions))


def test_a_brake_that_cannot_stop_in_time_raises_a_named_error() -> None:
    """The brake's loop is bounded; were its knot budget too small it would say so (not assert)."""
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=1.0), 0.02)
    gen._brake_knots = 5  # noqa: SLF001 - shrink the budget that valid states never exhaust
    state = CommandState(FR3.start_q, 0.9 * FR3.limits.dq_max, np.zeros(7))
    with pytest.raises(WmControlError, match=r"brake did not stop within 5 knots"):
        gen.generate(state, np.ones(7))


def test_bad_configs_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"velocity_fraction\[0\]=1.5 is out of range"):
        ChunkConfig(velocity_fraction=1.5)
    with pytest.raises(ConfigError, match="whole multiple of servo_period"):
        ChunkGenerator(FR3, ChunkConfig(), 0.0205)
    with pytest.raises(ConfigError, match="expected 1 or 7"):
        ChunkGenerator(FR3, ChunkConfig(velocity_fraction=(0.5, 0.5)), 0.02)


def test_the_servo_period_comes_from_the_layer_that_runs_the_chunks() -> None:
    """The robot's control cycle by default, the simulator's timestep when it passes one; a chunk
    config that claims another period is refused, and the generator records the one it shapes for.
    """
    gen = ChunkGenerator(FR3, ChunkConfig(), 0.02)
    assert gen.servo_period == FR3.servo_period and gen.config.servo_period == FR3.servo_period
    slow = ChunkGenerator(FR3, ChunkConfig(), 0.02, servo_period=0.002)
    assert slow.config.servo_period == 0.002
    # The jerk bound: an acceleration step at a knot happens within one servo period.
    assert slow.max_acceleration_step == pytest.approx(2 * gen.max_acceleration_step)
    with pytest.raises(ConfigError, match=r"ChunkConfig.servo_period=0.002 s differs from .* \(0.001 s\)"):
        ChunkGenerator(FR3, ChunkConfig(servo_period=0.002), 0.02)
    ChunkGenerator(FR3, ChunkConfig(servo_period=0.001), 0.02)  # a claim that holds


DRIFTED = np.array([0.86, -1.56, -0.97, -2.8, 1.37, 4.02, -2.07])  # a pose fr3-reach drifted to (seed 12)


def test_the_posture_pull_moves_the_joints_home_without_moving_the_tcp() -> None:
    from wm_control.kinematics import tcp_jacobian

    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3, posture_gain=0.5), 0.02)
    pull = gen.posture_pull(DRIFTED)
    assert np.dot(pull, np.asarray(FR3.start_q) - DRIFTED) > 0.1  # towards home
    assert np.linalg.norm(tcp_jacobian(FR3, DRIFTED)[:3] @ pull) < 1e-3 * np.linalg.norm(pull)  # TCP stays [m/s]
    np.testing.assert_allclose(gen.posture_pull(np.asarray(FR3.start_q)), 0.0, atol=1e-12)
    assert not ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), 0.02).posture_pull(DRIFTED).any()


def test_with_zero_actions_the_pull_brings_the_posture_back_and_the_tcp_stays() -> None:
    from wm_control.kinematics import tcp_position

    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3, posture_gain=0.5), 0.02)
    state = gen.rest(DRIFTED)
    for _ in range(250):  # 5 s
        state = gen.generate(state, np.zeros(7)).next_state
    home = np.asarray(FR3.start_q)
    assert np.linalg.norm(state.q - home) < 0.7 * np.linalg.norm(DRIFTED - home)
    assert np.linalg.norm(state.q - DRIFTED) > 1.5  # [rad]: the arm reconfigured
    # The projection holds to first order, and the command lags its target: 1.1 cm over that
    # reconfiguration, which a planner corrects as it goes.
    assert np.linalg.norm(tcp_position(FR3, state.q) - tcp_position(FR3, DRIFTED)) < 0.02  # [m]


def test_a_generator_told_to_leave_the_pull_out_shapes_as_one_without_it() -> None:
    """``posture=False`` (a hold) gives exactly the chunk of a generator without the pull."""
    with_pull = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3, posture_gain=0.5), 0.02)
    without = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), 0.02)
    state, action = with_pull.rest(DRIFTED), np.full(7, 0.3)
    a = with_pull.generate(state, action, posture=False)
    b = without.generate(state, action)
    np.testing.assert_array_equal(a.chunk.positions, b.chunk.positions)
    assert not np.array_equal(with_pull.generate(state, action).chunk.positions, b.chunk.positions)
    held = with_pull.generate(state, np.zeros(7), posture=False)
    np.testing.assert_array_equal(held.chunk.positions, np.broadcast_to(DRIFTED, held.chunk.positions.shape))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gain=st.floats(0.1, 10.0), kind=st.integers(0, 3))
def test_the_posture_pull_keeps_every_limit(seed: int, gain: float, kind: int) -> None:
    rng = np.random.default_rng(seed)
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3, posture_gain=gain), 0.02)
    q0 = rng.uniform(FR3.limits.q_min + 0.06, FR3.limits.q_max - 0.06)
    n = 100
    Q = _rollout(gen, q0, _adversarial_actions(rng, n, kind), rng.random(n) < 0.03)
    _assert_within_limits(Q, margin=gen.config.position_margin - ROUNDING)


def test_a_posture_gain_needs_a_robot_with_a_start_pose() -> None:
    import dataclasses

    with pytest.raises(ConfigError, match=r"posture_gain=-0.1 is out of range"):
        ChunkConfig(posture_gain=-0.1)
    no_home = dataclasses.replace(FR3, start_q=None)
    with pytest.raises(ConfigError, match=r"posture_gain=0.5 needs a robot with a start pose .* start pose unset"):
        ChunkGenerator(no_home, ChunkConfig(posture_gain=0.5), 0.02)
    ChunkGenerator(no_home, ChunkConfig(), 0.02)  # without the pull it needs none
