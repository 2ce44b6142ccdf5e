"""What an operator reads about a running controller: a status computed from the ticks since the last
report (what ``/diagnostics`` carries).

``TickLog.add(outgoing)`` records each tick; ``TickLog.report()`` returns the level (``OK``, ``WARN``,
``ERROR``), a one-line message, and the values: planner latency p50 / p99 / max [ms] and deadline
misses over the window, ticks per fallback level, joint-state age [ms], safety interventions, and
the cumulative counters of the loop and the safety layer. The node adds what it sees outside the
ticks: joint-state messages it rejected (``reject``: wrong joint names or count), other nodes
publishing on its command topic (``set_rivals``) and whether anything subscribes to it
(``set_listeners``). ``ERROR``: another node commands the robot, nothing executes the commands, the
arm is held by a fault (stale or bad state, no model output; with the last rejected message's reason
when states were rejected) or the safety layer replaced a chunk; ``WARN``: rejected joint states,
a retreat to the start pose after the planner stalled (``wm_control.runtime.retreat``), ticks below a
full solve or deadline misses; ``OK`` otherwise.

``RunStats`` keeps the whole run for a benchmark (``bench/ros_loop.py``): tick periods, the time from
receiving the joint state a tick used to publishing its command, levels, misses and counters.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from wm_control.runtime.arrival import AT_GOAL
from wm_control.runtime.commander import Outgoing
from wm_control.runtime.fallback import FallbackLevel

__all__ = ["OK", "WARN", "ERROR", "Report", "RunStats", "TickLog"]

OK, WARN, ERROR = 0, 1, 2
_HOLD_BY_REQUEST = "hold requested"


class Report(NamedTuple):
    """A status: ``level`` (``OK``/``WARN``/``ERROR``), ``message`` (one line), ``values`` (name -> text)."""

    level: int
    message: str
    values: dict[str, str]


class TickLog:
    """The ticks since the last report."""

    def __init__(self) -> None:
        self._start_window()
        self._last: Outgoing | None = None
        self._counters: dict[str, int] = {}
        self._rejected_total = 0
        self._rivals: list[str] = []
        self._unheard = ""

    def _start_window(self) -> None:
        self._latency: list[float] = []
        self._age: list[float] = []
        self._levels: Counter[str] = Counter()
        self._held = 0  # holds at a reached goal or on request: no planning asked for
        self._misses = 0
        self._interventions = 0
        self._rejected = 0
        self._rejection = ""

    def reject(self, reason: str) -> None:
        """A joint-state message the node could not use (``reason``: what was wrong with it)."""
        self._rejected += 1
        self._rejected_total += 1
        self._rejection = reason

    def set_rivals(self, topic: str, nodes: list[str]) -> None:
        """Other nodes that publish on the command ``topic`` (empty: none); stays until set again."""
        self._rivals = [f"{topic} also has publisher(s) {nodes}"] if nodes else []

    def set_listeners(self, topic: str, count: int) -> None:
        """How many subscriptions the command ``topic`` has (0: the commands reach nothing, e.g. the
        robot's trajectory controller is not loaded or the simulator is not up); stays until set again.
        """
        self._unheard = "" if count > 0 else f"nothing subscribes to {topic}"

    def has_rivals(self) -> bool:
        """Whether other publishers on the command topic were reported by ``set_rivals``."""
        return bool(self._rivals)

    def add(self, out: Outgoing, counters: dict[str, int]) -> None:
        """Record one tick and the cumulative counters after it."""
        stats = out.command.stats
        self._latency.append(stats.latency_s)
        if math.isfinite(stats.state_age_s):
            self._age.append(stats.state_age_s)
        self._levels[stats.level.name] += 1
        self._held += stats.level == FallbackLevel.HOLD and out.command.reason in (_HOLD_BY_REQUEST, AT_GOAL)
        self._misses += stats.deadline_miss
        self._interventions += out.verdict is not None and not out.verdict.passed
        self._last, self._counters = out, counters

    def report(self) -> Report:
        """The status of the window, then start a new window."""
        ticks = sum(self._levels.values())
        values: dict[str, str] = {"ticks": str(ticks), "deadline misses": str(self._misses)}
        if self._latency:
            ms = np.asarray(self._latency) * 1e3
            values.update({
                "latency p50 [ms]": f"{np.median(ms):.2f}", "latency p99 [ms]": f"{np.percentile(ms, 99):.2f}",
                "latency max [ms]": f"{ms.max():.2f}",
            })  # fmt: skip
        if self._age:
            values["joint state age max [ms]"] = f"{max(self._age) * 1e3:.1f}"
        values.update({f"ticks {name}": str(n) for name, n in sorted(self._levels.items())})
        values["safety interventions"] = str(self._interventions)
        values["joint states rejected"] = str(self._rejected)
        if self._rejection:
            values["last rejected joint state"] = self._rejection
        values["total joint states rejected"] = str(self._rejected_total)
        if self._rivals:
            values["other command publishers"] = self._rivals[0]
        if self._unheard:
            values["command topic"] = self._unheard
        values.update({f"total {k}": str(v) for k, v in sorted(self._counters.items())})
        level, message = self._verdict(ticks)
        self._start_window()
        return Report(level, message, values)

    def _verdict(self, ticks: int) -> tuple[int, str]:
        last = self._last
        if self._rivals:
            return ERROR, f"another controller commands the robot: {self._rivals[0]}"
        if self._unheard:
            return ERROR, f"no robot listening: {self._unheard} (is its trajectory controller running?); not commanding"
        rejected = f"{self._rejected} joint state(s) rejected, last: {self._rejection}" if self._rejected else ""
        if last is None or ticks == 0:
            if rejected:
                return ERROR, f"no control tick since the last report; {rejected}"
            return WARN, "no control tick since the last report (no joint state yet, or not active)"
        if self._interventions:
            causes = sorted({v.kind for v in last.verdict.violations}) if last.verdict is not None else []
            return ERROR, f"safety layer braked {self._interventions} time(s); last causes: {causes or 'see totals'}"
        cmd = last.command
        if cmd.level == FallbackLevel.HOLD and cmd.reason not in (_HOLD_BY_REQUEST, AT_GOAL):
            return ERROR, f"holding: {cmd.reason}" + (f"; {rejected}" if rejected else "")
        if rejected:
            return WARN, rejected
        if cmd.level == FallbackLevel.HOLD and cmd.reason == AT_GOAL:
            return OK, "at the goal: holding until the next goal"
        if cmd.level == FallbackLevel.HOLD:
            return OK, "holding on request (~/hold)"
        if cmd.level == FallbackLevel.RETREAT:
            return WARN, f"{cmd.reason} (the planner made no progress towards the goal); it plans again from there"
        full = self._levels.get(FallbackLevel.MPPI.name, 0)
        retreated = self._levels.get(FallbackLevel.RETREAT.name, 0)
        p99 = float(np.percentile(self._latency, 99)) * 1e3 if self._latency else math.nan
        planned = ticks - self._held - retreated
        summary = f"{full}/{planned} ticks full MPPI, latency p99 {p99:.1f} ms, {self._misses} deadline misses"
        if self._held:
            summary += f" ({self._held} more held at the goal or on request)"
        if retreated:
            return WARN, f"{summary}; {retreated} ticks back to the start pose after a stall"
        if full < planned or self._misses:
            return WARN, f"planning below budget: {summary}"
        return OK, f"planning: {summary}"


class RunStats:
    """Every tick of a run, summarised at the end.

    Args:
        dt: the control period [s] the tick periods are compared with.
    """

    def __init__(self, dt: float) -> None:
        self.dt = float(dt)
        self._starts: list[float] = []
        self._state_to_command: list[float] = []
        self._state_wait: list[float] = []
        self._planner: list[float] = []
        self._prepare: list[float] = []
        self._levels: Counter[str] = Counter()
        self._misses = 0
        self._counters: dict[str, int] = {}

    def add(
        self,
        start: float,
        out: Outgoing,
        counters: dict[str, int],
        state_received: float,
        sent: float | None,
        prepared: float = 0.0,
    ) -> None:
        """One tick that started at ``start`` [s], used a joint state received at ``state_received``
        and published its command at ``sent`` (``None``: nothing published), all on one clock, and then
        spent ``prepared`` [s] preparing the next tick's solve (``Commander.prepare``; 0: none).
        """
        self._starts.append(start)
        if prepared > 0.0:
            self._prepare.append(prepared)
        self._planner.append(out.command.stats.latency_s)
        if sent is not None:
            self._state_to_command.append(sent - state_received)
            self._state_wait.append(start - state_received)
        self._levels[out.command.stats.level.name] += 1
        self._misses += out.command.stats.deadline_miss
        self._counters = dict(counters)

    def summary(self) -> dict[str, object]:
        """Tick period p50 / p99 and jitter (``|period - dt|``) p50 / p99 [ms], joint state to command
        p50 / p99 / max [ms] and the part of it before the tick started (the state waiting for the
        executor: ``state_wait``, p50 / p99 [ms]), planner latency (``ControlLoop.step``) p50 / p99
        [ms] and its histogram (1 ms bins up to twice the period, the last bin holding everything
        longer), the ticks that prepared the next solve and the time that took (p50 / p99 [ms]),
        ticks, share of full solves, deadline misses, ticks by level, counters.
        """

        def pct(values: list[float] | np.ndarray, q: float) -> float | None:
            return round(float(np.percentile(values, q)) * 1e3, 3) if len(values) else None

        periods = np.diff(self._starts) if len(self._starts) > 1 else np.empty(0)
        jitter = np.abs(periods - self.dt)
        ticks = sum(self._levels.values())
        latency = self._state_to_command
        return {
            "ticks": ticks,
            "tick_period_p50_ms": pct(periods, 50),
            "tick_period_p99_ms": pct(periods, 99),
            "tick_jitter_p50_ms": pct(jitter, 50),
            "tick_jitter_p99_ms": pct(jitter, 99),
            "state_to_command_p50_ms": pct(latency, 50),
            "state_to_command_p99_ms": pct(latency, 99),
            "state_to_command_max_ms": round(max(latency) * 1e3, 3) if latency else None,
            "state_wait_p50_ms": pct(self._state_wait, 50),
            "state_wait_p99_ms": pct(self._state_wait, 99),
            "planner_latency_p50_ms": pct(self._planner, 50),
            "planner_latency_p99_ms": pct(self._planner, 99),
            "planner_latency_hist_ms": self._histogram(),
            "prepared_ticks": len(self._prepare),
            "prepare_latency_p50_ms": pct(self._prepare, 50),
            "prepare_latency_p99_ms": pct(self._prepare, 99),
            "full_solve_share": round(self._levels.get(FallbackLevel.MPPI.name, 0) / ticks, 4) if ticks else None,
            "deadline_misses": self._misses,
            "deadline_miss_share": round(self._misses / ticks, 4) if ticks else None,
            "ticks_by_level": dict(sorted(self._levels.items())),
            "counters": dict(sorted(self._counters.items())),
        }

    def _histogram(self) -> dict[str, list[float] | list[int]]:
        top = max(math.ceil(2e3 * self.dt), 1)
        ms = np.minimum(np.asarray(self._planner) * 1e3, top - 0.5)
        counts, edges = np.histogram(ms, bins=top, range=(0.0, float(top)))
        return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
