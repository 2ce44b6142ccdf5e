"""What the operator and the benchmark read (``wm_control.runtime.diagnostics``): the status levels and
messages of ``TickLog`` and the run summary of ``RunStats``, from real ticks of a commander on a fake
backend.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import DT
from test_commander import GOAL, Q0, make, next_period

from wm_control.runtime.diagnostics import ERROR, OK, WARN, RunStats, TickLog


def test_levels_and_messages_follow_what_the_ticks_did() -> None:
    commander, clock = make()
    log = TickLog()
    report = log.report()
    assert report.level == WARN and "no control tick" in report.message
    for _ in range(5):
        log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    report = log.report()
    assert report.level == OK and report.message.startswith("planning: 5/5 ticks full MPPI")
    assert report.values["ticks MPPI"] == "5" and float(report.values["latency p50 [ms]"]) == pytest.approx(15.0)
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL, hold=True), commander.counters)
    report = log.report()
    assert report.level == OK and report.message == "holding on request (~/hold)"
    next_period(clock)
    out = commander.tick(clock() - 1.0, Q0, np.zeros(7), GOAL)  # a joint state a second old
    log.add(out, commander.counters)
    report = log.report()
    assert report.level == ERROR and report.message.startswith("holding:"), report.message
    assert "total ticks" in report.values


def test_holding_at_a_goal_or_on_request_is_not_planning_below_budget() -> None:
    commander, clock = make()
    log = TickLog()
    for _ in range(3):
        log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL, hold=True), commander.counters)
    for _ in range(5):
        log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    report = log.report()
    assert report.level == OK, report.message
    assert report.message.startswith("planning: 5/5 ticks full MPPI") and "(3 more held" in report.message


def test_run_stats_summarise_periods_latency_levels_and_misses() -> None:
    commander, clock = make()
    stats = RunStats(DT)
    starts = []
    for k in range(20):
        start = next_period(clock) + (0.004 if k == 10 else 0.0)  # one timer fires 4 ms late
        clock.t = start
        starts.append(start)
        out = commander.tick(start, Q0, np.zeros(7), GOAL)
        stats.add(start, out, commander.counters, start - 0.001, clock())
    summary = stats.summary()
    assert summary["ticks"] == 20 and summary["full_solve_share"] == 1.0
    assert summary["tick_period_p50_ms"] == pytest.approx(DT * 1e3, abs=1e-6)
    # Periods: 20 ms but 24 and 16 around the late tick.
    assert summary["tick_jitter_p50_ms"] == pytest.approx(0.0, abs=1e-6)
    assert 3.0 < summary["tick_jitter_p99_ms"] <= 4.0 + 1e-6
    assert summary["state_to_command_p50_ms"] == pytest.approx(16.0, abs=1e-6)  # 1 ms age + the fake's 15 ms solve
    assert summary["state_wait_p50_ms"] == pytest.approx(1.0, abs=1e-6)  # the part before the tick started
    assert summary["ticks_by_level"] == {"MPPI": 20} and summary["deadline_misses"] == 0
    assert summary["planner_latency_p50_ms"] == pytest.approx(15.0, abs=1e-6)  # the fake's solve
    hist = summary["planner_latency_hist_ms"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == 2 * round(DT * 1e3) + 1
    assert sum(hist["counts"]) == 20 and hist["counts"][15] == 20  # all in the [15, 16) ms bin
    assert RunStats(DT).summary()["tick_period_p50_ms"] is None  # no ticks: no numbers, not NaN
    assert summary["prepared_ticks"] == 0 and summary["prepare_latency_p50_ms"] is None


def test_run_stats_count_the_ticks_that_prepared_the_next_solve_and_how_long_it_took() -> None:
    commander, clock = make()
    stats = RunStats(DT)
    for k in range(10):
        start = clock.t = next_period(clock)
        out = commander.tick(start, Q0, np.zeros(7), GOAL)
        stats.add(start, out, commander.counters, start, clock(), 0.004 if k % 2 else 0.0)
    summary = stats.summary()
    assert summary["prepared_ticks"] == 5
    assert summary["prepare_latency_p50_ms"] == pytest.approx(4.0) and summary[
        "prepare_latency_p99_ms"
    ] == pytest.approx(4.0)


def test_rejected_states_a_second_command_publisher_and_no_listener_reach_the_operator() -> None:
    commander, clock = make()
    log = TickLog()
    reason = "JointState lacks joint(s) ['fr3_joint7']; it has ['fr3_joint1']"
    log.reject(reason)
    report = log.report()  # rejected before any tick: nothing controls the arm
    assert report.level == ERROR and reason in report.message, report.message
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    log.reject(reason)
    report = log.report()  # control goes on from the valid states, the operator still hears of it
    assert report.level == WARN and "1 joint state(s) rejected" in report.message
    assert report.values["last rejected joint state"] == reason and report.values["total joint states rejected"] == "2"
    next_period(clock)
    log.add(commander.tick(clock() - 1.0, Q0, np.zeros(7), GOAL), commander.counters)  # only old states left
    log.reject(reason)
    report = log.report()
    assert report.level == ERROR and report.message.startswith("holding: stale state") and reason in report.message
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    assert log.report().level == OK and not log.has_rivals()
    log.set_rivals("/fr3_arm_controller/joint_trajectory", ["/teleop"])
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    report = log.report()
    assert report.level == ERROR and "another controller" in report.message and "/teleop" in report.message
    assert log.has_rivals() and log.report().level == ERROR  # it stays until the graph says otherwise
    log.set_rivals("/fr3_arm_controller/joint_trajectory", [])
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    assert log.report().level == OK
    log.set_listeners("/fr3_arm_controller/joint_trajectory", 0)  # the node sends nothing then
    report = log.report()
    assert report.level == ERROR and "no robot listening" in report.message, report.message
    assert report.values["command topic"] == "nothing subscribes to /fr3_arm_controller/joint_trajectory"
    log.set_listeners("/fr3_arm_controller/joint_trajectory", 1)
    log.add(commander.tick(next_period(clock), Q0, np.zeros(7), GOAL), commander.counters)
    report = log.report()
    assert report.level == OK and "command topic" not in report.values
