"""The safety layer (``wm_control.safety``): whatever chunk comes in, what goes out keeps the FR3's
limits when the 1 kHz layer interpolates it, checked here by an independent finite-difference
evaluation at the servo period; feasible chunks from the generator pass unchanged; every check
catches its own violation.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import wm_control.safety as safety
from wm_control.chunking import ChunkConfig, ChunkGenerator, CommandState
from wm_control.errors import ConfigError, InputError
from wm_control.robot import FR3, velocity_bounds
from wm_control.safety import ChunkStart, SafetyConfig, SafetyLayer, Violation
from wm_control.trajectory import TrajectoryChunk, sample_hermite

H = 0.001  # servo period [s]
DT = 0.02  # fr3-reach control period [s]
CFG = SafetyConfig()
LAYER = SafetyLayer(FR3, CFG, DT, H)
NAMES = FR3.joint_names
LIM = FR3.limits
Q_LO, Q_HI = LIM.q_min + CFG.position_margin, LIM.q_max - CFG.position_margin
Q_SLACK = CFG.tolerance * (LIM.q_max - LIM.q_min)  # the layer's rounding allowances (SafetyConfig.tolerance)
V_SLACK = CFG.tolerance * LIM.dq_max
A_MAX, J_MAX = LIM.ddq_max, LIM.dddq_max
HOME = np.array(FR3.start_q)
PROPERTY = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# --- independent reference: what the robot sees at 1 kHz --------------------------------------


def servo_violations(start: ChunkStart, chunk: TrajectoryChunk, hold: int = 3) -> list[str]:
    """Limits broken by the 1 kHz command through ``start`` and ``chunk`` (plus ``hold`` ticks of the
    held last knot), by finite differences over the servo period like libfranka and
    ``sim.monitor``: of the sampled positions (velocity against the bound at each step's first
    position, acceleration, jerk) and, stricter for knots, of the sampled velocities. The two samples
    before the start continue the start state backwards (its acceleration and jerk).
    """
    t = H * np.arange(int(round(chunk.duration / H)) + hold + 1)
    s = sample_hermite(start.q, start.dq, chunk, t)
    jerk = np.zeros(7) if start.dddq is None else start.dddq
    back = H * np.array([[2.0], [1.0]])
    P = np.concatenate([start.q - start.dq * back + start.ddq * back**2 / 2 - jerk * back**3 / 6, s.q])
    DQ = np.concatenate([start.dq - start.ddq * back + jerk * back**2 / 2, s.dq])
    V = np.diff(P, axis=0) / H
    A = np.diff(V, axis=0) / H
    J = np.diff(A, axis=0) / H
    Av = np.diff(DQ, axis=0) / H
    Jv = np.diff(Av, axis=0) / H
    lo, hi = velocity_bounds(FR3, P[2:-1])
    # Rounding of finite differences of float64 samples near 3 rad: ~1e-12 rad/s, ~1e-8 rad/s^2, ~1e-5 rad/s^3.
    checks = {
        # The layer's documented allowance: SafetyConfig.tolerance times the joint's range (~5.5e-9 rad).
        "position": np.all((s.q >= Q_LO - Q_SLACK) & (s.q <= Q_HI + Q_SLACK)),
        "velocity": np.all((V[2:] <= hi + V_SLACK) & (V[2:] >= lo - V_SLACK)),
        "acceleration": np.all(np.abs(A[1:]) <= A_MAX + 1e-6) and np.all(np.abs(Av[1:]) <= A_MAX + 1e-6),
        "jerk": np.all(np.abs(J) <= J_MAX + 1e-3) and np.all(np.abs(Jv) <= J_MAX + 1e-3),
    }
    return [kind for kind, ok in checks.items() if not ok]


def profile(
    q0: np.ndarray, accelerations: list[list[float]] | np.ndarray, total: int = 20, dq0: np.ndarray | None = None
) -> TrajectoryChunk:
    """Knots of piecewise-constant accelerations ``(S, 7)`` [rad/s^2] from ``q0`` (at rest unless
    ``dq0``), padded at rest.
    """
    q, v = np.array(q0, dtype=np.float64), np.zeros(7) if dq0 is None else np.array(dq0, dtype=np.float64)
    P, V = np.empty((total, 7)), np.zeros((total, 7))
    for k, a in enumerate(np.asarray(accelerations, dtype=np.float64)):
        q, v = q + v * DT + 0.5 * a * DT * DT, v + a * DT
        P[k], V[k] = q, v
    P[len(accelerations) :] = q
    return TrajectoryChunk(P, V, DT)


def on_joint(j: int, values: list[float]) -> np.ndarray:
    a = np.zeros((len(values), 7))
    a[:, j] = values
    return a


# A gentle move of one joint, from rest to rest, well inside every limit (peak 0.3 rad/s, 5 rad/s^2).
SMOOTH = [2.5, 5.0, 5.0, 2.5, 0.0, -2.5, -5.0, -5.0, -2.5]


def to_start(state: CommandState) -> ChunkStart:
    return ChunkStart(state.q, state.dq, state.ddq)


def kinds_and_joints(violations: list[Violation]) -> set[tuple[str, str | None]]:
    return {(v.kind, v.joint) for v in violations}


# --- the generator's chunks, chained over long random action sequences -------------------------


def _actions(rng: np.random.Generator, n: int, pattern: int) -> np.ndarray:
    if pattern == 0:
        return rng.uniform(-1, 1, (n, 7))
    if pattern == 1:
        return rng.choice([-1.0, 1.0], (n, 7))
    if pattern == 2:  # push every joint into one of its limits and keep pushing
        return np.tile(rng.choice([-1.0, 1.0], 7), (n, 1))
    # bang-bang with random dwell times: pushing, releasing and reversing next to a limit
    dwell = rng.integers(1, 12, 7)
    signs = rng.choice([-1.0, 1.0], 7)
    return np.stack([signs * np.where((k // dwell) % 2 == 0, 1.0, -1.0) for k in range(n)])


@functools.cache
def generator_states() -> list[tuple[ChunkStart, TrajectoryChunk]]:
    """Start states the generator visits (many next to limits, moving) with the chunk it made there."""
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), DT)
    rng = np.random.default_rng(7)
    out = []
    for seq in range(12):
        state = gen.rest(rng.uniform(LIM.q_min + 0.05, LIM.q_max - 0.05))
        for action in _actions(rng, 60, seq % 4):
            res = gen.generate(state, action)
            out.append((to_start(state), res.chunk))
            state = res.next_state
    return out


def test_generator_chunks_pass_unchanged_over_long_random_sequences() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), DT)
    rng = np.random.default_rng(2024)
    ticks = 0
    for seq in range(200):
        state = gen.rest(rng.uniform(LIM.q_min + 0.05, LIM.q_max - 0.05))
        for action in _actions(rng, 50, seq % 4):
            res = gen.generate(state, action)
            before = res.chunk.positions.copy(), res.chunk.velocities.copy()
            start = to_start(state)
            verdict = LAYER.filter(res.chunk, start, NAMES)
            assert verdict.passed, (seq, [v.message for v in verdict.violations])
            assert verdict.chunk is res.chunk and verdict.violations == []
            assert np.array_equal(res.chunk.positions, before[0]) and np.array_equal(res.chunk.velocities, before[1])
            nxt = LAYER.next_start(verdict.chunk, start)
            assert np.array_equal(nxt.q, res.next_state.q) and np.array_equal(nxt.dq, res.next_state.dq)
            np.testing.assert_allclose(nxt.ddq, res.next_state.ddq, rtol=0, atol=1e-8)
            state = res.next_state
            ticks += 1
    assert ticks == 200 * 50


def test_the_pool_of_generator_states_reaches_the_limits() -> None:
    # The property tests below draw starts from this pool; it is only worth it near the limits.
    starts = generator_states()
    q = np.stack([s.q for s, _ in starts])
    near = (q < Q_LO + 0.1) | (q > Q_HI - 0.1)
    assert near.any(axis=0).sum() >= 5, near.sum(axis=0)
    assert np.abs(np.stack([s.dq for s, _ in starts])).max() > 1.0


# --- strategies --------------------------------------------------------------------------------


def previous_jerk(ddq: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A jerk for the segment that ended at a start with acceleration ``ddq``, from ``s`` in [-1, 1]:
    within the jerk limit, and such that the acceleration over the last two servo ticks before the
    start (what ``servo_violations`` reconstructs) stayed within the acceleration limit.
    """
    lo = np.maximum(-J_MAX, (ddq - A_MAX) / (2 * H))
    hi = np.minimum(J_MAX, (ddq + A_MAX) / (2 * H))
    return lo + 0.5 * (s + 1.0) * (hi - lo)


