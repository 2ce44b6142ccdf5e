"""Goal arrival: once the TCP is at a point goal and slow, brake to rest and hold there.

The learned planner brings the TCP to within one to two centimetres of a goal and then keeps moving
around it: fr3-reach was trained on 3 s episodes that count a goal reached on the first tick inside
2 cm at under 0.05 m/s, so staying there was never asked of it (measured with the shipped model,
``bench/ros_link.py --capture-radius 0``: it passes within 0.7-2.4 cm, then drifts 2-8 cm away over
the next seconds). A deployed controller has to stop at the goal, the way nav2's goal checker stops a
mobile base inside its ``xy_goal_tolerance``. ``GoalArrival`` decides that each tick, from the
measured joint state:

- it *captures* when the TCP is slower than ``speed`` and where it is heading, ``lead`` seconds on
  at its current velocity, lies within ``radius`` of the goal: the controller then holds (the brake
  to rest, then rest, as on a hold request). The lead is where the arm will come to rest: the chunk
  already sent plays on for the playout delay before the brake starts. Measured with the shipped
  model (``bench/ros_link.py``, seed 0, first goal): captured 1.25 cm out at 0.083 m/s moving away,
  the arm stopped 2.23 cm out, 0.98 cm on (0.118 s at that speed), outside the goal publisher's 2 cm,
  where it was held until the goal timed out. A capture that looks ahead does not take an arm that is
  leaving the goal, and takes one that is arriving a little earlier. The commander knows better than
  the lead: it passes ``stop``, where the brake from the current command comes to rest (the command
  runs the playout delay ahead of the measured state, and the brake is jerk-limited), and the capture
  tests that point. Measured with the fine-tuned model (``bench/ros_link.py`` seeds 0-15): with the
  lead alone most missed goals were captured and then stopped 2.0-2.6 cm out; with the brake's rest point, 125 of 160
  goals against 94, and no reflex against one;
- it *releases* when the goal changes or the TCP is pushed further than ``release`` from it (which
  must exceed ``radius``): planning resumes from where the arm is;
- with ``rest_speed > 0`` it also releases an arm that has come to rest (TCP slower than
  ``rest_speed``) outside ``radius``: the brake left it short of the goal, and holding it there lets the
  goal time out (measured with a fine-tuned model, ``bench/ros_link.py`` seeds 0-3: 8 of the 9 goals
  missed were held 2.0-3.8 cm out). It is off by default because planning again did not pay on the
  whole: with the 75,000-step model, seeds 0-7 (80 goals), 36 goals and 3 reflexes with ``rest_speed`` 1 cm/s
  against 32 goals and 1 reflex without; with the fine-tuned one, seeds 0-3, 28 and 1 against 31 and 0.
  The arm let go near a goal is the arm the model steers into the table or itself.

``radius = 0`` turns it off. Only point goals (a TCP position in the base frame) have an arrival.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wm_control.errors import ConfigError, check_range
from wm_control.kinematics import tcp_jacobian, tcp_position
from wm_control.robot import RobotSpec

__all__ = ["AT_GOAL", "STOP_CHECK_DISTANCE", "ArrivalConfig", "GoalArrival"]

# The hold reason while captured (counted and reported like any hold reason).
AT_GOAL = "at the goal"
# How far from the goal [m] a slow TCP may be for the brake's rest point to be worth computing (a brake
# from arrival speed travels a few centimetres at most).
STOP_CHECK_DISTANCE = 0.1


@dataclass(frozen=True)
class ArrivalConfig:
    """radius: capture distance [m] (0: off); speed: TCP speed below which a capture may happen
    [m/s]; release: distance beyond which a captured TCP is let go [m], > radius; lead: how far ahead
    the TCP's position is extrapolated at its velocity for the capture test [s] (0: where it is);
    rest_speed: TCP speed below which a captured arm is at rest, and let go if it rests outside
    radius [m/s], < speed (0, the default: a captured arm is held wherever it rests inside release).
    """

    radius: float = 0.015
    speed: float = 0.1
    release: float = 0.03
    lead: float = 0.12
    rest_speed: float = 0.0

    def __post_init__(self) -> None:
        check_range("arrival radius", self.radius, 0.0, 0.5)
        check_range("arrival speed", self.speed, 0.0, 10.0, low_inclusive=False)
        check_range("arrival release", self.release, 0.0, 1.0, low_inclusive=False)
        check_range("arrival lead", self.lead, 0.0, 1.0)
        check_range("arrival rest_speed", self.rest_speed, 0.0, self.speed, high_inclusive=False)
        if self.radius > 0.0 and not self.release > self.radius:
            raise ConfigError(
                f"arrival release={self.release} m must exceed radius={self.radius} m (else a captured arm "
                "is released at once)"
            )

    @property
    def enabled(self) -> bool:
        """Whether arrivals are detected at all."""
        return self.radius > 0.0


class GoalArrival:
    """Capture / release state for one robot (see the module docstring)."""

    def __init__(self, spec: RobotSpec, config: ArrivalConfig = ArrivalConfig()) -> None:
        self.spec = spec
        self.config = config
        self._goal: np.ndarray | None = None
        self._captured = False
        self.distance = float("nan")  # the TCP's distance to the goal at the last update [m]; NaN: none

    @property
    def captured(self) -> bool:
        """Whether the arm is being held at its goal."""
        return self._captured

    def reset(self) -> None:
        """Forget the capture (the controller restarted; the arm may be anywhere)."""
        self._goal, self._captured = None, False

    def update(
        self,
        q: np.ndarray,
        dq: np.ndarray,
        goal: np.ndarray,
        stop: Callable[[], np.ndarray | None] | None = None,
    ) -> bool:
        """Whether to hold at the goal this tick, given the measured state ``q``, ``dq`` ``(n,)``
        [rad, rad/s] and the point ``goal`` ``(3,)`` [m].

        ``stop``, when given, returns the joint positions ``(n,)`` where the brake from the current
        command comes to rest (``None``: not known); the capture then tests that point instead of the
        ``lead`` extrapolation. It is called only for a slow arm within ``STOP_CHECK_DISTANCE``.

        Inputs that are not finite vectors of the right shapes change nothing and capture nothing
        (the control loop's own checks hold and report them).
        """
        c = self.config
        self.distance = float("nan")  # until this update computes it
        if not c.enabled:
            return False
        n = (self.spec.dof,)
        arrays = [np.asarray(a) for a in (q, dq, goal)]
        shapes = (n, n, (3,))
        for a, s in zip(arrays, shapes, strict=True):
            if a.shape != s or a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                return False
        q_, dq_, g = (a.astype(np.float64) for a in arrays)
        if self._goal is None or not np.array_equal(g, self._goal):
            self._goal, self._captured = g.copy(), False
        offset = tcp_position(self.spec, q_) - g
        self.distance = float(np.linalg.norm(offset))
        velocity = tcp_jacobian(self.spec, q_)[:3] @ dq_
        speed = float(np.linalg.norm(velocity))
        heading = float(np.linalg.norm(offset + c.lead * velocity))
        if not self._captured and stop is not None and speed <= c.speed and self.distance <= STOP_CHECK_DISTANCE:
            rest = stop()
            if rest is not None and np.shape(rest) == n and np.all(np.isfinite(rest)):
                heading = float(np.linalg.norm(tcp_position(self.spec, np.asarray(rest, dtype=np.float64)) - g))
        if self._captured:
            resting_short = speed < c.rest_speed and heading > c.radius
            self._captured = self.distance <= c.release and not resting_short
        else:
            self._captured = heading <= c.radius and speed <= c.speed
        return self._captured
