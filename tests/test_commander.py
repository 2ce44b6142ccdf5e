"""The commander: stamped chunks on one grid that chain exactly, late chunks dropped, the safety
layer's brake in place of a refused chunk and the resync at rest (``wm_control.runtime.commander``).
A fake backend and a fake clock: no ROS, no model.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import DT, FakeBackend, FakeClock, model_contract

from wm_control.errors import ConfigError
from wm_control.observation import reach_observation
from wm_control.robot import FR3
from wm_control.runtime import control_loop
from wm_control.runtime.commander import Commander, command_state_at
from wm_control.safety import SafetyConfig, SafetyLayer

assert FR3.start_q is not None
Q0 = FR3.start_q.copy()
GOAL = np.array([0.5, 0.0, 0.4])


def make(max_lateness: float = 0.03, safety: SafetyConfig | None = None, prepare: bool = False, **cost: float):
    clock = FakeClock()
    backend = FakeBackend(clock, model_contract(), **cost)
    loop = control_loop(backend, clock=clock, prepare=prepare)
    shaping = loop.generator.config
    config = safety or SafetyConfig(
        acceleration_fraction=shaping.acceleration_fraction, jerk_fraction=shaping.jerk_fraction
    )
    layer = SafetyLayer(FR3, config, DT, loop.generator.servo_period)
    return Commander(loop, layer, clock, max_lateness=max_lateness), clock


def next_period(clock: FakeClock) -> float:
    """Move the clock to the next period's start (the timer fires on the period) and return it."""
    clock.t = (np.floor(clock.t / DT + 1e-6) + 1) * DT
    return clock.t


def run(commander: Commander, clock: FakeClock, ticks: int, q: np.ndarray = Q0, **kw: object) -> list:
    """``ticks`` control ticks, each starting one period after the previous one, on the state ``q``."""
    return [commander.tick(next_period(clock), q, np.zeros(7), GOAL, **kw) for _ in range(ticks)]


def test_stamps_lie_on_one_grid_and_each_chunk_starts_where_the_previous_one_is_at_its_stamp() -> None:
    commander, clock = make()
    starts = [next_period(clock) for _ in range(8)]
    clock.t = starts[0] - DT
    outs = run(commander, clock, 8)
    chunks = [o.chunk for o in outs]
    assert all(c is not None for c in chunks)
    np.testing.assert_array_equal(chunks[0].start_dq, 0.0)  # the first one starts from rest
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.stamp - before.stamp == pytest.approx(DT, abs=1e-9)
        state = command_state_at(before, after.stamp)
        np.testing.assert_allclose(after.start_q, state.q, rtol=0, atol=1e-12)
        np.testing.assert_allclose(after.start_dq, state.dq, rtol=0, atol=1e-12)
        # ... which is the previous chunk's first knot: chunks meet at knots.
        np.testing.assert_allclose(after.start_q, before.chunk.positions[0], rtol=0, atol=1e-12)
    assert all(o.verdict.passed for o in outs)
    # The stamp is at or before the tick's start, so a chunk is never stamped in the future.
    assert all(c.stamp <= t + 1e-9 for c, t in zip(chunks, starts, strict=True))


def test_a_chunk_ready_too_late_is_not_sent_and_the_next_one_continues_the_last_one_sent() -> None:
    commander, clock = make(max_lateness=0.025)  # the fake solves in 15 ms
    outs = run(commander, clock, 3)
    assert all(o.chunk is not None for o in outs)
    sent = outs[-1].chunk
    clock.t = next_period(clock) + 0.012  # the timer fires 12 ms late; with the solve, 32 ms after its stamp
    late = commander.tick(clock(), Q0, np.zeros(7), GOAL)
    assert late.chunk is None and commander.counters["late chunks dropped"] == 1
    assert commander.last is sent
    nxt = commander.tick(next_period(clock), Q0, np.zeros(7), GOAL)  # the late tick overran its period
    assert nxt.chunk is not None
    assert nxt.chunk.stamp - sent.stamp == pytest.approx(3 * DT, abs=1e-9)
    state = command_state_at(sent, nxt.chunk.stamp)
    np.testing.assert_allclose(nxt.chunk.start_q, state.q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nxt.chunk.start_dq, state.dq, rtol=0, atol=1e-12)


def test_a_chunk_the_safety_layer_refuses_goes_out_as_its_brake_and_is_counted() -> None:
    # A safety layer stricter than the generator (10 % of the acceleration limits): the fake's
    # actions accelerate harder, so its chunks fail and the brake goes instead.
    commander, clock = make(safety=SafetyConfig(acceleration_fraction=0.1, jerk_fraction=0.1))
    outs = run(commander, clock, 4)
    refused = [o for o in outs if not o.verdict.passed]
    assert refused, "the strict layer refused nothing"
    for o in refused:
        np.testing.assert_array_equal(o.chunk.chunk.positions, o.verdict.chunk.positions)
        assert not np.array_equal(o.chunk.chunk.positions, o.command.chunk.positions)
        np.testing.assert_array_equal(o.chunk.chunk.velocities[-1], 0.0)  # a brake ends at rest
    counters = commander.counters
    assert counters["safety interventions"] == len(refused)
    assert any(k.startswith("safety: ") for k in counters)


