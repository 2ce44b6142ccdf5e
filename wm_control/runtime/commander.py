"""One tick of a deployed controller: the control loop's chunk, verified by the safety layer and
stamped for the 1 kHz layer that executes it (what the ROS controller node calls every ``dt``).

Stamps lie on one grid, ``dt`` apart, anchored at the first tick (``_grid``), which is the knot grid of every
chunk sent: a chunk is stamped with the last grid time at or before its tick's start, and starts from
where the last chunk sent puts the command then, one of its knots (past its end: at rest at its last
knot). So consecutive chunks meet at a knot, where the command's acceleration changes once, within
the jerk limit, as in training; a switch between knots could put two acceleration steps within one
servo period. The executing layer runs a fixed playout delay behind the stamps
(``sim.physics.FR3Sim``), so a chunk that arrives within that delay takes over exactly there,
whatever the timer's jitter. A chunk ready later than ``max_lateness`` (below the layer's delay,
leaving time for delivery) is not sent: the layer goes on with the last one, and the next tick
starts from it again. A chunk that starts from rest (the first one, after a restart) is stamped like
any other, so that the next tick's chunk follows it one period later, never with the same stamp.

Every chunk passes the safety layer (``wm_control.safety``), which shares no code with the chunk
generator. A chunk that fails is not sent: the safety layer's brake goes instead (the next tick starts
from it like from any chunk sent), and the intervention is counted with its reasons.

A hold because the joint states stopped (stale) sends nothing: the last chunk sent ends at rest, and a
robot or simulator that comes back restarted would otherwise receive brakes from where the old one was.

The commander follows the command it sent, not the robot. When the robot stands still (every joint
slower than ``REST_SPEED``) further from the command than ``RobotSpec.position_tolerance`` plus the
distance the command covers in ``LAG_ALLOWANCE`` (the executing layer's delay and tracking lag, with
room to spare), the robot is not where the commands left it (the robot or its simulator was
restarted, stopped by a reflex, or moved in between): the loop starts afresh from rest at the
measured position, and the event is counted (``"resynced to the measured state"``). ``restart``
does the same on demand (a controller that is activated again).

With a ``GoalArrival`` (``wm_control.runtime.arrival``), a TCP that is at its point goal and slow is
held there (hold reason ``"at the goal"``) until the goal changes or the arm is pushed away. With a
``Retreat`` (``wm_control.runtime.retreat``), a planner that makes no progress towards its goal is
replaced, until the command is back at the start pose, by a joint-space move there (level ``RETREAT``),
through the same safety layer; a hold request or a capture at the goal ends it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from wm_control.chunking import CommandState
from wm_control.errors import ConfigError, InputError
from wm_control.runtime.arrival import AT_GOAL, GoalArrival
from wm_control.runtime.fallback import FallbackLevel
from wm_control.runtime.loop import Command, ControlLoop
from wm_control.runtime.retreat import Retreat
from wm_control.safety import ChunkStart, SafetyLayer, Verdict
from wm_control.trajectory import StampedChunk

__all__ = ["LAG_ALLOWANCE", "Commander", "Outgoing", "command_state_at"]

# How far behind the command a tracking robot may be, in time [s]: the executing layer's playout
# delay (30 ms in simulation) plus the impedance layer's tracking lag, with margin.
LAG_ALLOWANCE = 0.1
# A robot slower than this on every joint [rad/s] stands still: only a robot at rest is taken to have lost
# the commands (one in motion is following some command; starting it afresh from rest would be a jump).
REST_SPEED = 0.05
# The loop's reason for a hold on a state older than its stale timeout: the robot has stopped talking.
_SILENT = "stale state"


class Outgoing(NamedTuple):
    """What one tick sends: the stamped chunk (``None``: nothing sent, see ``Commander.tick``), the
    control loop's command (level, reason, diagnostics), and the safety layer's verdict on it.
    """

    chunk: StampedChunk | None
    command: Command
    verdict: Verdict | None


def command_state_at(chunk: StampedChunk, t: float) -> CommandState:
    """The command of ``chunk`` at time ``t`` [s]: position and velocity on its cubic Hermite, and the
    acceleration of the segment that ends at or after ``t`` (of the one that ends exactly at a knot,
    as the chunk generator counts it); after the last knot, at rest there.
    """
    knots = chunk.chunk
    elapsed = t - chunk.stamp
    if elapsed >= chunk.duration:
        end = knots.positions[-1]
        return CommandState(end.copy(), np.zeros_like(end), np.zeros_like(end))
    sample = chunk.sample(np.array([max(t, chunk.stamp)]))
    # A time within rounding of a knot is that knot (stamps are computed on the knot grid).
    j = min(max(math.ceil(elapsed / knots.dt - 1e-6) - 1, 0), len(knots.positions) - 1)
    before = knots.velocities[j - 1] if j > 0 else chunk.start_dq
    return CommandState(sample.q[0].copy(), sample.dq[0].copy(), (knots.velocities[j] - before) / knots.dt)


class Commander:
    """A ``ControlLoop`` behind a safety layer, producing stamped chunks.

    Args:
        loop: the control loop (``control_loop(backend, ...)``).
        safety: the verifier of outgoing chunks, for the same robot and ``dt``.
        clock: the time base of the stamps and of the loop [s] (the executing layer's clock).
        max_lateness: a chunk ready more than this after its stamp is not sent [s]; below the
            executing layer's playout delay (default: one control period).
        arrival: holds the arm at a point goal once it is there (``None``: never).
        retreat: takes the arm back to its start pose when the planner stalls (``None``: never).
    """

    def __init__(
        self,
        loop: ControlLoop,
        safety: SafetyLayer,
        clock: Callable[[], float] = time.monotonic,
        max_lateness: float | None = None,
        arrival: GoalArrival | None = None,
        retreat: Retreat | None = None,
    ) -> None:
        if max_lateness is not None and not max_lateness > 0:
            raise ConfigError(f"Commander max_lateness={max_lateness!r} s; valid: > 0")
        self.loop = loop
        self.safety = safety
        self._clock = clock
        self._max_lateness = loop.generator.dt if max_lateness is None else float(max_lateness)
        self._names = tuple(loop.generator.spec.joint_names)
        self._last: StampedChunk | None = None
        self._origin: float | None = None  # the stamp grid's origin: the first tick's start [s]
        self._ticked: float | None = None  # the stamp of the last tick [s]
        self._restart = True  # the next plausible state starts the loop from rest there
        self._counters: Counter[str] = Counter()
        self.arrival = arrival
        self.retreat = retreat

    @property
    def counters(self) -> dict[str, int]:
        """The loop's counters plus ``"safety interventions"``, one ``"safety: <kind>"`` per cause,
        ``"late chunks dropped"`` (planned, but ready too late to send) and the retreat's counters.
        """
        retreats = {} if self.retreat is None else self.retreat.counters
        return {**self.loop.counters, **self._counters, **retreats}

    @property
    def last(self) -> StampedChunk | None:
        """The last chunk sent."""
        return self._last

    def restart(self) -> None:
        """Forget the chunks sent: the next tick starts from rest at the measured position, on a new
        stamp grid (after the executing layer was restarted or the controller was deactivated).
        """
        self._last, self._origin, self._ticked, self._restart = None, None, None, True
        if self.arrival is not None:
            self.arrival.reset()
        if self.retreat is not None:
            self.retreat.reset()

    def tick(self, t: float, q: np.ndarray, dq: np.ndarray, goal: np.ndarray, *, hold: bool = False) -> Outgoing:
        """Run one control tick on the state measured at ``t`` [s] (see ``ControlLoop.step``); a
        requested ``hold`` takes precedence over an arrival.

        Nothing is sent when the loop has no command state yet (no valid joint state so far) or when
        the chunk was ready later than ``max_lateness`` after the tick started.
        """
        stamp = self._ticked = self._grid(self._clock())
        now = None if self._last is None else command_state_at(self._last, stamp)  # the command at the stamp
        if now is not None:
            measured, speed = np.asarray(q), np.asarray(dq)
            n = (len(self._names),)
            usable = all(a.shape == n and np.isrealobj(a) and np.all(np.isfinite(a)) for a in (measured, speed))
            tolerance = self.loop.generator.spec.position_tolerance + LAG_ALLOWANCE * np.abs(now.dq)
            lost = usable and np.all(np.abs(speed) < REST_SPEED) and np.any(np.abs(measured - now.q) > tolerance)
            if lost and self._fresh(t):
                self._counters["resynced to the measured state"] += 1
                self._last, self._restart, now = None, True, None
        if self._restart and self._last is None and self._fresh(t):
            try:
                self.loop.reset(q)
                self._restart = False
            except InputError:
                pass  # not a state to start from: the loop's checks name what is wrong on this tick
        if now is not None:
            # Where the command is at the stamp; the plan is still the one to warm-start from (it
            # moved on by a tick), so it is kept.
            self.loop.override_command(now, keep_plan=True)

        def stop() -> np.ndarray | None:
            """Where the brake from the command at the stamp comes to rest: where a capture leaves the arm."""
            if now is None:
                return None
            try:
                return np.asarray(self.safety.brake(ChunkStart(now.q, now.dq, now.ddq)).positions[-1])
            except InputError:
                return None

        at_goal = self.arrival is not None and self.arrival.update(q, dq, goal, stop) and self._fresh(t)
        retreat = None
        if self.retreat is not None and self._fresh(t):
            command_q = None if self.loop.command_state is None else self.loop.command_state.q
            # A fault held the tick before (stale or bad states): no stall was the planner's doing.
            held = bool(hold) or bool(self.loop.fault)
            distance = None if self.arrival is None else self.arrival.distance  # computed once a tick
            retreat = self.retreat.update(t, q, goal, command_q, hold=held, at_goal=at_goal, distance=distance)
        command = self.loop.step(t, q, dq, goal, hold=hold or (AT_GOAL if at_goal else False), retreat=retreat)
        if command.start is None or len(command.chunk.positions) == 0:
            return Outgoing(None, command, None)
        if command.level == FallbackLevel.HOLD and command.reason.startswith(_SILENT):
            # The robot fell silent: nobody may be listening, and a robot that comes back (restarted)
            # is elsewhere; the last chunk sent already ends at rest. Nothing is sent until it speaks.
            self._counters["not sent: robot silent"] += 1
            return Outgoing(None, command, None)
        start = ChunkStart(command.start.q, command.start.dq, command.start.ddq)
        verdict = self.safety.filter(command.chunk, start, self._names)
        if not verdict.passed:
            self._counters["safety interventions"] += 1
            for kind in sorted({v.kind for v in verdict.violations}):
                self._counters[f"safety: {kind}"] += 1
        ready = self._clock()
        if ready - stamp > self._max_lateness:
            self._counters["late chunks dropped"] += 1
            if self._last is None:  # nothing sent yet: the command is still at the (rest) start
                self.loop.override_command(command.start, keep_plan=True)
            return Outgoing(None, command, verdict)
        self._last = StampedChunk(stamp, start.q, start.dq, verdict.chunk)
        return Outgoing(self._last, command, verdict)

    def prepare(self) -> float:
        """Prepare the next tick's solve between ticks (``ControlLoop.prepare``; nothing unless the
        loop's ``LoopConfig.prepare`` is on); call it after the tick's chunk went out. It is prepared
        from the command the next tick will start from: where the chunk sent last puts it one period
        on (the safety layer's brake, or the chunk before when this tick's was dropped late, rather than
        the loop's own chunk). Returns the time it took [s].
        """
        if self._last is not None and self._ticked is not None and self.loop.config.prepare:
            nxt = command_state_at(self._last, self._ticked + self.loop.generator.dt)
            self.loop.override_command(nxt, keep_plan=True)
        return self.loop.prepare()

    def due(self, now: float) -> float | None:
        """How long ago [s] the control period that ``now`` falls in began, if no tick has run in it
        yet; ``None`` if one has. Before the first tick (or after ``restart``): 0, due at once.

        A node that ticks on the first joint state of each period (``due`` not ``None``) starts the
        solve on a state received moments ago, where a free-running timer finds one up to a state
        period old; a timer that ticks a period still due a few milliseconds after it began keeps the
        loop going (and holding) when the states stop.
        """
        if self._origin is None:
            return 0.0
        stamp = self._grid(now)
        if self._ticked is not None and stamp <= self._ticked:
            return None
        return now - stamp

    def _fresh(self, t: float) -> bool:
        """Whether a state measured at ``t`` is recent enough to compare the robot with the command
        (a stale one says nothing new; a malformed one is the loop's to report).
        """
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not math.isfinite(t):
            return False
        return self._clock() - float(t) <= self.loop.config.stale_timeout

    def _grid(self, t: float) -> float:
        """The last stamp-grid time at or before ``t`` [s]. The grid starts a quarter period before the
        first call, so that later ticks that fire a little earlier in their period than the first one
        (timer jitter) still fall after their grid time, not a whole period after the previous one.
        """
        if self._origin is None:
            self._origin = t - 0.25 * self.loop.generator.dt
        dt = self.loop.generator.dt
        return self._origin + math.floor((t - self._origin) / dt + 1e-9) * dt
