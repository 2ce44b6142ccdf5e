"""Stall recovery: when the planner stops making progress towards its goal, go back to the start pose
in joint space, then plan again from there.

The learned planner is good from the poses it was trained from and can get stuck far from them: on
goal sequences it sometimes turns the arm into a posture from which no sampled action sequence looks
better than staying (measured with the shipped fr3-reach model, ``bench/ros_link.py``: seed 28 swung
joint 1 the wrong way and the arm over its base, where the safety layer's self and base checks braked
1,119 times and every later goal failed 26-82 cm away; seed 0 with planner seed 4 stalled 4.3 cm
short of a goal at the top of the box and missed the next one 8.3 cm short). nav2 handles the same
failure of a local planner with a progress checker (``required_movement_radius`` within
``movement_time_allowance``) and recovery behaviours; this is that, for an arm.

``Retreat.update`` runs each tick on the measured state:

- *stall*: for ``stall_time`` seconds the TCP's distance to the goal never came ``progress`` closer
  than its best in the window, and it is further than ``near`` from the goal now (not held there by
  ``GoalArrival`` either). An arm that passes through its goal and swings around it for seconds
  without settling has stalled too (seed 0, planner seed 4: 0.6-9 cm from its goal for 8 s). The
  window starts again when the goal changes (a retreat in progress goes on to the start pose), after
  a hold (requested, or on a fault such as stale joint states) and after a retreat.
- *retreat*: each tick's action moves the command straight towards ``RobotSpec.start_q`` in joint
  space: ``gain (start_q - q_cmd)`` [rad/s], scaled down as a whole to the action range (so the path
  is a line in joint space), divided by the generator's ``velocity_scale``. It goes through the chunk
  generator (no posture pull) and the safety layer like any chunk (the controller sends it as level
  ``RETREAT``).
- it ends when every joint of the command is within ``tolerance`` of the start pose, and planning
  resumes; or after ``max_time`` seconds (the safety layer keeps braking it, say), counted as given up.
- at most ``max_per_goal`` retreats per goal: a goal the planner cannot reach from the start pose
  either times out as before.

``stall_time = 0`` turns it off. Only point goals (a TCP position in the base frame) are watched.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from wm_control.errors import ConfigError, check_range
from wm_control.kinematics import tcp_position
from wm_control.robot import RobotSpec

__all__ = ["RETREAT", "Retreat", "RetreatConfig"]

# The reason of the ticks that retreat (counted and reported like any fallback reason).
RETREAT = "stalled: back to the start pose"


@dataclass(frozen=True)
class RetreatConfig:
    """stall_time: seconds without ``progress`` towards the goal that make a stall [s] (0: off);
    progress: how much closer [m] the TCP must come than its best in the window; near: a TCP this close
    to its goal [m] is not stalled (it is arriving or held there); gain: speed of the retreat per rad
    still to go [1/s]; tolerance: every joint of the command within this of the start pose ends the
    retreat [rad]; max_time: a retreat that has not ended after this is given up [s];
    max_per_goal: retreats allowed per goal.
    """

    stall_time: float = 1.5
    progress: float = 0.01
    near: float = 0.02
    gain: float = 3.0
    tolerance: float = 0.05
    max_time: float = 5.0
    max_per_goal: int = 1

    def __post_init__(self) -> None:
        check_range("retreat stall_time", self.stall_time, 0.0, 60.0)
        check_range("retreat progress", self.progress, 0.0, 1.0, low_inclusive=False)
        check_range("retreat near", self.near, 0.0, 1.0)
        check_range("retreat gain", self.gain, 0.0, 50.0, low_inclusive=False)
        check_range("retreat tolerance", self.tolerance, 0.0, 1.0, low_inclusive=False)
        check_range("retreat max_time", self.max_time, 0.0, 600.0, low_inclusive=False)
        if isinstance(self.max_per_goal, bool) or not isinstance(self.max_per_goal, int):
            raise ConfigError(f"retreat max_per_goal={self.max_per_goal!r} must be an integer")
        check_range("retreat max_per_goal", self.max_per_goal, 1, 1000)

    @property
    def enabled(self) -> bool:
        """Whether stalls are watched at all."""
        return self.stall_time > 0.0


class Retreat:
    """Stall watch and retreat state for one robot (see the module docstring).

    Args:
        spec: the robot; its ``start_q`` is where a retreat goes.
        velocity_scale: joint speed [rad/s] of action 1.0 (``ChunkGenerator.velocity_scale``), ``(n,)``.
        config: when a stall is declared and how the retreat moves.

    Raises:
        ConfigError: the robot has no start pose, or ``velocity_scale`` is not ``(n,)`` and positive.
    """

    def __init__(self, spec: RobotSpec, velocity_scale: np.ndarray, config: RetreatConfig = RetreatConfig()) -> None:
        if spec.start_q is None:
            raise ConfigError(f"retreat needs a start pose; robot {spec.name!r} has none (set retreat stall_time 0)")
        scale = np.asarray(velocity_scale, dtype=np.float64)
        if scale.shape != (spec.dof,) or not np.all(scale > 0.0):
            raise ConfigError(f"retreat velocity_scale {velocity_scale!r} must be ({spec.dof},) and > 0 [rad/s]")
        self.spec = spec
        self.config = config
        self._home = np.asarray(spec.start_q, dtype=np.float64)
        self._scale = scale
        self._counters: Counter[str] = Counter()
        self._goal: np.ndarray | None = None
        self._used = 0  # retreats for this goal
        self._best = math.inf  # best distance in the stall window [m]
        self._since: float | None = None  # when the window started or last made progress [s]
        self._began: float | None = None  # when the retreat in progress began [s]; None: not retreating

    @property
    def active(self) -> bool:
        """Whether a retreat is in progress."""
        return self._began is not None

    @property
    def counters(self) -> dict[str, int]:
        """``"retreats"`` begun, and how they ended: ``"retreats ended at the start pose"``,
        ``"retreats ended at the goal"`` (captured there on the way) and ``"retreats given up"``.
        """
        return dict(self._counters)

    def reset(self) -> None:
        """Forget the goal, the window and any retreat (the controller restarted)."""
        self._goal, self._used, self._began = None, 0, None
        self._restart_window()

    def update(
        self,
        t: float,
        q: np.ndarray,
        goal: np.ndarray,
        command_q: np.ndarray | None,
        *,
        hold: bool = False,
        at_goal: bool = False,
        distance: float | None = None,
    ) -> tuple[np.ndarray, str] | None:
        """This tick's retreat, if any: ``(action, reason)`` for ``ControlLoop.step(retreat=...)``.

        Args:
            t: when ``q`` was measured [s].
            q: measured joint positions ``(n,)`` [rad].
            goal: the point goal ``(3,)`` [m], base frame.
            command_q: where the command the next chunk starts from is ``(n,)`` [rad] (``None``:
                no command yet).
            hold: the arm holds this tick for a reason other than its goal (a hold request, or a
                fault the loop held on the tick before: a stale or bad joint state): a retreat in
                progress ends (given up) and the stall window starts again after it.
            at_goal: the arm is held at its goal (``GoalArrival``) this tick: no retreat begins, and
                one in progress ends (counted as ended at the goal); the window goes on (an arm
                captured and let go again and again short of its goal has stalled too).
            distance: the TCP's distance to ``goal`` at ``q`` [m] when the caller has computed it this
                tick (``GoalArrival.distance``); ``None`` or NaN: computed here.

        Inputs that are not finite vectors of the right shapes change nothing and retreat nowhere (the
        control loop's own checks hold and report them).
        """
        c = self.config
        if not c.enabled:
            return None
        n = (self.spec.dof,)
        arrays = [np.asarray(a) for a in (q, goal)]
        for a, s in zip(arrays, (n, (3,)), strict=True):
            if a.shape != s or a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                return None
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not math.isfinite(t):
            return None
        t = float(t)
        q_, g = (a.astype(np.float64) for a in arrays)
        if self._goal is None or not np.array_equal(g, self._goal):
            self._goal, self._used = g.copy(), 0
            self._restart_window()
        if hold or (at_goal and self._began is not None):
            if self._began is not None:
                self._began = None
                self._counters["retreats ended at the goal" if at_goal and not hold else "retreats given up"] += 1
            self._restart_window()
            return None
        if self._began is not None:
            return self._retreat(t, command_q)
        if distance is None or not math.isfinite(distance):
            distance = float(np.linalg.norm(tcp_position(self.spec, q_) - g))
        if self._since is None or distance < self._best - c.progress:
            self._best, self._since = distance, t  # the window (re)starts: progress
            return None
        if at_goal or distance <= c.near or t - self._since < c.stall_time or self._used >= c.max_per_goal:
            return None
        self._began = t
        self._used += 1
        self._counters["retreats"] += 1
        return self._retreat(t, command_q)

    def _retreat(self, t: float, command_q: np.ndarray | None) -> tuple[np.ndarray, str] | None:
        """The action towards the start pose, or ``None`` (and the window restarted) when the retreat ends."""
        assert self._began is not None
        cq = None if command_q is None else np.asarray(command_q, dtype=np.float64)
        if cq is None or cq.shape != (self.spec.dof,) or not np.all(np.isfinite(cq)):
            return None  # no command to move yet: the loop holds on its own checks
        error = self._home - cq
        if np.all(np.abs(error) <= self.config.tolerance):
            self._counters["retreats ended at the start pose"] += 1
        elif t - self._began > self.config.max_time:
            self._counters["retreats given up"] += 1
        else:
            action = self.config.gain * error / self._scale
            return action / max(1.0, float(np.max(np.abs(action)))), RETREAT
        self._began = None
        self._restart_window()
        return None

    def _restart_window(self) -> None:
        self._best, self._since = math.inf, None
