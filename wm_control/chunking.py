"""Normalised joint-velocity actions -> trajectory chunks that a real Franka accepts.

The control contract (DESIGN.md): an action in ``[-1, 1]^n`` is a joint velocity target, scaled per
joint by a fraction of the velocity limit. The chunk generator turns it into knots that the 1 kHz
layer interpolates with cubic Hermite splines, and shapes them so the interpolated command never
violates the robot's limits, whatever the action sequence:

- between knots the command has constant acceleration (``|a| <= A``);
- at a knot the acceleration changes by at most ``D = jerk_fraction * dddq_max * servo_period``,
  i.e. the jerk the 1 kHz layer sees stays below the jerk limit;
- the velocity target is bounded by the robot's (position-dependent) velocity limits and by a
  braking curve that slows the command down as it nears ``position_margin`` from a position limit;
- every knot is a state from which the chunk's brake (the jerk-limited stop at full deceleration
  that ends each chunk) stops ``position_margin`` short of every position limit, knots and the
  interpolated command between them included. The braking curve is a velocity bound and cannot
  promise this alone: a joint still accelerating towards a limit keeps gaining speed while the jerk
  limit ramps its acceleration down, so an acceleration whose brake would cross the margin is moved
  towards braking (the brake itself always qualifies: it continues the previous chunk's brake);
- with ``brake_to_rest`` every chunk ends at rest, so a planner that misses ticks makes the arm
  decelerate smoothly instead of tripping a reflex when the trajectory ends;
- with ``posture_gain`` the velocity target gains a pull towards the robot's start pose inside the
  null space of the TCP position (joint motions that leave the TCP where it is), so a redundant arm
  that reaches one position goal after another does not wander into odd postures.

The velocity target is approached as fast as those limits allow, without overshoot: the acceleration
is chosen so that ramping it back to zero at the jerk limit lands exactly on the target.

The position guarantee holds from any state whose brake keeps the margin, e.g. ``rest(q)`` with ``q``
at least ``position_margin`` inside the limits, up to floating-point rounding (nanoradians). From a
state that starts inside the margin the command never moves closer to the limit than its brake would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from wm_control.errors import ConfigError, InputError, WmControlError, check_finite, check_range
from wm_control.kinematics import tcp_jacobian
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
    servo_period: period of the interpolating layer [s]; an acceleration change at a knot happens
        within one period, so it is what turns acceleration steps into jerk. ``None``: the period of
        the layer that runs the chunks (the MJCF timestep in simulation, ``RobotSpec.servo_period`` on
        the robot), which is what a generator records; a value is a claim that it must match.
    position_margin: distance kept from every position limit [rad], >= 0, at every knot and in the
        interpolated command (see the module docstring).
    velocity_margin: distance kept below the robot's (position-dependent) velocity limits [rad/s];
        it absorbs the overshoot of a jerk-limited command chasing a bound that shrinks as it moves.
    tracking_knots: knots that follow the velocity target before braking, >= 1.
    brake_to_rest: append knots that bring the command to rest at the end of each chunk.
    posture_gain: null-space pull towards ``RobotSpec.start_q`` [1/s], >= 0; 0: off. The velocity
        target becomes ``action * scale + N(q) k (start_q - q)``, clipped to the action's range
        (``+-scale``), where ``N`` projects onto the joint velocities that leave the TCP position where it
        is (damped, so it stays bounded near singularities). It changes where the elbow and wrist go, not
        where the TCP goes (to first order). Without it, a 7-joint arm that reaches 3-D goal after goal
        drifts: measured on ``fr3-reach``, the wrist joints ended near their limits after 4-5 goals and
        the planner stalled 3-9 cm short of the later goals. A generator that holds
        (``generate(..., posture=False)``) leaves it out, so a hold brakes to rest.
    """

    velocity_fraction: float | tuple[float, ...] = 0.5
    acceleration_fraction: float = 0.8
    jerk_fraction: float = 0.8
    servo_period: float | None = None
    position_margin: float = 0.05
    velocity_margin: float = 0.1
    tracking_knots: int = 1
    brake_to_rest: bool = True
    posture_gain: float = 0.0

    def __post_init__(self) -> None:
        fracs = self.velocity_fraction if isinstance(self.velocity_fraction, tuple) else (self.velocity_fraction,)
        for i, f in enumerate(fracs):
            check_range(f"ChunkConfig.velocity_fraction[{i}]", f, 0.0, 1.0, low_inclusive=False)
        check_range("ChunkConfig.acceleration_fraction", self.acceleration_fraction, 0.0, 1.0, low_inclusive=False)
        check_range("ChunkConfig.jerk_fraction", self.jerk_fraction, 0.0, 1.0, low_inclusive=False)
        if self.servo_period is not None:
            check_range("ChunkConfig.servo_period", self.servo_period, 0.0, 0.1, low_inclusive=False)
        check_range("ChunkConfig.position_margin", self.position_margin, 0.0, 0.5)
        check_range("ChunkConfig.velocity_margin", self.velocity_margin, 0.0, 1.0)
        check_range("ChunkConfig.tracking_knots", self.tracking_knots, 1, 1000)
        check_range("ChunkConfig.posture_gain", self.posture_gain, 0.0, 10.0)


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
        dt: control period and knot spacing [s]; a multiple of the servo period.
        servo_period: period of the layer that runs the chunks [s]: the MJCF timestep in simulation;
            default ``spec.servo_period`` (the real robot's control cycle).

    Raises:
        ConfigError: ``config.servo_period`` is set and differs from the servo period of the layer
            that runs the chunks, or ``dt`` is not a whole multiple of it.

    ``config`` is stored with its servo period filled in, so ``to_dict(generator.config)`` records
    exactly how chunks were shaped.
    """

    def __init__(self, spec: RobotSpec, config: ChunkConfig, dt: float, servo_period: float | None = None) -> None:
        check_range("dt", dt, 0.0, 1.0, low_inclusive=False)
        servo = float(spec.servo_period if servo_period is None else servo_period)
        check_range("servo_period", servo, 0.0, 0.1, low_inclusive=False)
        if config.servo_period is not None and not np.isclose(config.servo_period, servo, rtol=1e-9, atol=0.0):
            raise ConfigError(
                f"ChunkConfig.servo_period={config.servo_period} s differs from the servo period of the layer that "
                f"runs the chunks ({servo} s); chunks shaped for one rate break the jerk limit at another"
            )
        config = dataclasses.replace(config, servo_period=servo)
        ratio = dt / servo
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"dt={dt} must be a whole multiple of servo_period={servo}")
        if isinstance(config.velocity_fraction, tuple) and len(config.velocity_fraction) not in (1, spec.dof):
            raise ConfigError(
                f"ChunkConfig.velocity_fraction has {len(config.velocity_fraction)} values; "
                f"expected 1 or {spec.dof} for robot {spec.name!r}"
            )
        if config.posture_gain > 0.0 and (spec.start_q is None or spec.dof <= 3):
            raise ConfigError(
                f"ChunkConfig.posture_gain={config.posture_gain} needs a robot with a start pose and more than 3 "
                f"joints (robot {spec.name!r}: {spec.dof} joints, start pose "
                f"{'set' if spec.start_q is not None else 'unset'}); use 0"
            )
        frac = np.broadcast_to(np.asarray(config.velocity_fraction, dtype=np.float64), (spec.dof,))
        self.spec = spec
        self.config = config
        self.dt = float(dt)
        self.servo_period = servo
        lim = spec.limits
        self.velocity_scale = frac * lim.dq_max
        self.max_acceleration = config.acceleration_fraction * lim.ddq_max
        self.max_acceleration_step = config.jerk_fraction * lim.dddq_max * servo
        # The braking curves assume half the acceleration budget so that the approach to a limit is
        # gentle; the position guarantee comes from checking each knot's brake (``_guard``).
        self._brake_acc = 0.5 * self.max_acceleration
        self._q_lo = lim.q_min + config.position_margin
        self._q_hi = lim.q_max - config.position_margin
        self._reaction_time = dt * (1.0 + np.ceil(self.max_acceleration / self.max_acceleration_step))
        ramp = int(np.ceil(np.max(2 * self.max_acceleration / self.max_acceleration_step)))
        stop = int(np.ceil(np.max(lim.dq_max / (self.max_acceleration * dt))))
        # Knots a brake needs from any valid state (|dq| <= dq_max, |ddq| <= A): ramp the acceleration
        # over to full deceleration, decelerate, ramp back to zero, with a knot of slack each side.
        self._brake_knots = stop + 2 * ramp + 2
        self.num_knots = config.tracking_knots + (self._brake_knots if config.brake_to_rest else 0)
        # Candidate accelerations from the brake's (0) to the requested one (1), tried when the
        # requested one's brake would cross the margin: nine cost about as much as one rollout (they
        # are batched), in steps of an eighth of the way (at most 2 D / 8 rad/s^2).
        self._blend = np.linspace(0.0, 1.0, 9)[:, None]
        self._half_dt2 = 0.5 * self.dt * self.dt
        self._eight_over_d = 8.0 / self.max_acceleration_step
        # How far an extremum between two knots can lie beyond them (``_extremes``).
        self._turn_slack = self.max_acceleration * self.dt * self.dt / 8.0
        # Valid command states (``_check_state``), with room for rounding.
        self._dq_bound = lim.dq_max * (1.0 + 1e-9)
        self._ddq_bound = self.max_acceleration * (1.0 + 1e-9)

    def rest(self, q: np.ndarray) -> CommandState:
        """Command state at rest at ``q`` (after a reset or a hold)."""
        q = np.array(q, dtype=np.float64)
        return CommandState(q, np.zeros_like(q), np.zeros_like(q))

    def action_to_velocity(self, action: np.ndarray) -> np.ndarray:
        """Check a normalised action ``(n,)`` in [-1, 1] and scale it to joint velocities [rad/s]."""
        a = np.asarray(action)
        if a.shape != (self.spec.dof,):
            raise InputError(f"action has shape {a.shape}; expected ({self.spec.dof},)")
        if a.dtype.kind not in "fiu":
            raise InputError(f"action has dtype {a.dtype}; expected a float array")
        a = a.astype(np.float64)
        # One test on the hot path (NaN fails it too); the messages only when it fails.
        if not (np.abs(a) <= 1.0 + 1e-6).all():
            check_finite("action", a, self.spec.joint_names)
            i = int(np.flatnonzero(np.abs(a) > 1.0 + 1e-6)[0])
            # repr: the shortest text that round-trips, so 1 + 2e-6 does not print as "1".
            raise InputError(f"action[{i}] ({self.spec.joint_names[i]}) = {float(a[i])!r} is outside [-1, 1]")
        return np.minimum(np.maximum(a, -1.0), 1.0) * self.velocity_scale

    def velocity_envelope(self, q: np.ndarray, dq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Velocity bounds ``(lower, upper)`` [rad/s] the command keeps at position ``q``.

        Both the robot's position-dependent limits and the braking curves (which slow the command
        down as it nears ``position_margin`` from a position limit; ``generate`` enforces the margin
        itself) are evaluated where the joint will be after the reaction time of the jerk-limited
        command, moving at ``dq``, so the command can slow down in time.
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

    def _accel_towards(self, dq: np.ndarray, ddq: np.ndarray, target: np.ndarray | float) -> np.ndarray:
        # Largest acceleration from which ramping back to zero (at D per knot) ends on the target:
        # after choosing a = D (m + r) the velocity gains dt (a (m+1) - D m (m+1) / 2).
        D, A = self.max_acceleration_step, self.max_acceleration
        err = target - dq
        g = np.abs(err) / self.dt
        m = np.floor((np.sqrt(1.0 + self._eight_over_d * g) - 1.0) * 0.5)
        a = np.copysign((g + 0.5 * D * m * (m + 1.0)) / (m + 1.0), err)
        a = np.minimum(np.maximum(a, ddq - D), ddq + D)
        return np.minimum(np.maximum(a, -A), A)

    def _check_state(self, state: CommandState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate a command state: shapes ``(n,)``, finite, velocity and acceleration in range."""
        q, dq, ddq = (np.asarray(v, dtype=np.float64) for v in state)
        n = self.spec.dof
        # One cheap test on the hot path (NaN fails every comparison); the messages only on failure.
        if (
            q.shape == dq.shape == ddq.shape == (n,)
            and np.isfinite(q).all()
            and (np.abs(dq) <= self._dq_bound).all()
            and (np.abs(ddq) <= self._ddq_bound).all()
        ):
            return q, dq, ddq
        names = self.spec.joint_names
        for field, arr in (("q", q), ("dq", dq), ("ddq", ddq)):
            if arr.shape != (n,):
                raise InputError(f"state.{field} has shape {arr.shape}; expected ({n},)")
            check_finite(f"state.{field}", arr, names)
        # A command state comes from rest() or a previous next_state, which stay inside these bounds;
        # the brake's knot budget (num_knots) is sized for them.
        for field, arr, bound, unit in (("dq", dq, self._dq_bound, "rad/s"), ("ddq", ddq, self._ddq_bound, "rad/s^2")):
            bad = np.flatnonzero(np.abs(arr) > bound)
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"state.{field}[{i}] ({names[i]}) = {float(arr[i])!r} {unit} is outside "
                    f"[{-float(bound[i])!r}, {float(bound[i])!r}]; a command state comes from rest() or a previous "
                    "next_state"
                )
        return q, dq, ddq

    def _brake_rollout(self, q: np.ndarray, dq: np.ndarray, a: np.ndarray) -> _Rollout:
        """Apply each candidate acceleration ``a (K, n)`` for one knot from ``(q, dq) (n,)``, then brake.

        Returns the knots ``(L + 1, K, n)`` from ``(q, dq)`` on; candidates that stop early stay at rest.

        Raises:
            WmControlError: a candidate does not come to rest within the brake's knot budget (impossible
                for states that ``_check_state`` accepts).
        """
        dt, c = self.dt, self._half_dt2
        Q = np.empty((self._brake_knots + 2, *a.shape))
        V = np.empty_like(Q)
        Q[0], V[0] = q, dq
        qk, vk, ak = q + dq * dt + c * a, dq + a * dt, a
        Q[1], V[1] = qk, vk
        last = 1
        if vk.any() or ak.any():
            for k in range(2, self._brake_knots + 2):
                a = self._accel_towards(vk, ak, 0.0)
                qk, vk = qk + vk * dt + c * a, vk + a * dt
                # Snap numerically-zero velocities so the final knot is exactly at rest.
                # (Multiplying by the mask is the cheapest select for arrays this small.)
                moving = np.abs(vk) >= 1e-9
                vk, ak = vk * moving, a * moving
                Q[k], V[k] = qk, vk
                last = k
                if not moving.any():
                    break
            else:
                raise WmControlError(
                    f"the chunk's brake did not stop within {self._brake_knots} knots (num_knots={self.num_knots}); "
                    f"largest velocity left: {float(np.abs(vk).max())!r} rad/s"
                )
        return _Rollout(Q[: last + 1], V[: last + 1])

    def _extremes(self, r: _Rollout, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        """Highest and lowest position ``(K, n)`` of the cubic Hermite command through a rollout's knots.

        Each segment has constant acceleration ``a = (v1 - v0) / dt``, which the spline reproduces
        exactly; where the velocity changes sign inside a segment, the extremum lies beyond its start
        by ``v0^2 / (2 |a|)`` and beyond both knots by at most ``|a| dt^2 / 8``. ``exact=False`` adds
        that bound to the knots instead of finding the extrema.
        """
        if not exact:
            return r.positions.max(axis=0) + self._turn_slack, r.positions.min(axis=0) - self._turn_slack
        Q, v0, v1 = r.positions, r.velocities[:-1], r.velocities[1:]
        turn = v0 * v1 < 0.0
        # Signed: v0 > 0 > v1 gives a maximum above Q[:-1], v0 < 0 < v1 a minimum below it.
        overshoot = np.divide(v0 * np.abs(v0) * self.dt, 2.0 * np.abs(v1 - v0), out=np.zeros_like(v0), where=turn)
        extremum = np.where(turn, Q[:-1] + overshoot, Q[1:])
        return np.maximum(extremum.max(axis=0), Q[0]), np.minimum(extremum.min(axis=0), Q[0])

    def _guard(self, q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, _Rollout]:
        """The step from the brake towards the requested acceleration ``a (n,)``, as far as its brake
        keeps the position margin: the accelerations ``(n,)`` and their rollout (knots ``(L + 1, n)``).
        """
        r = self._brake_rollout(q, dq, a[None])
        for exact in (False, True):
            high, low = self._extremes(r, exact)
            if np.all(high <= self._q_hi) and np.all(low >= self._q_lo):
                return a, _Rollout(r.positions[:, 0], r.velocities[:, 0])
        brake = self._accel_towards(dq, ddq, 0.0)
        candidates = brake + self._blend * (a - brake)
        r = self._brake_rollout(q, dq, candidates)
        high, low = self._extremes(r, exact=True)
        # The brake (candidate 0) always qualifies: from a state that keeps the margin it retraces the
        # previous chunk's brake, and from one inside the margin nothing may do worse than it.
        ok = (high <= np.maximum(self._q_hi, high[0])) & (low >= np.minimum(self._q_lo, low[0]))
        best = len(candidates) - 1 - np.argmax(ok[::-1], axis=0)
        joints = np.arange(len(a))
        chosen = _Rollout(r.positions[:, best, joints], r.velocities[:, best, joints])
        return candidates[best, joints], chosen

    def _track(self, q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, _Rollout]:
        """One tracking knot from ``(q, dq, ddq)`` towards the velocity target ``(n,)`` [rad/s]: its
        acceleration ``(n,)`` and the rollout of its brake (``_guard``).
        """
        lo, hi = self.velocity_envelope(q, dq)
        return self._guard(q, dq, ddq, self._accel_towards(dq, ddq, np.minimum(np.maximum(target, lo), hi)))

    def posture_pull(self, q: np.ndarray) -> np.ndarray:
        """The null-space pull ``N(q) k (start_q - q)`` [rad/s] at command position ``q (n,)``
        (``ChunkConfig.posture_gain``); zeros when the gain is 0.
        """
        k = self.config.posture_gain
        if k == 0.0:
            return np.zeros(self.spec.dof)
        assert self.spec.start_q is not None  # checked in __init__
        pull = k * (self.spec.start_q - q)
        J = tcp_jacobian(self.spec, q)[:3]
        # N = I - J^T (J J^T + lambda^2 I)^-1 J: the damping (1 cm per rad) keeps it bounded where J
        # loses rank; elsewhere the TCP velocity it leaves is lambda^2 / (sigma^2 + lambda^2) of the pull's.
        return pull - J.T @ np.linalg.solve(J @ J.T + _POSTURE_DAMPING**2 * np.eye(3), J @ pull)

    def generate(self, state: CommandState, action: np.ndarray, *, posture: bool = True) -> ChunkResult:
        """Build the chunk for one control tick.

        Args:
            state: command state at the start of the tick (the previous result's ``next_state``, or
                ``rest(q)`` after a reset), each field ``(n,)``.
            action: ``(n,)`` normalised velocity targets in [-1, 1].
            posture: add the null-space posture pull (``ChunkConfig.posture_gain``); ``False`` for a hold,
                which brakes to rest.

        Returns:
            ``ChunkResult``: the chunk (``num_knots`` knots) and the command state at its first knot.

        Raises:
            InputError: the state has the wrong shape, a NaN or inf, or a velocity or acceleration
                outside the robot's limits (the field and joint are named); the action is malformed.
        """
        q, dq, ddq = self._check_state(state)
        target = self.action_to_velocity(action)
        if posture and self.config.posture_gain > 0.0:
            scale = self.velocity_scale
            target = np.minimum(np.maximum(target + self.posture_pull(q), -scale), scale)
        positions = np.empty((self.num_knots, self.spec.dof))
        velocities = np.zeros((self.num_knots, self.spec.dof))
        a, rollout = self._track(q, dq, ddq, target)
        first = CommandState(rollout.positions[1], rollout.velocities[1], a)
        positions[0], velocities[0] = first.q, first.dq
        tracking = self.config.tracking_knots
        for k in range(1, tracking):
            a, rollout = self._track(rollout.positions[1], rollout.velocities[1], a, target)
            positions[k], velocities[k] = rollout.positions[1], rollout.velocities[1]
        if self.config.brake_to_rest:
            # The last tracking knot's rollout is its brake, already checked against the margin.
            tail = len(rollout.positions) - 1
            positions[tracking - 1 : tracking - 1 + tail] = rollout.positions[1:]
            velocities[tracking - 1 : tracking - 1 + tail] = rollout.velocities[1:]
            positions[tracking - 1 + tail :] = rollout.positions[-1]
        return ChunkResult(TrajectoryChunk(positions, velocities, self.dt), first)


# Damping of the posture pull's null-space projector [m/rad] (``ChunkGenerator.posture_pull``).
_POSTURE_DAMPING = 0.01


class _Rollout(NamedTuple):
    """A brake rollout: knot positions [rad] and velocities [rad/s], ``(L + 1, ...)``, from the start
    state on; between knots the acceleration is constant.
    """

    positions: np.ndarray
    velocities: np.ndarray
