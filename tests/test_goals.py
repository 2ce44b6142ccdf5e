"""Goal scenarios (``wm_control.goals``): reached only when within tolerance and settled for the
settle time, timeouts with the distance, seeded random goals inside the box, and the summary.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wm_control.errors import ConfigError
from wm_control.goals import GoalSequence, GoalSettings, random_goals

GOALS = [np.array([0.5, 0.0, 0.4]), np.array([0.4, 0.2, 0.3])]


def test_a_goal_is_reached_when_the_tcp_stays_close_and_slow_for_the_settle_time() -> None:
    seq = GoalSequence(GOALS, GoalSettings(tolerance=0.02, settle_speed=0.05, settle_time=0.2, timeout=8.0))
    seq.start(10.0)
    assert seq.update(10.5, GOALS[0] + 0.01, 0.2) is None  # close but moving: not settled
    assert seq.update(10.6, GOALS[0] + 0.01, 0.01) is None  # settled from here
    assert seq.update(10.7, GOALS[0] + 0.05, 0.01) is None  # left the tolerance: starts over
    assert seq.update(10.8, GOALS[0], 0.0) is None
    result = seq.update(11.0, GOALS[0], 0.0)
    assert result is not None and result.reached and result.time_to_reach == pytest.approx(0.8)
    assert seq.index == 1 and np.array_equal(seq.current, GOALS[1])


def test_a_goal_not_reached_in_time_fails_with_its_distance_and_the_summary_counts_both() -> None:
    seq = GoalSequence(GOALS, GoalSettings(timeout=1.0))
    seq.start(0.0)
    seq.update(0.1, GOALS[0], 0.0)
    assert seq.update(0.3, GOALS[0], 0.0).reached
    seq.start(0.3)
    result = seq.update(1.3, GOALS[1] + np.array([0.1, 0.0, 0.0]), 0.0)
    assert result is not None and not result.reached and math.isnan(result.time_to_reach)
    assert result.reason == "timeout after 1.0 s, 10.0 cm away"
    assert seq.done and seq.current is None and seq.update(2.0, GOALS[1], 0.0) is None
    summary = seq.summary()
    assert (summary["goals"], summary["finished"], summary["reached"]) == (2, 2, 1)
    assert summary["time_to_reach_median_s"] == pytest.approx(0.1)
    assert [r["reached"] for r in summary["results"]] == [True, False]


def test_random_goals_are_seeded_and_inside_the_box() -> None:
    low, high = (0.3, -0.3, 0.15), (0.65, 0.3, 0.55)
    goals = random_goals(50, low, high, seed=4)
    assert np.array_equal(np.array(goals), np.array(random_goals(50, low, high, seed=4)))
    assert np.all((np.array(goals) >= low) & (np.array(goals) <= high))
    assert not np.array_equal(np.array(goals), np.array(random_goals(50, low, high, seed=5)))


def test_goal_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="goals.tolerance"):
        GoalSettings(tolerance=0.0)
