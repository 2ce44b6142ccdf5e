"""A scenario of reach goals, advanced by the measured TCP: what the goal publisher node runs.

Goals are points [m] in the base frame: a fixed list (a YAML scenario) or drawn uniformly from a box
with a seed. ``GoalSequence.update(t, tcp, tcp_speed)`` is called with each measurement; a goal counts
as reached when the TCP has stayed within ``tolerance`` of it, slower than ``settle_speed``, for
``settle_time``; it fails when ``timeout`` passes first. Either way the next goal follows, until the
list is done. Results are kept per goal (reached, time to reach, or why not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from wm_control.errors import ConfigError, check_range

__all__ = ["GoalResult", "GoalSequence", "GoalSettings", "random_goals"]


@dataclass(frozen=True)
class GoalSettings:
    """When a goal counts as reached.

    tolerance: TCP distance to the goal [m]. settle_speed: TCP speed below which the arm is at rest
    [m/s]. settle_time: how long both must hold [s]. timeout: time allowed per goal [s].
    """

    tolerance: float = 0.02
    settle_speed: float = 0.05
    settle_time: float = 0.2
    timeout: float = 8.0

    def __post_init__(self) -> None:
        check_range("goals.tolerance", self.tolerance, 0.0, 1.0, low_inclusive=False)
        check_range("goals.settle_speed", self.settle_speed, 0.0, 10.0, low_inclusive=False)
        check_range("goals.settle_time", self.settle_time, 0.0, 60.0)
        check_range("goals.timeout", self.timeout, 0.0, 3600.0, low_inclusive=False)


class GoalResult(NamedTuple):
    """One goal's outcome: the goal [m], whether it was reached, the time from its publication to the
    start of the settled interval [s] (NaN if not reached), and the final distance [m] and reason.
    """

    goal: tuple[float, float, float]
    reached: bool
    time_to_reach: float
    final_distance: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (``time_to_reach`` None when not reached)."""
        d = self._asdict()
        d["goal"] = list(self.goal)
        d["time_to_reach"] = None if math.isnan(self.time_to_reach) else self.time_to_reach
        return d


def random_goals(count: int, low: Sequence[float], high: Sequence[float], seed: int) -> list[np.ndarray]:
    """``count`` goals drawn uniformly from the box ``[low, high]`` [m] with ``seed``."""
    check_range("goals.count", count, 1, 100_000)
    lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(lo > hi):
        raise ConfigError(f"goal box low={list(low)} high={list(high)}: expected 3 values each, low <= high")
    rng = np.random.default_rng(seed)
    return [rng.uniform(lo, hi) for _ in range(count)]


class GoalSequence:
    """The goals of a scenario and their outcomes (see the module docstring)."""

    def __init__(self, goals: Sequence[np.ndarray], settings: GoalSettings = GoalSettings()) -> None:
        if not goals:
            raise ConfigError("a goal scenario needs at least one goal")
        self.goals = [np.asarray(g, dtype=np.float64) for g in goals]
        for i, g in enumerate(self.goals):
            if g.shape != (3,) or not np.isfinite(g).all():
                raise ConfigError(f"goal {i} is {g.tolist()}; expected 3 finite coordinates [m]")
        self.settings = settings
        self.results: list[GoalResult] = []
        self._started: float | None = None  # when the current goal was published [s]
        self._settled_since: float | None = None
        self._distance = math.inf

    @property
    def index(self) -> int:
        """Index of the current goal (== ``len(goals)`` when done)."""
        return len(self.results)

    @property
    def done(self) -> bool:
        """Whether every goal has an outcome."""
        return self.index >= len(self.goals)

    @property
    def current(self) -> np.ndarray | None:
        """The goal in effect, or ``None`` when done."""
        return None if self.done else self.goals[self.index]

    @property
    def distance(self) -> float:
        """The TCP's last distance to the current goal [m] (inf before a measurement)."""
        return self._distance

    def start(self, t: float) -> None:
        """The current goal was published at ``t`` [s]."""
        self._started, self._settled_since, self._distance = t, None, math.inf

    def update(self, t: float, tcp: np.ndarray, tcp_speed: float) -> GoalResult | None:
        """Record a measurement at ``t`` [s]; returns the current goal's result when it just ended."""
        goal = self.current
        if goal is None or self._started is None:
            return None
        s = self.settings
        self._distance = float(np.linalg.norm(goal - np.asarray(tcp, dtype=np.float64)))
        if self._distance <= s.tolerance and tcp_speed <= s.settle_speed:
            if self._settled_since is None:
                self._settled_since = t
            if t - self._settled_since >= s.settle_time - 1e-9:  # times of measurements carry rounding
                return self._finish(True, self._settled_since - self._started, "reached")
        else:
            self._settled_since = None
        if t - self._started >= s.timeout:
            return self._finish(False, math.nan, f"timeout after {s.timeout} s, {self._distance * 100:.1f} cm away")
        return None

    def fail(self, reason: str) -> GoalResult | None:
        """End the current goal as failed for ``reason`` (e.g. the controller refused it)."""
        if self.current is None:
            return None
        return self._finish(False, math.nan, reason)

    def _finish(self, reached: bool, time_to_reach: float, reason: str) -> GoalResult:
        goal = self.goals[self.index]
        g = (float(goal[0]), float(goal[1]), float(goal[2]))
        result = GoalResult(g, reached, time_to_reach, self._distance, reason)
        self.results.append(result)
        self._started, self._settled_since = None, None
        return result

    def summary(self) -> dict[str, Any]:
        """Goals reached, median / p90 time to reach [s], and every result."""
        times = [r.time_to_reach for r in self.results if r.reached]
        return {
            "goals": len(self.goals),
            "finished": len(self.results),
            "reached": sum(r.reached for r in self.results),
            "time_to_reach_median_s": float(np.median(times)) if times else None,
            "time_to_reach_p90_s": float(np.percentile(times, 90)) if times else None,
            "results": [r.to_dict() for r in self.results],
        }
