"""Normalised joint-velocity actions -> trajectory chunks that a real Franka accepts.

The control contract (DESIGN.md): an action in ``[-1, 1]^n`` is a joint velocity target, scaled per
joint by a fraction of the velocity limit. The chunk generator turns it into knots that the 1 kHz
layer interpolates with cubic Hermite splines, and shapes them so the interpolated command never
violates the robot's limits, whatever the action sequence:

- between knots the command has constant acceleration (``|a| <= A``);
- at a knot the acceleration changes by at most ``D = jerk_fraction * dddq_max * servo_period``,
  i.e. the jerk the 1 kHz layer sees stays below the jerk limit;
- the velocity target is bounded by the robot's (position-dependent) velocity limits and by a
  braking curve that stops the command ``position_margin`` short of every position limit;
- with ``brake_to_rest`` every chunk ends at rest, so a planner that misses ticks makes the arm
  decelerate smoothly instead of tripping a reflex when the trajectory ends.

The velocity target is approached as fast as those limits allow, without overshoot: the acceleration
is chosen so that ramping it back to zero at the jerk limit lands exactly on the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from wm_control.errors import ConfigError, InputError, check_finite, check_range
from wm_control.robot import RobotSpec, velocity_bounds
from wm_control.trajectory import TrajectoryChunk

__all__ = ["ChunkConfig", "ChunkGenerator", "ChunkResult", "CommandState"]


@dataclass(frozen=True)
class ChunkConfig:
    """How actions become trajectory chunks.

    velocity_fraction: action 1.0 commands this fraction of each joint's ``dq_max``; a scalar or one
        value per joint, each in (0, 1].
    acceleration_fraction: fraction of ``ddq_max`` the command may use, (0, 1].
    jerk_fraction: fraction of ``dddq_max`` the command may use, (0, 1].
    servo_period: period of the interpolating layer [s] (1 ms on a Franka); an acceleration change at
        a knot happens within one period, so it is what turns acceleration steps into jerk.
    position_margin: distance kept from every position limit [rad], >= 0.
    velocity_margin: distance kept below the robot's (position-dependent) velocity limits [rad/s];
        it absorbs the overshoot of a jerk-limited command chasing a bound that shrinks as it moves.
    tracking_knots: knots that follow the velocity target before braking, >= 1.
    brake_to_rest: append knots that bring the command to rest at the end of each chunk.
    """

    velocity_fraction: float | tuple[float, ...] = 0.5
    acceleration_fraction: float = 0.8
    jerk_fraction: float = 0.8
    servo_period: float = 0.001
    position_margin: float = 0.05
    velocity_margin: float = 0.1
    tracking_knots: int = 1
    brake_to_rest: bool = True

    def __post_init__(self) -> None:
        fracs = self.velocity_fraction if isinstance(self.velocity_fraction, tuple) else (self.velocity_fraction,)
        for i, f in enumerate(fracs):
            check_range(f"ChunkConfig.velocity_fraction[{i}]", f, 0.0, 1.0, low_inclusive=False)
        check_range("ChunkConfig.acceleration_fraction", self.acceleration_fraction, 0.0, 1.0, low_inclusive=False)
        check_range("ChunkConfig.jerk_fraction", self.jerk_fraction, 0.0, 1.0, low_inclusive=False)
        check_range("ChunkConfig.servo_period", self.servo_period, 0.0, 0.1, low_inclusive=False)
        check_range("ChunkConfig.position_margin", self.position_margin, 0.0, 0.5)
        check_range("ChunkConfig.velocity_margin", self.velocity_margin, 0.0, 1.0)
        check_range("ChunkConfig.tracking_knots", self.tracking_knots, 1, 1000)


class CommandState(NamedTuple):
    """Commanded joint state at a knot: position [rad], velocity [rad/s], and the acceleration of the
    segment that ended there [rad/s^2], each ``(n,)``.
    """

    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray


class ChunkResult(NamedTuple):
    """A chunk and the command state at its first knot (where the next tick starts from)."""

    chunk: TrajectoryChunk
    next_state: CommandState


class ChunkGenerator:
    """Turns normalised velocity actions into limit-respecting trajectory chunks for one robot.

    Args:
        spec: robot description (limits).
        config: shaping parameters.
        dt: control period and knot spacing [s]; a multiple of ``config.servo_period``.
    """

    def __init__(self, spec: RobotSpec, config: ChunkConfig, dt: float) -> None:
        check_range("dt", dt, 0.0, 1.0, low_inclusive=False)
        ratio = dt / config.servo_period
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"dt={dt} must be a whole multiple of servo_period={config.servo_period}")
        if isinstance(config.velocity_fraction, tuple) and len(config.velocity_fraction) not in (1, spec.dof):
            raise ConfigError(
                f"ChunkConfig.velocity_fraction has {len(config.velocity_fraction)} values; "
                f"expected 1 or {spec.dof} for robot {spec.name!r}"
            )
        frac = np.broadcast_to(np.asarray(config.velocity_fraction, dtype=np.float64), (spec.dof,))
        self.spec = spec
        self.config = config
        self.dt = float(dt)
        lim = spec.limits
        self.velocity_scale = frac * lim.dq_max
        self.max_acceleration = config.acceleration_fraction * lim.ddq_max
        self.max_acceleration_step = config.jerk_fraction * lim.dddq_max * config.servo_period
        # Braking curves assume half the acceleration budget, which leaves room for the jerk-limited
        # ramp into the deceleration.
        self._brake_acc = 0.5 * self.max_acceleration
        self._q_lo = lim.q_min + config.position_margin
        self._q_hi = lim.q_max - config.position_margin
        self._reaction_time = dt * (1.0 + np.ceil(self.max_acceleration / self.max_acceleration_step))
        ramp = int(np.ceil(np.max(2 * self.max_acceleration / self.max_acceleration_step)))
        stop = int(np.ceil(np.max(lim.dq_max / (self.max_acceleration * dt))))
        self.num_knots = config.tracking_knots + ((stop + 2 * ramp + 2) if config.brake_to_rest else 0)

    def rest(self, q: np.ndarray) -> CommandState:
        """Command state at rest at ``q`` (after a reset or a hold)."""
        q = np.array(q, dtype=np.float64)
        return CommandState(q, np.zeros_like(q), np.zeros_like(q))

    def action_to_velocity(self, action: np.ndarray) -> np.ndarray:
        """Check a normalised action ``(n,)`` in [-1, 1] and scale it to joint velocities [rad/s]."""
        a = np.asarray(action)
        if a.shape != (self.spec.dof,):
            raise InputError(f"action has shape {a.shape}; expected ({self.spec.dof},)")
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"action has dtype {a.dtype}; expected a float array")
        a = a.astype(np.float64)
        check_finite("action", a, self.spec.joint_names)
        bad = np.flatnonzero(np.abs(a) > 1.0 + 1e-6)
        if bad.size:
            i = int(bad[0])
            raise InputError(f"action[{i}] ({self.spec.joint_names[i]}) = {a[i]:.4g} is outside [-1, 1]")
        return np.clip(a, -1.0, 1.0) * self.velocity_scale

    def velocity_envelope(self, q: np.ndarray, dq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Velocity bounds ``(lower, upper)`` [rad/s] the command keeps at position ``q``.

        Both the robot's position-dependent limits and the braking curves (which stop the command
        ``position_margin`` short of each position limit) are evaluated where the joint will be after
        the reaction time of the jerk-limited command, moving at ``dq``, so the command can slow down
        in time.
        """
        if dq is None:
            q_up = q_dn = q
        else:
            q_up = q + np.maximum(dq, 0.0) * self._reaction_time
            q_dn = q + np.minimum(dq, 0.0) * self._reaction_time
        margin = self.config.velocity_margin
        hi = velocity_bounds(self.spec, q_up)[1] - margin
        lo = velocity_bounds(self.spec, q_dn)[0] + margin
        hi = np.minimum(hi, np.sqrt(2 * self._brake_acc * np.maximum(0.0, self._q_hi - q_up)))
        lo = np.maximum(lo, -np.sqrt(2 * self._brake_acc * np.maximum(0.0, q_dn - self._q_lo)))
        # Next to a limit a margin can push a bound past zero; stopping must always stay allowed.
        return np.minimum(lo, 0.0), np.maximum(hi, 0.0)

    def _accel_towards(self, dq: np.ndarray, ddq: np.ndarray, target: np.ndarray) -> np.ndarray:
        # Largest acceleration from which ramping back to zero (at D per knot) ends on the target:
        # after choosing a = D (m + r) the velocity gains dt (a (m+1) - D m (m+1) / 2).
        D, A = self.max_acceleration_step, self.max_acceleration
        err = target - dq
        g = np.abs(err) / self.dt
        m = np.floor((np.sqrt(1.0 + (8.0 / D) * g) - 1.0) * 0.5)
        a = np.copysign((g + 0.5 * D * m * (m + 1.0)) / (m + 1.0), err)
        a = np.minimum(np.maximum(a, ddq - D), ddq + D)
        return np.minimum(np.maximum(a, -A), A)

    def _knot(self, state: CommandState, target: np.ndarray) -> CommandState:
        lo, hi = self.velocity_envelope(state.q, state.dq)
        a = self._accel_towards(state.dq, state.ddq, np.minimum(np.maximum(target, lo), hi))
        dt = self.dt
        return CommandState(state.q + state.dq * dt + 0.5 * a * dt * dt, state.dq + a * dt, a)

    def generate(self, state: CommandState, action: np.ndarray) -> ChunkResult:
        """Build the chunk for one control tick.

        Args:
            state: command state at the start of the tick (the previous result's ``next_state``, or
                ``rest(q)`` after a reset).
            action: ``(n,)`` normalised velocity targets in [-1, 1].

        Returns:
            ``ChunkResult``: the chunk (``num_knots`` knots) and the command state at its first knot.
        """
        target = self.action_to_velocity(action)
        knots = [self._knot(state, target)]
        for _ in range(self.config.tracking_knots - 1):
            knots.append(self._knot(knots[-1], target))
        if self.config.brake_to_rest:
            # Braking needs no envelope: the tracking knots already respect the braking curves.
            zero = np.zeros_like(target)
            q, dq, ddq = knots[-1]
            dt = self.dt
            while dq.any() or ddq.any():
                a = self._accel_towards(dq, ddq, zero)
                q, dq = q + dq * dt + 0.5 * a * dt * dt, dq + a * dt
                # Snap numerically-zero velocities so the final knot is exactly at rest.
                rest = np.abs(dq) < 1e-9
                dq = np.where(rest, 0.0, dq)
                ddq = np.where(rest, 0.0, a)
                knots.append(CommandState(q, dq, ddq))
                assert len(knots) <= self.num_knots, "num_knots too small to brake to rest"
        positions = np.empty((self.num_knots, self.spec.dof))
        velocities = np.zeros((self.num_knots, self.spec.dof))
        positions[: len(knots)] = [k.q for k in knots]
        positions[len(knots) :] = knots[-1].q
        velocities[: len(knots)] = [k.dq for k in knots]
        return ChunkResult(TrajectoryChunk(positions, velocities, self.dt), knots[0])