def test_the_next_solve_is_prepared_from_the_brake_that_went_out_not_from_the_refused_chunk() -> None:
    commander, clock = make(safety=SafetyConfig(acceleration_fraction=0.1, jerk_fraction=0.1), prepare=True)
    backend = commander.loop.backend
    for _ in range(6):
        out = commander.tick(next_period(clock), Q0, np.zeros(7), GOAL)
        commander.prepare()
        if not out.verdict.passed:
            break
    assert not out.verdict.passed, "the strict layer refused nothing"
    # The measured state is at rest at Q0 every tick: the prediction is that state, with the command
    # where the brake puts it one period on.
    brake = command_state_at(out.chunk, out.chunk.stamp + DT)
    planned = commander.loop.generator.generate(out.command.start, out.command.action).next_state
    assert not np.allclose(brake.dq, planned.dq)
    expected = reach_observation(FR3, Q0, np.zeros(7), GOAL, brake.dq, brake.ddq)
    np.testing.assert_allclose(backend.inputs("plan_init")[-1]["obs"], expected, rtol=1e-6, atol=1e-7)


def test_a_robot_found_away_from_the_rest_command_restarts_the_loop_from_where_it_is() -> None:
    commander, clock = make()
    run(commander, clock, 3)
    outs = run(commander, clock, 60, hold=True)  # the brake ends at rest
    rest = command_state_at(outs[-1].chunk, clock() + DT)
    np.testing.assert_array_equal(rest.dq, 0.0)
    moved = rest.q + np.array([0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])  # the robot was restarted elsewhere
    out = run(commander, clock, 1, q=moved)[0]
    assert commander.counters["resynced to the measured state"] == 1
    np.testing.assert_array_equal(out.chunk.start_q, moved)
    np.testing.assert_array_equal(out.chunk.start_dq, 0.0)
    # Within the tolerance it goes on from its own command.
    out = run(commander, clock, 1, q=out.chunk.start_q + 0.01)[0]
    assert commander.counters["resynced to the measured state"] == 1
    # A robot in motion follows some command: starting it from rest would be a jump, so no resync.
    far = out.chunk.start_q + 0.3
    out = commander.tick(next_period(clock), far, np.full(7, 0.5), GOAL)
    assert commander.counters["resynced to the measured state"] == 1
    # Nor on a stale state: it says nothing about where the robot is now.
    out = commander.tick(next_period(clock) - 1.0, far, np.zeros(7), GOAL)
    assert commander.counters["resynced to the measured state"] == 1


def test_restart_starts_from_rest_at_the_measured_position() -> None:
    commander, clock = make()
    run(commander, clock, 5)
    commander.restart()
    q = Q0 + 0.03
    out = run(commander, clock, 1, q=q)[0]
    np.testing.assert_array_equal(out.chunk.start_q, q)
    np.testing.assert_array_equal(out.chunk.start_dq, 0.0)


def test_commander_options_are_checked() -> None:
    clock = FakeClock()
    loop = control_loop(FakeBackend(clock, model_contract()), clock=clock)
    layer = SafetyLayer(FR3, SafetyConfig(), DT, loop.generator.servo_period)
    with pytest.raises(ConfigError, match="max_lateness"):
        Commander(loop, layer, clock, max_lateness=0.0)


def test_a_silent_robot_gets_no_chunks_until_it_speaks_again() -> None:
    """A stale joint state holds (the loop's reason says so) but nothing is sent: the last chunk ends at
    rest, and a restarted robot must not receive brakes from where the old one was."""
    commander, clock = make()
    assert all(o.chunk is not None for o in run(commander, clock, 3))
    start = next_period(clock)
    out = commander.tick(start - 0.2, Q0, np.zeros(7), GOAL)  # the last state is 200 ms old
    assert out.chunk is None and out.command.reason.startswith("stale state")
    assert commander.counters["not sent: robot silent"] == 1
    assert run(commander, clock, 1)[0].chunk is not None  # a fresh state: chunks again


def test_due_says_once_per_period_how_long_ago_the_period_began() -> None:
    commander, clock = make()
    assert commander.due(clock()) == 0.0  # nothing ticked yet: due at once
    first = clock()
    commander.tick(first, Q0, np.zeros(7), GOAL)
    assert commander.due(first + 0.001) is None  # this period has had its tick
    start = first - 0.25 * DT + DT  # the next one: the grid starts a quarter period before the first tick
    assert commander.due(start - 1e-4) is None
    assert commander.due(start + 0.003) == pytest.approx(0.003)
    assert commander.due(start + 2.5 * DT) == pytest.approx(0.5 * DT)  # a period skipped: still due
    clock.t = start + 0.003
    commander.tick(clock(), Q0, np.zeros(7), GOAL)
    assert commander.due(start + 0.004) is None and commander.due(start + DT + 1e-4) == pytest.approx(1e-4)
    commander.restart()
    assert commander.due(clock()) == 0.0