UNIT = st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).map(np.array)
SIGNED = st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(np.array)


@st.composite
def valid_starts(draw: st.DrawFn) -> tuple[ChunkStart, TrajectoryChunk | None]:
    """A start state from which stopping within the limits is possible, and a feasible chunk from it
    when one is known: at rest anywhere inside the margin; moving at up to 0.8 rad/s with any
    acceleration and jerk, 0.8 rad inside the margin; or a state the generator visited.
    """
    kind = draw(st.sampled_from(["rest", "moving", "generator"]))
    if kind == "rest":
        return ChunkStart.rest(Q_LO + draw(UNIT) * (Q_HI - Q_LO)), None
    if kind == "moving":
        q = Q_LO + 0.8 + draw(UNIT) * (Q_HI - Q_LO - 1.6)
        ddq = A_MAX * draw(SIGNED)
        return ChunkStart(q, 0.8 * draw(SIGNED), ddq, previous_jerk(ddq, draw(SIGNED))), None
    pool = generator_states()
    start, chunk = pool[draw(st.integers(0, len(pool) - 1))]
    return start, chunk


def _perturbed(draw: st.DrawFn, base: TrajectoryChunk) -> TrajectoryChunk:
    P, V = base.positions.copy(), base.velocities.copy()
    target = P if draw(st.booleans()) else V
    k, j = draw(st.integers(0, len(P) - 1)), draw(st.integers(0, 6))
    how = draw(st.sampled_from(["add", "shift", "scale", "set"]))
    delta = draw(st.sampled_from([1e-12, 1e-7, 1e-4, 1e-2, 0.3, 10.0, 1e8, 1e300]))
    sign = draw(st.sampled_from([-1.0, 1.0]))
    if how == "add":
        target[k, j] += sign * delta
    elif how == "shift":  # a jump: every knot from k on moves
        target[k:, j] += sign * delta
    elif how == "scale":
        target[:, j] *= draw(st.sampled_from([0.0, 0.5, 1.01, 1.5, 3.0, -1.0]))
    else:
        target[k, j] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e308]))
    return TrajectoryChunk(P, V, base.dt)


