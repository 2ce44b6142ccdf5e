"""Stall recovery (``wm_control.runtime.retreat``): a TCP that makes no progress towards its goal for
``stall_time`` sends the arm back to its start pose in joint space, through the loop's chunk generator
and the safety layer, then planning resumes. Forward kinematics only; a fake backend for the commander.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import DT, FakeBackend, FakeClock, model_contract

from wm_control.errors import ConfigError, InputError
from wm_control.kinematics import tcp_position
from wm_control.robot import FR3
from wm_control.runtime import FallbackLevel, control_loop
from wm_control.runtime.commander import Commander, command_state_at
from wm_control.runtime.diagnostics import WARN, TickLog
from wm_control.runtime.retreat import RETREAT, Retreat, RetreatConfig
from wm_control.safety import SafetyConfig, SafetyLayer

ROOT = Path(__file__).resolve().parents[1]
assert FR3.start_q is not None
HOME = FR3.start_q.copy()
AWAY = HOME + np.array([0.4, 0.3, -0.2, 0.25, 0.3, -0.2, 0.5])  # a posture the planner left the arm in
TCP = tcp_position(FR3, AWAY)
SCALE = np.full(7, 0.5)  # [rad/s] of action 1.0


def goal_at(distance: float) -> np.ndarray:
    """A goal ``distance`` [m] above the TCP of ``AWAY``."""
    return TCP + np.array([0.0, 0.0, distance])


def ticks(retreat: Retreat, seconds: float, goal: np.ndarray, t0: float = 0.0, **kw: bool) -> list:
    """``update`` every period for ``seconds`` with the arm standing at ``AWAY`` and the command there."""
    return [retreat.update(t0 + k * DT, AWAY, goal, AWAY, **kw) for k in range(round(seconds / DT))]


def test_an_arm_that_makes_no_progress_retreats_after_stall_time_straight_towards_the_start_pose() -> None:
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.5, gain=3.0))
    out = ticks(retreat, 2.0, goal_at(0.1))
    first = next(k for k, o in enumerate(out) if o is not None)
    assert first * DT == pytest.approx(1.5, abs=1.5 * DT)  # the window starts at the first tick
    assert all(o is None for o in out[:first]) and all(o is not None for o in out[first:])
    action, reason = out[first]
    assert reason == RETREAT and retreat.active
    assert retreat.counters == {"retreats": 1}
    # A line in joint space, scaled down as a whole into the action range.
    velocity = action * SCALE
    expected = 3.0 * (HOME - AWAY)
    np.testing.assert_allclose(velocity / np.max(np.abs(action)), expected / np.max(np.abs(expected / SCALE)))
    assert np.max(np.abs(action)) == pytest.approx(1.0)
    # Near the start pose the move slows in proportion.
    near, _ = retreat.update(2.0, AWAY, goal_at(0.1), HOME + 0.06)
    np.testing.assert_allclose(near * SCALE, 3.0 * -0.06)


def test_progress_restarts_the_window_and_no_stall_is_declared_at_the_goal() -> None:
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0, progress=0.01, near=0.02))
    goal = goal_at(0.0)
    for k in range(200):  # 4 s, coming 1 cm closer every 0.8 s
        distance = 0.3 - 0.0125 * k * DT
        assert retreat.update(k * DT, AWAY, goal + [0.0, 0.0, distance], AWAY) is None
    # A TCP within near of its goal, or held there, does not retreat, however long.
    assert all(o is None for o in ticks(retreat, 3.0, goal_at(0.015), t0=10.0))
    assert all(o is None for o in ticks(Retreat(FR3, SCALE), 3.0, goal_at(0.1), at_goal=True))


def test_a_distance_the_caller_computed_is_used_and_nan_means_compute_it_here() -> None:
    """The commander passes ``GoalArrival.distance`` (one forward kinematics a tick, not two)."""
    given = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0))
    goal = goal_at(0.3)  # q stands still 30 cm away, but the given distance keeps shrinking
    out = [given.update(k * DT, AWAY, goal, AWAY, distance=0.3 - 0.02 * k * DT) for k in range(150)]
    assert all(o is None for o in out)
    computed = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0))
    out = [computed.update(k * DT, AWAY, goal, AWAY, distance=float("nan")) for k in range(150)]
    assert any(o is not None for o in out)


def test_an_arm_that_swings_through_its_goal_without_settling_has_stalled() -> None:
    """Measured (bench/ros_link.py, seed 0, planner seed 4): 0.6-9 cm from the goal for 8 s."""
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.5, near=0.02))
    goal = TCP + [0.0, 0.0, 0.006]
    off = AWAY + np.array([0.2, 0, 0, 0, 0, 0, 0])  # joint 1 swings the TCP 7 cm away
    assert 0.05 < float(np.linalg.norm(tcp_position(FR3, off) - goal)) < 0.09
    out = []
    for k in range(150):  # through the goal every 0.4 s, away in between
        out.append(retreat.update(k * DT, AWAY if k % 20 == 0 else off, goal, AWAY))
    first = next(k for k, o in enumerate(out) if o is not None)
    assert first * DT == pytest.approx(1.5, abs=2 * DT)


def test_the_retreat_ends_at_the_start_pose_once_per_goal_and_a_new_goal_may_retreat_again() -> None:
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0, tolerance=0.05, max_per_goal=1))
    goal = goal_at(0.1)
    assert ticks(retreat, 1.2, goal)[-1] is not None
    assert retreat.update(1.3, AWAY, goal, HOME + 0.04) is None  # the command is home: planning resumes
    assert not retreat.active
    assert retreat.counters == {"retreats": 1, "retreats ended at the start pose": 1}
    assert all(o is None for o in ticks(retreat, 3.0, goal, t0=1.4))  # one per goal
    assert ticks(retreat, 1.2, goal_at(0.2), t0=5.0)[-1] is not None  # a new goal: the window and count restart


def test_a_retreat_that_cannot_get_home_is_given_up_and_a_hold_ends_it() -> None:
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0, max_time=2.0, max_per_goal=2))
    goal = goal_at(0.1)
    out = ticks(retreat, 3.5, goal)  # the command never moves (the safety layer brakes every chunk)
    began = next(k for k, o in enumerate(out) if o is not None)
    ended = next(k for k, o in enumerate(out) if k > began and o is None)
    assert (ended - began) * DT == pytest.approx(2.0, abs=2 * DT)
    assert retreat.counters == {"retreats": 1, "retreats given up": 1}
    later = ticks(retreat, 1.2, goal, t0=3.5)
    assert later[-1] is not None  # the second of two allowed
    assert retreat.update(4.8, AWAY, goal, AWAY, hold=True) is None  # a hold request ends it
    assert not retreat.active
    assert retreat.counters["retreats given up"] == 2
    third = Retreat(FR3, SCALE, RetreatConfig(stall_time=1.0))
    assert ticks(third, 1.2, goal)[-1] is not None
    assert third.update(1.3, AWAY, goal, AWAY, at_goal=True) is None  # captured at the goal on the way
    assert third.counters == {"retreats": 1, "retreats ended at the goal": 1}


def test_off_bad_inputs_and_bad_settings() -> None:
    assert all(o is None for o in ticks(Retreat(FR3, SCALE, RetreatConfig(stall_time=0.0)), 5.0, goal_at(0.1)))
    retreat = Retreat(FR3, SCALE, RetreatConfig(stall_time=0.1))
    for q, goal, t in ((np.full(7, np.nan), goal_at(0.1), 0.0), (AWAY[:6], goal_at(0.1), 0.0),
                       (AWAY, np.zeros(2), 0.0), (AWAY, goal_at(0.1), float("nan"))):  # fmt: skip
        assert all(retreat.update(t + k * DT, q, goal, AWAY) is None for k in range(20))
    assert retreat.counters == {}
    with pytest.raises(ConfigError, match="retreat stall_time"):
        RetreatConfig(stall_time=-1.0)
    with pytest.raises(ConfigError, match="retreat progress"):
        RetreatConfig(progress=0.0)
    with pytest.raises(ConfigError, match="retreat max_per_goal"):
        RetreatConfig(max_per_goal=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="velocity_scale"):
        Retreat(FR3, np.zeros(7))


def make() -> tuple[Commander, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock, model_contract())
    loop = control_loop(backend, clock=clock)
    shaping = loop.generator.config
    layer = SafetyLayer(
        FR3,
        SafetyConfig(acceleration_fraction=shaping.acceleration_fraction, jerk_fraction=shaping.jerk_fraction),
        DT,
        loop.generator.servo_period,
    )
    retreat = Retreat(FR3, loop.generator.velocity_scale, RetreatConfig(stall_time=1.0))
    return Commander(loop, layer, clock, max_lateness=0.03, retreat=retreat), clock


def test_the_commander_retreats_through_the_safety_layer_reports_it_and_plans_again_at_home() -> None:
    """The fake planner pushes every joint the same way whatever the goal: no progress. The robot
    tracks the command exactly (measured = the command at the stamp)."""
    commander, clock = make()
    log = TickLog()
    goal = np.array([0.3, 0.0, 0.3])
    q, dq = AWAY.copy(), np.zeros(7)
    levels, starts, reports = [], [], []
    for _ in range(300):
        clock.t += DT
        out = commander.tick(clock.t, q, dq, goal)
        levels.append(out.command.level)
        starts.append(out.command.start.q)
        assert out.chunk is not None and out.verdict is not None and out.verdict.passed
        log.add(out, commander.counters)
        if out.command.level == FallbackLevel.RETREAT:
            reports.append(log.report())
            assert out.command.reason == RETREAT
        state = command_state_at(out.chunk, clock.t + DT)
        q, dq = state.q, state.dq
    first = levels.index(FallbackLevel.RETREAT)
    last = len(levels) - 1 - levels[::-1].index(FallbackLevel.RETREAT)
    assert all(level == FallbackLevel.RETREAT for level in levels[first : last + 1])
    assert all(level == FallbackLevel.MPPI for level in levels[last + 1 :])  # planning again, from home
    counters = commander.counters
    assert counters["retreats"] == 1 and counters["retreats ended at the start pose"] == 1
    assert counters["RETREAT"] == last - first + 1
    assert np.max(np.abs(starts[last + 1] - HOME)) <= 0.05  # it plans again from the start pose
    assert np.max(np.abs(starts[first] - HOME)) > 0.5
    assert reports[0].level == WARN and "back to the start pose" in reports[0].message
    assert "safety interventions" not in counters


def test_a_robot_that_fell_silent_restarts_the_window_instead_of_retreating_on_its_return() -> None:
    commander, clock = make()  # stall_time 1 s
    goal = np.array([0.3, 0.0, 0.3])
    q, dq = AWAY.copy(), np.zeros(7)
    t0 = clock.t
    silent = (t0 + 0.5, t0 + 2.1)  # the joint states stop for 1.6 s (their stamps stop advancing)
    stamp, ticks = t0, []
    while clock.t < t0 + 5.0:
        clock.t += DT  # (the fake backend's calls advance the clock too)
        if not silent[0] <= clock.t < silent[1]:
            stamp = clock.t
        out = commander.tick(stamp, q, dq, goal)
        ticks.append((clock.t, out.command.level))
        if out.chunk is not None:
            state = command_state_at(out.chunk, clock.t + DT)
            q, dq = state.q, state.dq
    assert all(level != FallbackLevel.RETREAT for t, level in ticks if t < silent[0])
    assert any(level == FallbackLevel.HOLD for t, level in ticks if silent[0] + 0.1 < t < silent[1])  # stale
    back = [(t, level) for t, level in ticks if t >= silent[1]]
    assert back[0][1] == FallbackLevel.MPPI  # planning again at once...
    # ... in a fresh window: the fake planner makes no progress, so it retreats one stall time later.
    first = next(t for t, level in back if level == FallbackLevel.RETREAT)
    assert first - back[0][0] >= 1.0


def test_a_fault_still_holds_during_a_retreat_and_a_malformed_retreat_action_is_a_caller_error() -> None:
    clock = FakeClock()
    loop = control_loop(FakeBackend(clock, model_contract()), clock=clock)
    goal = np.array([0.4, 0.0, 0.4])
    clock.t = 1.0
    command = loop.step(clock.t, np.full(7, np.nan), np.zeros(7), goal, retreat=(np.zeros(7), RETREAT))
    assert command.level == FallbackLevel.HOLD
    clock.t += DT
    command = loop.step(clock.t, HOME, np.zeros(7), goal, retreat=(np.full(7, 0.5), RETREAT))
    assert command.level == FallbackLevel.RETREAT and command.reason == RETREAT
    np.testing.assert_array_equal(command.action, 0.5)
    with pytest.raises(InputError, match="retreat action"):
        loop.step(clock.t + DT, HOME, np.zeros(7), goal, retreat=(np.full(7, 2.0), RETREAT))


def test_the_seed_sweep_compares_stall_times_and_prints_json_only(shipped_export: Path) -> None:
    """``bench/ros_link_seeds.py --no-write``: one JSON document on stdout, one setting per stall time
    with its goals, and nothing written under docs/results."""
    results = ROOT / "docs" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("*")}
    cmd = [sys.executable, str(ROOT / "bench" / "ros_link_seeds.py"), "--export", str(shipped_export)]
    cmd += ["--seeds", "0", "--goals", "1", "--stall-times", "1.5,0", "--no-write"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    payload = json.loads(out.stdout)
    assert [s["retreat_stall_time_s"] for s in payload["settings"]] == [1.5, 0.0]
    for setting in payload["settings"]:
        assert setting["goals"] == 1 and 0 <= setting["goals_reached"] <= 1
        assert [p["seed"] for p in setting["per_seed"]] == [0]
    assert payload["settings"][1]["retreats"] == 0  # off is off
    assert {p: p.stat().st_mtime_ns for p in results.glob("*")} == before
    bad = subprocess.run([*cmd[:2], "--seeds", "5-3", "--no-write"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "--seeds '5-3'" in bad.stderr
