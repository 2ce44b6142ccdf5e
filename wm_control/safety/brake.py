"""The brake: the fastest stop from a command state that the configured limits allow.

Per joint, independently (the stop does not keep the path: it is an emergency stop, and each joint
stopping as soon as it can is what keeps it short), the brake picks one acceleration per segment,
constant inside it, so the cubic Hermite interpolation of its knots reproduces the piecewise-
quadratic motion exactly (zero jerk inside segments). At each knot:

- the acceleration moves towards the largest one, opposing the velocity, from which ramping it back
  to zero at the jerk limit lands exactly on zero velocity (so it never overshoots through zero
  unless the start's own acceleration forces it), within ``A = acceleration_fraction * ddq_max``;
- it changes by at most ``D = jerk_fraction * dddq_max * h`` (``h``: the servo period), and at the
  first knot by at most ``max(0, J - |start.dddq|) * h``, so the knot's jerk stays within ``J``
  whatever the previous segment's jerk was (``wm_control.safety.verify``);
- when the remaining velocity ``|v|`` can be removed in one segment (``|v| / dt <= min(A, D)`` and
  the step allows it) it is, exactly: the knot is at rest, and zero acceleration follows.

Knots (``BrakePlanner.num_knots``): a valid start has ``|dq| <= dq_max``, ``|ddq| <= A`` and
``|dddq| <= J``. Its worst case, bounded per joint by ``stop_knots``: one knot at the start's
acceleration (a jerk at the limit allows no step), ``ceil((|ddq| + A) / D)`` knots ramping it to
full deceleration while the speed still grows by at most ``|ddq| dt`` per knot, ``ceil(V' / (A dt))``
knots at full deceleration removing the peak speed ``V'``, and ``ceil(A / D) + 1`` knots ramping back
to zero and landing. For the FR3 at dt = 20 ms, 1 ms servo period and full limits that is 40 knots
(0.8 s; joints 5 and 7, ``dq_max`` 5.26 rad/s). Every brake of a valid start has exactly that many
knots, the tail at rest; a start beyond the valid set gets as many as its own bound needs.

From a start outside the limits (beyond the position margin, faster than the velocity bound) the
brake is still the best chunk there is: no chunk stops sooner, travels less, or is slower at any
moment. Checked by ``verify`` it reports only what the start forced: the position and velocity
limits the start is already outside of, or that its stop cannot avoid, and an acceleration above
``A`` that the start's own acceleration forces while it is ramped down.
"""

from __future__ import annotations

import numpy as np

from wm_control.errors import InputError
from wm_control.robot import RobotSpec
from wm_control.safety.config import SafetyConfig
from wm_control.trajectory import TrajectoryChunk

__all__ = ["BrakePlanner", "stop_knots"]

# A start whose own bound needs this many times the valid set's knots is no state of a robot.
_MAX_KNOT_FACTOR = 100


def stop_knots(speed: np.ndarray, acceleration: np.ndarray, A: np.ndarray, D: np.ndarray, dt: float) -> np.ndarray:
    """Upper bound on the knots the brake needs to stop, per joint (see the module docstring).

    Args:
        speed: ``|dq|`` at the start [rad/s], ``(n,)``.
        acceleration: ``|ddq|`` at the start [rad/s^2], ``(n,)``.
        A: acceleration limit [rad/s^2], ``(n,)``.
        D: largest acceleration step per knot [rad/s^2], ``(n,)``.
        dt: knot spacing [s].

    Returns:
        Knot counts ``(n,)`` (float, as they may be huge for an absurd start).
    """
    ramp_in = np.ceil((acceleration + A) / D)
    peak = speed + acceleration * dt * (1.0 + ramp_in)
    return 1.0 + ramp_in + np.ceil(peak / (A * dt)) + np.ceil(A / D) + 1.0


class BrakePlanner:
    """Plans the brake chunk of one robot at one control and one servo period.

    Args:
        spec: the robot (``dq_max``, ``ddq_max``, ``dddq_max``).
        config: ``acceleration_fraction`` and ``jerk_fraction`` set the brake's limits.
        dt: knot spacing [s].
        servo_period: period [s] of the layer that interpolates the chunks.
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, dt: float, servo_period: float) -> None:
        lim = spec.limits
        self.dt = float(dt)
        self.servo_period = float(servo_period)
        self.max_acceleration = config.acceleration_fraction * lim.ddq_max
        self.max_jerk = config.jerk_fraction * lim.dddq_max
        self.max_step = self.max_jerk * self.servo_period
        bound = stop_knots(lim.dq_max, self.max_acceleration, self.max_acceleration, self.max_step, self.dt)
        #: Knots of every brake from a valid start (``|dq| <= dq_max``, ``|ddq| <= A``, ``|dddq| <= J``).
        self.num_knots = int(bound.max())
        self._land_limit = np.minimum(self.max_acceleration, self.max_step)

    def plan(self, q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, dddq: np.ndarray) -> TrajectoryChunk:
        """The brake from a start state (four finite float64 arrays ``(n,)``: rad, rad/s, rad/s^2, rad/s^3).

        Returns:
            A chunk of ``num_knots`` knots (more only from a start beyond the valid set) whose last
            knots are at rest.

        Raises:
            InputError: the start is so far beyond the limits that stopping would take more than
                100 times ``num_knots`` knots (the fields are named).
        """
        dt, A, D = self.dt, self.max_acceleration, self.max_step
        need = stop_knots(np.abs(dq), np.abs(ddq), A, D, dt).max()
        if not need <= _MAX_KNOT_FACTOR * self.num_knots:
            raise InputError(
                f"start state dq={dq.tolist()} rad/s, ddq={ddq.tolist()} rad/s^2 would need {need:.3g} knots to "
                f"stop (the brake of any valid start needs {self.num_knots}); it is no command state of this robot"
            )
        K = max(self.num_knots, int(need))
        positions = np.empty((K, len(q)))
        velocities = np.zeros((K, len(q)))
        q, v, a_prev = q.copy(), dq.copy(), ddq.copy()
        # The first step shares the jerk budget with the previous segment's jerk (see verify).
        step = np.maximum(self.max_jerk - np.abs(dddq), 0.0) * self.servo_period
        half_dt2 = 0.5 * dt * dt
        k = 0
        for k in range(K):
            g = np.abs(v) / dt
            land_a = -v / dt
            # Relative slack: an exact plan lands on a step of D that rounding may push above it.
            land = (g <= self._land_limit) & (np.abs(land_a - a_prev) <= step * (1.0 + 1e-12))
            # Largest acceleration alpha opposing v whose ramp alpha, alpha - D, ..., alpha - m D
            # (the last in (0, D]) removes exactly |v|: alpha = g / (m + 1) + D m / 2, with m the
            # integer such that D m (m + 1) / 2 < g <= D (m + 1) (m + 2) / 2.
            m = np.maximum(np.ceil(np.sqrt(0.25 + 2.0 * g / D) - 0.5) - 1.0, 0.0)
            alpha = -np.sign(v) * (g / (m + 1.0) + 0.5 * D * m)
            a = np.minimum(np.maximum(alpha, -A), A)
            # The step limit wins over the acceleration limit: from a start above A the
            # acceleration is ramped down, never jumped.
            a = np.minimum(np.maximum(a, a_prev - step), a_prev + step)
            a = np.where(land, land_a, a)
            q = q + v * dt + a * half_dt2
            v = np.where(land, 0.0, v + a * dt)
            positions[k], velocities[k] = q, v
            a_prev, step = a, D
            if not (v.any() or a.any()):
                break
        positions[k + 1 :] = q
        return TrajectoryChunk(positions, velocities, dt)