def _malformed(draw: st.DrawFn, base: TrajectoryChunk) -> Any:
    P, V = base.positions, base.velocities
    return draw(
        st.sampled_from(
            [
                TrajectoryChunk(P[:, :6], V[:, :6], DT),
                TrajectoryChunk(P.T.copy(), V.T.copy(), DT),
                TrajectoryChunk(P[0], V[0], DT),
                TrajectoryChunk(P[None], V[None], DT),
                TrajectoryChunk(P[:0], V[:0], DT),
                TrajectoryChunk(P, V[:-1], DT),
                TrajectoryChunk(P.astype(np.float32), V.astype(np.float32), DT),
                TrajectoryChunk(P.tolist(), V.tolist(), DT),
                TrajectoryChunk(P.astype(object), V, DT),
                TrajectoryChunk(P, V, 0.01),
                TrajectoryChunk(P, V, float("nan")),
                TrajectoryChunk(P, V, "0.02"),
                TrajectoryChunk(P, V, True),
                TrajectoryChunk(P, None, DT),
                (P, V, DT),
                None,
            ]
        )
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[ChunkStart, Any, tuple[str, ...]]:
    """A valid start, and any chunk and joint names: random, perturbed from a feasible one, malformed."""
    start, feasible = draw(valid_starts())
    base = feasible if feasible is not None else LAYER.brake(start)
    names = NAMES
    kind = draw(st.sampled_from(["feasible", "random", "perturbed", "truncated", "malformed", "names"]))
    if kind == "feasible":
        chunk = base
    elif kind == "random":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        K = draw(st.integers(1, 50))
        scale = draw(st.sampled_from([1e-9, 1e-3, 0.1, 1.0, 1e3, 1e150]))
        chunk = TrajectoryChunk(start.q + scale * rng.normal(size=(K, 7)), scale * rng.normal(size=(K, 7)), DT)
    elif kind == "perturbed":
        chunk = _perturbed(draw, base)
    elif kind == "truncated":  # may end moving
        k = draw(st.integers(1, len(base.positions)))
        chunk = TrajectoryChunk(base.positions[:k].copy(), base.velocities[:k].copy(), DT)
    elif kind == "malformed":
        chunk = _malformed(draw, base)
    else:
        chunk = base
        names = draw(
            st.sampled_from(
                [NAMES[::-1], NAMES[:6], (*NAMES, "fr3_joint8"), tuple(n.replace("fr3", "panda") for n in NAMES), ()]
            )
        )
    return start, chunk, names


# --- properties --------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=400)
@given(case=cases())
def test_what_filter_returns_verifies_and_keeps_every_limit_at_1khz(case: tuple[ChunkStart, Any, tuple]) -> None:
    start, chunk, names = case
    verdict = LAYER.filter(chunk, start, names)
    event("passed" if verdict.passed else f"replaced: {sorted({v.kind for v in verdict.violations})}")
    assert LAYER.verify(verdict.chunk, start, NAMES) == []
    assert servo_violations(start, verdict.chunk) == []
    assert np.all(np.abs(verdict.chunk.velocities[-1]) <= 1e-8), "ends at rest"
    if verdict.passed:
        assert verdict.chunk is chunk and verdict.violations == []
    else:
        assert verdict.violations
        brake = LAYER.brake(start)
        assert np.array_equal(verdict.chunk.positions, brake.positions)
        assert np.array_equal(verdict.chunk.velocities, brake.velocities)


@settings(PROPERTY, max_examples=150)
@given(case=valid_starts())
def test_the_brake_from_a_valid_start_verifies_and_keeps_every_limit_at_1khz(
    case: tuple[ChunkStart, TrajectoryChunk | None],
) -> None:
    start, _ = case
    brake = LAYER.brake(start)
    assert LAYER.verify(brake, start, NAMES) == []
    assert servo_violations(start, brake, hold=20) == []


@settings(PROPERTY, max_examples=150)
@given(
    u=UNIT,
    dq=SIGNED,
    ddq=SIGNED,
    dddq=SIGNED,
)
@example(u=np.full(7, 0.5), dq=np.ones(7), ddq=np.ones(7), dddq=np.ones(7))
@example(u=np.full(7, 0.5), dq=-np.ones(7), ddq=-np.ones(7), dddq=-np.ones(7))
@example(u=np.full(7, 0.5), dq=np.ones(7), ddq=-np.ones(7), dddq=-np.ones(7))
@example(u=np.full(7, 0.5), dq=np.ones(7), ddq=np.zeros(7), dddq=np.ones(7))
def test_the_brake_stops_any_valid_state_within_its_knots(
    u: np.ndarray, dq: np.ndarray, ddq: np.ndarray, dddq: np.ndarray
) -> None:
    # Anywhere inside the margin, up to the full velocity, acceleration and jerk limits: some of
    # these cannot stop inside the position or velocity limits (that is forced by the start), but
    # every one stops within brake_knots, at rest, never breaking the acceleration or jerk limit.
    start = ChunkStart(Q_LO + u * (Q_HI - Q_LO), dq * LIM.dq_max, ddq * A_MAX, previous_jerk(ddq * A_MAX, dddq))
    brake = LAYER.brake(start)
    assert len(brake.positions) == LAYER.brake_knots == 40
    assert np.all(brake.velocities[-1] == 0.0) and np.array_equal(brake.positions[-1], brake.positions[-2])
    assert {v.kind for v in LAYER.verify(brake, start, NAMES)} <= {"position", "velocity"}
    assert not {"acceleration", "jerk"} & set(servo_violations(start, brake))
    # Piecewise-constant acceleration, changed only at knots: what the interpolation reproduces.
    mid = sample_hermite(start.q, start.dq, brake, DT * (np.arange(40) + 0.5)).ddq
    edge = sample_hermite(start.q, start.dq, brake, DT * (np.arange(40) + 0.05)).ddq
    np.testing.assert_allclose(mid, edge, rtol=0, atol=1e-6)


@settings(PROPERTY, max_examples=100)
@given(u=UNIT, dq=SIGNED)
def test_the_brake_never_overshoots_through_zero_velocity(u: np.ndarray, dq: np.ndarray) -> None:
    start = ChunkStart(Q_LO + u * (Q_HI - Q_LO), dq * LIM.dq_max, np.zeros(7), np.zeros(7))
    brake = LAYER.brake(start)
    assert np.all(brake.velocities * start.dq >= 0.0)
    steps = np.diff(np.concatenate([start.q[None], brake.positions]), axis=0)
    assert np.all(steps * start.dq >= 0.0), "positions move one way only"


def test_the_brake_is_the_jerk_limited_bang_bang_stop() -> None:
    # 2 rad/s on joint 1: ramp to full deceleration at the jerk limit (5 rad/s^2 per 1 ms knot
    # step), hold it, ramp back landing exactly at rest: -5, -10 x 9, -5 removes 0.1 + 1.8 + 0.1.
    dq = np.zeros(7)
    dq[0] = 2.0
    start = ChunkStart(HOME, dq, np.zeros(7), np.zeros(7))
    brake = LAYER.brake(start)
    acc = np.diff(np.concatenate([dq[None], brake.velocities]), axis=0)[:, 0] / DT
    np.testing.assert_allclose(acc[:12], [-5.0] + [-10.0] * 9 + [-5.0, 0.0], atol=1e-9)
    assert np.all(brake.velocities[11:] == 0.0) and np.all(brake.velocities[:, 1:] == 0.0)


# --- each check catches its violation ----------------------------------------------------------


def test_a_smooth_move_passes_and_a_position_jump_is_caught_on_its_joint() -> None:
    start = ChunkStart.rest(HOME)
    chunk = profile(HOME, on_joint(2, SMOOTH))
    assert LAYER.verify(chunk, start, NAMES) == [] and servo_violations(start, chunk) == []
    P = chunk.positions.copy()
    P[5:, 2] += 0.05
    jumped = TrajectoryChunk(P, chunk.velocities, DT)
    found = LAYER.verify(jumped, start, NAMES)
    assert {v.joint for v in found} == {"fr3_joint3"}
    assert ("acceleration", "segment", 5) in {(v.kind, v.where, v.at) for v in found}
    assert "acceleration" in servo_violations(start, jumped)


def test_a_chunk_too_fast_for_the_velocity_limit_is_caught() -> None:
    q0 = HOME.copy()
    q0[0] = -0.6
    start = ChunkStart.rest(q0)
    # Peak 3.0 rad/s on joint 1 (limit 2.62 rad/s), within the acceleration and jerk limits.
    chunk = profile(q0, on_joint(0, [5.0] + [10.0] * 14 + [5.0, 0.0, 0.0, -5.0] + [-10.0] * 14 + [-5.0]), 40)
    found = LAYER.verify(chunk, start, NAMES)
    assert kinds_and_joints(found) == {("velocity", "fr3_joint1")}
    (v,) = found
    assert v.where == "segment" and v.value > v.limit > 2.6 and "fr3_joint1" in v.message
    assert servo_violations(start, chunk) == ["velocity"]


def test_a_velocity_bound_that_shrinks_inside_a_segment_is_caught_there() -> None:
    # Joint 1 at 1.0 rad/s from 2.592 rad: its bound is above 1.0 rad/s for the first 15 ms (down to
    # 1.009 rad/s at 2.607 rad), below it at the end of segment 0 (0.986 rad/s at 2.612 rad); then
    # it brakes to rest. Only the last quarter of segment 0 breaks the limit.
    q0, dq0 = HOME.copy(), np.zeros(7)
    q0[0], dq0[0] = 2.592, 1.0
    assert velocity_bounds(FR3, q0 + 0.015)[1][0] > 1.0 > velocity_bounds(FR3, q0 + 0.02)[1][0]
    start = ChunkStart(q0, dq0, np.zeros(7), np.zeros(7))
    chunk = profile(q0, on_joint(0, [0.0, -5.0, -10.0, -10.0, -10.0, -10.0, -5.0]), dq0=dq0)
    assert np.all(chunk.velocities[-1] == 0.0)
    found = LAYER.verify(chunk, start, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [("velocity", "fr3_joint1", "segment", 0)]
    assert found[0].limit == pytest.approx(velocity_bounds(FR3, q0 + 0.02)[1][0])
    assert servo_violations(start, chunk) == ["velocity"]


def test_a_velocity_peak_between_knots_is_caught() -> None:
    # 2.6 rad/s at every knot (limit 2.619 rad/s); one knot 0.6 mrad ahead makes segment 5 bulge
    # to 2.645 rad/s in its middle (at +-9 rad/s^2).
    q0, dq0 = HOME.copy(), np.zeros(7)
    q0[0], dq0[0] = -1.5, 2.6
    P, V = np.tile(q0, (10, 1)), np.tile(dq0, (10, 1))
    P[:, 0] += 2.6 * DT * np.arange(1, 11)
    P[5, 0] += 0.0006
    found = LAYER.verify(TrajectoryChunk(P, V, DT), ChunkStart(q0, dq0, np.zeros(7), np.zeros(7)), NAMES)
    velocity = [v for v in found if v.kind == "velocity" and v.where == "segment"]
    assert [(v.joint, v.at) for v in velocity] == [("fr3_joint1", 5)]
    assert velocity[0].value == pytest.approx(2.645, abs=1e-9)
    assert "acceleration" not in {v.kind for v in found}


def test_an_acceleration_at_the_end_of_a_segment_is_caught() -> None:
    # One segment from -0.12 rad/s to rest with jerk 600 rad/s^3: acceleration 0 at its start,
    # 12 rad/s^2 at its end (and a step of 12 rad/s^2 into the hold).
    q0, dq0 = HOME.copy(), np.zeros(7)
    dq0[2] = -0.12
    P = q0[None].copy()
    P[0, 2] += -0.12 * DT + 600.0 * DT**3 / 6
    start = ChunkStart(q0, dq0, np.zeros(7), np.zeros(7))
    found = LAYER.verify(TrajectoryChunk(P, np.zeros((1, 7)), DT), start, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [
        ("acceleration", "fr3_joint3", "segment", 0),
        ("jerk", "fr3_joint3", "knot", 1),
    ]
    assert found[0].value == pytest.approx(12.0) and found[0].limit == 10.0


def test_a_chunk_that_crosses_the_margin_between_knots_only_is_caught() -> None:
    # Joint 1 turns round in segment 4 (+0.099 -> -0.099 rad/s at -9.9 rad/s^2): both knots of
    # that segment lie 0.2 mrad inside the margin, the apex between them 0.3 mrad beyond it.
    acc = 0.99 * np.array([5.0, 5.0, 0.0, -5.0, -10.0, -5.0, 0.0, 5.0, 5.0])
    rel = profile(np.zeros(7), on_joint(0, list(acc)))
    q0 = HOME.copy()
    q0[0] = Q_HI[0] - 0.0002 - rel.positions[:, 0].max()
    start = ChunkStart.rest(q0)
    chunk = profile(q0, on_joint(0, list(acc)))
    assert chunk.positions[:, 0].max() <= Q_HI[0] - 0.0001, "every knot inside the margin"
    found = LAYER.verify(chunk, start, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [("position", "fr3_joint1", "segment", 4)]
    assert found[0].value == pytest.approx(Q_HI[0] + 0.0002 + 0.000295 - 0.0002, abs=2e-6)
    assert servo_violations(start, chunk) == ["position"]


def test_an_acceleration_step_at_the_start_is_caught_and_a_matching_start_passes() -> None:
    chunk = profile(HOME, on_joint(3, [6.0, 5.0, 1.0, -4.0, -5.0, -3.0]))
    at_rest = ChunkStart.rest(HOME)
    found = LAYER.verify(chunk, at_rest, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [("jerk", "fr3_joint4", "knot", 0)]
    assert found[0].value == pytest.approx(6000.0) and found[0].limit == 5000.0
    assert servo_violations(at_rest, chunk) == ["jerk"]
    ddq = np.zeros(7)
    ddq[3] = 6.0  # the previous segment already accelerated at 6 rad/s^2: no step
    accelerating = ChunkStart(HOME, np.zeros(7), ddq, np.zeros(7))
    assert LAYER.verify(chunk, accelerating, NAMES) == [] and servo_violations(accelerating, chunk) == []
    # ... unless the previous segment's own jerk leaves no room for the step into this one.
    dddq = np.zeros(7)
    dddq[3] = 4500.0
    ddq[3] = 5.0
    jerky = ChunkStart(HOME, np.zeros(7), ddq, dddq)
    assert [(v.kind, v.at) for v in LAYER.verify(chunk, jerky, NAMES)] == [("jerk", 0)]


def test_an_in_segment_jerk_is_caught() -> None:
    j = 6000.0  # a cubic from rest: 6000 rad/s^3 for 20 ms
    P = np.tile(HOME, (3, 1))
    V = np.zeros((3, 7))
    P[0, 1] += j * DT**3 / 6
    V[0, 1] = j * DT**2 / 2
    found = LAYER.verify(TrajectoryChunk(P, V, DT), ChunkStart.rest(HOME), NAMES)
    assert ("jerk", "fr3_joint2", "segment", 0) in {(v.kind, v.joint, v.where, v.at) for v in found}


def test_a_chunk_that_ends_moving_is_caught() -> None:
    start = ChunkStart.rest(HOME)
    full = profile(HOME, on_joint(2, SMOOTH))
    cut = TrajectoryChunk(full.positions[:4], full.velocities[:4], DT)
    found = LAYER.verify(cut, start, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [("velocity", "fr3_joint3", "knot", 4)]
    assert "acceleration" in servo_violations(start, cut)


def test_nan_and_inf_are_caught_with_joint_and_knot() -> None:
    start = ChunkStart.rest(HOME)
    chunk = profile(HOME, on_joint(2, SMOOTH))
    P, V = chunk.positions.copy(), chunk.velocities.copy()
    P[3, 4] = np.nan
    V[0, 6] = np.inf
    found = LAYER.verify(TrajectoryChunk(P, V, DT), start, NAMES)
    assert [(v.kind, v.joint, v.where, v.at) for v in found] == [
        ("finite", "fr3_joint5", "knot", 4),
        ("finite", "fr3_joint7", "knot", 1),
    ]


@pytest.mark.parametrize(
    "names", [NAMES[::-1], NAMES[:6], (*NAMES, "fr3_joint8"), tuple(n.replace("fr3", "panda") for n in NAMES)]
)
def test_wrong_joint_names_are_caught(names: tuple[str, ...]) -> None:
    chunk = profile(HOME, on_joint(2, SMOOTH))
    found = LAYER.verify(chunk, ChunkStart.rest(HOME), names)
    assert [(v.kind, v.joint, v.where) for v in found] == [("names", None, "chunk")]
    assert "fr3_joint1" in found[0].message


@pytest.mark.parametrize(
    "mangle",
    [
        lambda P, V: TrajectoryChunk(P[:, :6], V[:, :6], DT),
        lambda P, V: TrajectoryChunk(P, V[:-1], DT),
        lambda P, V: TrajectoryChunk(P[:0], V[:0], DT),
        lambda P, V: TrajectoryChunk(P[0], V[0], DT),
        lambda P, V: TrajectoryChunk(P.tolist(), V, DT),
        lambda P, V: TrajectoryChunk(P.astype(np.float32), V.astype(np.float32), DT),
        lambda P, V: TrajectoryChunk(P, V, 0.01),
        lambda P, V: TrajectoryChunk(P, V, "0.02"),
        lambda P, V: (P, V),
    ],
)
def test_malformed_chunks_are_caught(mangle: Any) -> None:
    chunk = profile(HOME, on_joint(2, SMOOTH))
    found = LAYER.verify(mangle(chunk.positions, chunk.velocities), ChunkStart.rest(HOME), NAMES)
    assert [(v.kind, v.where, v.at) for v in found] == [("shape", "chunk", -1)]


def test_every_message_is_one_line_naming_kind_joint_and_place() -> None:
    start = ChunkStart.rest(HOME)
    P = profile(HOME, on_joint(2, SMOOTH)).positions.copy()
    P[5:, :] += 0.05  # every joint jumps
    found = LAYER.verify(TrajectoryChunk(P, profile(HOME, []).velocities[: len(P)], DT), start, NAMES)
    assert {v.joint for v in found} == set(NAMES)
    for v in found:
        assert "\n" not in v.message and v.message.startswith(f"{v.kind}: {v.joint} at {v.where} {v.at} ")
    assert len(found) == len({(v.kind, v.joint, v.where) for v in found}), "one per kind, joint and place"


# --- a start outside the limits: the brake still, reporting only what the start forced ---------


def _start(q: np.ndarray | None = None, **fields: tuple[int, float]) -> ChunkStart:
    arrays = {name: np.zeros(7) for name in ("dq", "ddq", "dddq")}
    for name, (j, value) in fields.items():
        arrays[name][j] = value
    return ChunkStart(HOME if q is None else q, arrays["dq"], arrays["ddq"], arrays["dddq"])


def test_a_start_beyond_the_position_margin_brakes_and_reports_only_the_position() -> None:
    q = HOME.copy()
    q[0] = LIM.q_max[0] - 0.01
    start = _start(q)
    verdict = LAYER.filter(profile(q, []), start, NAMES)  # holding there is no way out either
    assert not verdict.passed
    assert kinds_and_joints(LAYER.verify(verdict.chunk, start, NAMES)) == {("position", "fr3_joint1")}
    assert np.all(verdict.chunk.positions == q) and np.all(verdict.chunk.velocities == 0.0)


@pytest.mark.parametrize(
    ("fields", "forced"),
    [
        ({"dq": (4, 5.5)}, {("velocity", "fr3_joint5")}),  # faster than dq_max = 5.26 rad/s
        ({"ddq": (1, 20.0)}, {("acceleration", "fr3_joint2")}),  # twice ddq_max: ramped down, not jumped
        ({"dddq": (6, 6000.0)}, {("jerk", "fr3_joint7")}),  # no room for any step at the start
    ],
)
def test_a_start_beyond_a_limit_brakes_and_reports_only_that_limit(
    fields: dict[str, tuple[int, float]], forced: set[tuple[str, str]]
) -> None:
    start = _start(**fields)
    brake = LAYER.brake(start)
    assert kinds_and_joints(LAYER.verify(brake, start, NAMES)) == forced
    assert np.all(brake.velocities[-1] == 0.0)


def test_a_start_too_fast_to_stop_inside_the_margin_reports_no_acceleration_or_jerk() -> None:
    q = HOME.copy()
    q[0] = Q_HI[0] - 0.05
    start = _start(q, dq=(0, 1.5))
    found = LAYER.verify(LAYER.brake(start), start, NAMES)
    assert ("position", "fr3_joint1") in kinds_and_joints(found)
    assert {v.kind for v in found} <= {"position", "velocity"} and {v.joint for v in found} == {"fr3_joint1"}


def test_a_malformed_start_is_refused_by_name() -> None:
    chunk = profile(HOME, [])
    with pytest.raises(InputError, match="start.dq contains NaN or inf at fr3_joint3"):
        LAYER.filter(chunk, _start(dq=(2, np.nan)), NAMES)
    with pytest.raises(InputError, match=r"start.q has shape \(6,\)"):
        LAYER.brake(ChunkStart.rest(HOME[:6]))
    with pytest.raises(InputError, match="expected a ChunkStart"):
        LAYER.verify(chunk, CommandState(HOME, np.zeros(7), np.zeros(7)), NAMES)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no command state"):
        LAYER.brake(_start(dq=(0, 1e9)))


# --- next_start ---------------------------------------------------------------------------------


def test_next_start_is_the_state_at_the_first_knot() -> None:
    rng = np.random.default_rng(3)
    start = ChunkStart(HOME, rng.normal(size=7), rng.normal(size=7), None)
    one = TrajectoryChunk(HOME + 0.01 * rng.normal(size=(1, 7)), rng.normal(size=(1, 7)), DT)
    nxt = LAYER.next_start(one, start)
    at = sample_hermite(start.q, start.dq, one, np.array([0.0, DT]))
    np.testing.assert_allclose(nxt.q, at.q[1], atol=1e-12)
    np.testing.assert_allclose(nxt.dq, at.dq[1], atol=1e-10)
    np.testing.assert_allclose(nxt.ddq, at.ddq[1], atol=1e-6)
    np.testing.assert_allclose(nxt.dddq, (at.ddq[1] - at.ddq[0]) / DT, rtol=1e-9, atol=1e-6)


def test_a_chain_of_filtered_chunks_keeps_the_limits_across_ticks() -> None:
    # Tick by tick, alternating feasible chunks and garbage: the commands actually executed (each
    # chunk's first segment) joined up, as the robot sees them.
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), DT)
    # The generator accepts command states within its own budget (80 % of ddq_max): a brake at the
    # same fractions leaves it one it can continue from.
    layer = SafetyLayer(FR3, SafetyConfig(acceleration_fraction=0.8, jerk_fraction=0.8), DT, H)
    rng = np.random.default_rng(11)
    state = gen.rest(HOME)
    start = ChunkStart.rest(HOME)
    samples = [np.repeat(HOME[None], 3, axis=0)]
    replaced = 0
    for tick in range(150):
        res = gen.generate(state, rng.choice([-1.0, 1.0], 7))
        chunk = res.chunk
        if tick % 7 == 3:
            chunk = TrajectoryChunk(
                chunk.positions + 0.01 * rng.normal(size=chunk.positions.shape), chunk.velocities, DT
            )
        verdict = layer.filter(chunk, start, NAMES)
        replaced += not verdict.passed
        samples.append(sample_hermite(start.q, start.dq, verdict.chunk, H * np.arange(1, 21)).q)
        start = layer.next_start(verdict.chunk, start)
        state = CommandState(start.q, start.dq, start.ddq)
    assert replaced == len(range(3, 150, 7))
    Q = np.concatenate(samples)
    V = np.diff(Q, axis=0) / H
    A = np.diff(V, axis=0) / H
    J = np.diff(A, axis=0) / H
    lo, hi = velocity_bounds(FR3, Q[:-1])
    assert np.all((hi + V_SLACK >= V) & (lo - V_SLACK <= V))
    assert np.all(np.abs(A) <= A_MAX + 1e-6) and np.all(np.abs(J) <= J_MAX + 1e-3)
    assert np.all((Q >= Q_LO - Q_SLACK) & (Q <= Q_HI + Q_SLACK))


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("position_margin", -0.01),
        ("position_margin", 0.6),
        ("velocity_margin", -1.0),
        ("velocity_margin", 2.0),
        ("acceleration_fraction", 0.0),
        ("acceleration_fraction", 1.5),
        ("jerk_fraction", 0.0),
        ("jerk_fraction", float("nan")),
        ("tolerance", -1e-9),
        ("tolerance", 0.1),
        ("tolerance", "1e-9"),
        ("position_margin", None),
        ("jerk_fraction", True),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"SafetyConfig\.{field}="):
        SafetyConfig(**{field: value})


def test_layer_errors_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="SafetyLayer.dt"):
        SafetyLayer(FR3, CFG, 0.0, H)
    with pytest.raises(ConfigError, match="SafetyLayer.servo_period"):
        SafetyLayer(FR3, CFG, DT, 0.5)
    with pytest.raises(ConfigError, match="whole multiple"):
        SafetyLayer(FR3, CFG, 0.0205, H)
    # 0.02 rad from its upper limit joint 1 may move at 0.262 rad/s: a 0.3 rad/s margin forbids rest there.
    with pytest.raises(ConfigError, match=r"SafetyConfig\.velocity_margin=0\.3 .* fr3_joint1 .*0\.2618 rad/s"):
        SafetyLayer(FR3, SafetyConfig(velocity_margin=0.3), DT, H)


def test_fractions_and_margins_narrow_the_limits() -> None:
    start = ChunkStart.rest(HOME)
    chunk = profile(HOME, on_joint(2, SMOOTH))  # 5 rad/s^2, steps of 2.5 rad/s^2 per knot
    assert SafetyLayer(FR3, SafetyConfig(acceleration_fraction=0.6), DT, H).verify(chunk, start, NAMES) == []
    half = SafetyLayer(FR3, SafetyConfig(acceleration_fraction=0.4, jerk_fraction=0.4), DT, H)
    assert kinds_and_joints(half.verify(chunk, start, NAMES)) == {
        ("acceleration", "fr3_joint3"),
        ("jerk", "fr3_joint3"),
    }
    # 2.4 rad/s on joint 1, where its limit is 2.619 rad/s: inside it, not 0.3 rad/s inside it.
    q0 = HOME.copy()
    q0[0] = -0.6
    fast = profile(q0, on_joint(0, [5.0] + [10.0] * 11 + [5.0, 0.0, -5.0] + [-10.0] * 11 + [-5.0]), 40)
    assert LAYER.verify(fast, ChunkStart.rest(q0), NAMES) == []
    careful = SafetyLayer(FR3, SafetyConfig(velocity_margin=0.3, position_margin=0.05), DT, H)
    assert kinds_and_joints(careful.verify(fast, ChunkStart.rest(q0), NAMES)) == {("velocity", "fr3_joint1")}
    # 30 mrad from the upper limit of joint 6: inside the default margin, not inside 50 mrad.
    q1 = HOME.copy()
    q1[5] = LIM.q_max[5] - 0.03
    assert LAYER.verify(profile(q1, []), ChunkStart.rest(q1), NAMES) == []
    wide = SafetyLayer(FR3, SafetyConfig(position_margin=0.05), DT, H)
    found = wide.verify(profile(q1, []), ChunkStart.rest(q1), NAMES)
    assert [(v.kind, v.joint, v.limit) for v in found] == [("position", "fr3_joint6", LIM.q_max[5] - 0.05)]


# --- independence ------------------------------------------------------------------------------


def test_the_safety_package_imports_neither_the_generator_nor_torch() -> None:
    # Statically: no module of the package names them, not even inside a function.
    root = Path(safety.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.startswith(("wm_control.chunking", "torch"))], (path.name, names)
    # Dynamically, in a fresh interpreter. ``wm_control/__init__`` itself imports the generator for
    # the flat API, so the parent package is stood in for by a bare namespace: what gets loaded is
    # what the safety package pulls in.
    code = (
        "import json, sys, types\n"
        f"pkg = types.ModuleType('wm_control'); pkg.__path__ = [{str(root.parent)!r}]\n"
        "sys.modules['wm_control'] = pkg\n"
        "import wm_control.safety\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in ('torch', 'wm_control.chunking')"
        " or m.startswith('torch.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert sorted(safety.__all__) == sorted(
        ["KINDS", "ChunkStart", "SafetyConfig", "SafetyLayer", "Verdict", "Violation", "stop_knots"]
    )


# --- the floor check (wm_control.safety.workspace) ----------------------------------------------------
FLOOR_LAYER = SafetyLayer(FR3, SafetyConfig(floor_height=0.0, floor_clearance=0.03), DT, H)


def _pose_at_height(guard: Any, height: float) -> np.ndarray:
    """A pose between home and a low reach whose lowest point is at ``height`` [m] (bisection)."""
    down = HOME.copy()
    down[1], down[3] = 1.2, -1.0  # shoulder forward, elbow open: the hand far below the base
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if guard.lowest(HOME + mid * (down - HOME)) > height else (lo, mid)
    return HOME + lo * (down - HOME)


def _drive(q: np.ndarray, direction: float, ticks: int) -> list[tuple[ChunkStart, TrajectoryChunk]]:
    """The chunk generator's chunks over ``ticks`` ticks from rest at ``q``, shoulder and elbow
    driven down (+1) or up (-1) at full action, each from where the previous one is a tick later.
    """
    gen = ChunkGenerator(FR3, ChunkConfig(), DT, servo_period=H)
    state, out = gen.rest(q), []
    action = np.zeros(7)
    action[1] = action[3] = direction
    for _ in range(ticks):
        result = gen.generate(state, action)
        out.append((to_start(state), result.chunk))
        state = result.next_state
    return out


def test_the_floor_check_refuses_a_chunk_that_lowers_the_hand_onto_the_table_and_brakes() -> None:
    from wm_control.safety.workspace import FloorGuard

    guard = FloorGuard(FR3, 0.0, 0.03)
    assert guard.lowest(HOME) > 0.2  # the home pose is well above the table
    chunks = _drive(_pose_at_height(guard, 0.1), +1.0, 50)
    verdicts = [FLOOR_LAYER.filter(chunk, start, NAMES) for start, chunk in chunks]
    first = next(i for i, v in enumerate(verdicts) if not v.passed)
    assert all(not LAYER.verify(chunk, start, NAMES) for start, chunk in chunks[: first + 1])  # joint limits: fine
    assert all(guard.lowest(chunk.positions).min() >= 0.03 for _, chunk in chunks[:first])  # all above the limit
    verdict = verdicts[first]
    assert [v.kind for v in verdict.violations] == ["floor"]  # refused before the arm gets there
    assert verdict.violations[0].limit == pytest.approx(0.03) and verdict.violations[0].value < 0.03
    assert "floor" in verdict.violations[0].message
    np.testing.assert_allclose(verdict.chunk.velocities[-1], 0.0, atol=1e-12)  # the brake went instead
    # A command already too low may rise out of it, not sink further.
    low = _pose_at_height(guard, 0.01)
    assert all(FLOOR_LAYER.filter(chunk, start, NAMES).passed for start, chunk in _drive(low, -1.0, 10))
    start, chunk = _drive(low, +1.0, 1)[0]
    assert not FLOOR_LAYER.filter(chunk, start, NAMES).passed
    chunk = chunks[first][1]
    start = chunks[first][0]
    # Off by default.
    assert LAYER.filter(chunk, start, NAMES).passed


# --- the base column check (wm_control.safety.workspace.BaseGuard) ------------------------------------
BASE_LAYER = SafetyLayer(FR3, SafetyConfig(base_clearance=0.02), DT, H)


def test_the_base_check_flags_every_pose_whose_collision_geometry_touches_the_base() -> None:
    """Against the sim's collision geoms (sim/assets/fr3.xml): link 0 and link 1 against links 5-7 and
    the fingers, 3000 random poses within the joint limits. Measured: every touching pose has a gap
    under 1.5 cm, and 2 % of the poses flagged are more than 10 cm clear (the spheres are conservative).
    """
    import mujoco

    from sim.scene import build_model
    from wm_control.safety.workspace import BaseGuard

    m = build_model()
    d = mujoco.MjData(m)

    def body(i: int) -> str:
        return mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[i])) or ""

    solid = [i for i in range(m.ngeom) if m.geom_contype[i] | m.geom_conaffinity[i]]
    base = [i for i in solid if body(i).endswith(("link0", "link1"))]
    moving = [i for i in solid if body(i).endswith(("link5", "link6", "link7", "finger"))]
    assert len(base) == 3 and len(moving) >= 7
    joints = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)] for n in NAMES]
    guard = BaseGuard(FR3, 0.02)
    rng = np.random.default_rng(0)
    touching = 0
    for q in rng.uniform(FR3.limits.q_min, FR3.limits.q_max, (3000, 7)):
        d.qpos[:] = 0.0
        d.qpos[joints] = q
        mujoco.mj_forward(m, d)
        if min(mujoco.mj_geomDistance(m, d, a, b, 0.1, None) for a in base for b in moving) < 0.0:
            touching += 1
            assert guard.gap(q) < 0.02, q
    assert touching > 20  # the sample reaches the base


def _drive_action(q: np.ndarray, action: np.ndarray, ticks: int) -> list[tuple[ChunkStart, TrajectoryChunk]]:
    gen = ChunkGenerator(FR3, ChunkConfig(), DT, servo_period=H)
    state, out = gen.rest(q), []
    for _ in range(ticks):
        result = gen.generate(state, action)
        out.append((to_start(state), result.chunk))
        state = result.next_state
    return out


def test_the_base_check_refuses_a_chunk_that_folds_the_wrist_onto_the_base_and_brakes() -> None:
    from wm_control.safety.workspace import BaseGuard

    guard = BaseGuard(FR3, 0.02)
    q = HOME.copy()
    q[1], q[3], q[5] = 0.5, -2.0, 1.5  # shoulder forward, elbow half folded, wrist bent back
    assert guard.gap(q) > 0.05
    fold = np.zeros(7)
    fold[3] = -1.0  # the elbow folds the forearm back over the base
    chunks = _drive_action(q, fold, 60)
    verdicts = [BASE_LAYER.filter(chunk, start, NAMES) for start, chunk in chunks]
    first = next(i for i, v in enumerate(verdicts) if not v.passed)
    assert all(not LAYER.verify(chunk, start, NAMES) for start, chunk in chunks[: first + 1])  # joint limits: fine
    assert all(guard.gap(chunk.positions).min() >= 0.02 for _, chunk in chunks[:first])
    verdict = verdicts[first]
    assert [v.kind for v in verdict.violations] == ["base"]
    assert verdict.violations[0].limit == pytest.approx(0.02) and verdict.violations[0].value < 0.02
    assert "base column" in verdict.violations[0].message
    np.testing.assert_allclose(verdict.chunk.velocities[-1], 0.0, atol=1e-12)  # the brake went instead
    # Unfolding from too close is allowed; folding further is not. Off by default.
    close = chunks[first][1].positions[-1]
    assert guard.gap(close) < 0.02
    assert all(BASE_LAYER.filter(chunk, start, NAMES).passed for start, chunk in _drive_action(close, -fold, 10))
    start, chunk = _drive_action(close, fold, 1)[0]
    assert not BASE_LAYER.filter(chunk, start, NAMES).passed
    assert LAYER.filter(*chunks[first][::-1], NAMES).passed


# --- the self-collision check (wm_control.safety.workspace.SelfGuard) ------------------------------------
SELF_LAYER = SafetyLayer(FR3, SafetyConfig(self_clearance=0.02), DT, H)


def test_the_self_check_flags_every_pose_whose_collision_geometry_touches_the_upper_arm() -> None:
    """Against the sim's collision geoms: links 2-4 against the links and the hand three or more links
    further on (closer neighbours are excluded in the sim too), 3000 random poses within the joint
    limits. Measured: 35 touching poses, each with a gap under 0.5 cm; 72 flagged, none more than 10 cm
    clear. With the floor and base checks, every self or table contact the sim found in another 3000
    poses is covered but link 0 against link 4 (1 pose)."""
    import mujoco

    from sim.scene import build_model
    from wm_control.safety.workspace import SelfGuard

    m = build_model()
    d = mujoco.MjData(m)

    def link(i: int) -> int | None:
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[i])) or ""
        if name.endswith(("hand_base", "finger")):
            return 8
        return next((k for k in range(8) if name.endswith(f"link{k}")), None)

    solid = [i for i in range(m.ngeom) if (m.geom_contype[i] | m.geom_conaffinity[i]) and link(i) is not None]
    pairs = [(a, b) for a in solid for b in solid if link(a) in (2, 3, 4) and link(b) - link(a) >= 3]
    assert {(link(a), link(b)) for a, b in pairs} == {
        (2, 5),
        (2, 6),
        (2, 7),
        (2, 8),
        (3, 6),
        (3, 7),
        (3, 8),
        (4, 7),
        (4, 8),
    }
    joints = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)] for n in NAMES]
    guard = SelfGuard(FR3, 0.02)
    rng = np.random.default_rng(0)
    touching = 0
    for q in rng.uniform(FR3.limits.q_min, FR3.limits.q_max, (3000, 7)):
        d.qpos[:] = 0.0
        d.qpos[joints] = q
        mujoco.mj_forward(m, d)
        distance = min(mujoco.mj_geomDistance(m, d, a, b, 0.2, None) for a, b in pairs)
        if distance < 0.0:
            touching += 1
            assert guard.gap(q) < 0.02, q
        elif distance > 0.1:
            assert guard.gap(q) > 0.02, q  # conservative, not blind: far-apart poses pass
    assert touching > 20  # the sample reaches the upper arm


def test_the_self_check_refuses_a_chunk_that_folds_the_hand_onto_the_upper_arm_and_brakes() -> None:
    from wm_control.safety.workspace import BaseGuard, SelfGuard

    guard = SelfGuard(FR3, 0.02)
    q = np.array([0.76, -0.5, -1.51, -2.54, 0.09, 1.86, 0.88])  # found by a search: clear of both
    assert guard.gap(q) > 0.08 and BaseGuard(FR3, 0.02).gap(q) > 0.08
    fold = np.zeros(7)
    fold[5] = -1.0  # the wrist bends the hand back onto the upper arm
    chunks = _drive_action(q, fold, 60)
    verdicts = [SELF_LAYER.filter(chunk, start, NAMES) for start, chunk in chunks]
    first = next(i for i, v in enumerate(verdicts) if not v.passed)
    assert all(not BASE_LAYER.verify(chunk, start, NAMES) for start, chunk in chunks[: first + 1])  # limits, base: fine
    assert all(guard.gap(chunk.positions).min() >= 0.02 for _, chunk in chunks[:first])
    verdict = verdicts[first]
    assert [v.kind for v in verdict.violations] == ["self"]
    assert verdict.violations[0].limit == pytest.approx(0.02) and verdict.violations[0].value < 0.02
    assert "upper arm" in verdict.violations[0].message
    np.testing.assert_allclose(verdict.chunk.velocities[-1], 0.0, atol=1e-12)  # the brake went instead
    # Unbending from too close is allowed; bending further is not. Off by default.
    close = chunks[first][1].positions[-1]
    assert guard.gap(close) < 0.02
    assert all(SELF_LAYER.filter(chunk, start, NAMES).passed for start, chunk in _drive_action(close, -fold, 10))
    start, chunk = _drive_action(close, fold, 1)[0]
    assert not SELF_LAYER.filter(chunk, start, NAMES).passed
    assert LAYER.filter(*chunks[first][::-1], NAMES).passed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"floor_height": 1.0}, "floor_height"),
        ({"floor_clearance": -1.0}, "floor_clearance"),
        ({"floor_height": "low"}, "floor_height"),
        ({"base_clearance": 0.5}, "base_clearance"),
        ({"base_clearance": -0.01}, "base_clearance"),
        ({"self_clearance": 0.31}, "self_clearance"),
        ({"self_clearance": "near"}, "self_clearance"),
    ],
)
def test_bad_floor_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SafetyConfig(**kwargs)
