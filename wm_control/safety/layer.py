"""The safety layer: verify every outgoing chunk, and send a brake instead of one that fails.

It sits between the chunk generator and the 1 kHz layer and trusts neither the generator nor the
planner: it shares no code with ``wm_control.chunking``, reads its limits from the robot's tables
(``wm_control.robot``) and checks each chunk as the robot will see it, interpolated and
differentiated at the servo period (``wm_control.safety.verify``). Each control tick::

    verdict = layer.filter(chunk, start, joint_names)   # send verdict.chunk
    start = layer.next_start(verdict.chunk, start)      # where the next tick's chunk starts

A chunk either passes unchanged (the same object) or is replaced by the brake from ``start``
(``wm_control.safety.brake``), the fastest stop the limits allow. From a start that some chunk
within the limits can stop from (every first knot of a verified chunk is one: the rest of that
chunk is such a stop) the brake keeps the limits too, as it stops sooner and travels less. From a
start outside the limits, or too fast to stop inside them, the brake is still what is sent, and
what ``verify`` reports of it is only what that start forced (see ``wm_control.safety.brake``).

The state after a brake (``next_start``) may use the full acceleration this layer allows; a chunk
generator that accepts only command states within a smaller acceleration budget (the generator's
``ChunkConfig.acceleration_fraction``) needs this layer's ``acceleration_fraction`` no higher to
continue from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from wm_control.errors import ConfigError, check_range
from wm_control.robot import RobotSpec, velocity_bounds
from wm_control.safety.brake import BrakePlanner
from wm_control.safety.config import SafetyConfig
from wm_control.safety.spline import segments
from wm_control.safety.start import ChunkStart, check_start
from wm_control.safety.verify import ChunkVerifier, Violation
from wm_control.safety.workspace import BaseGuard, FloorGuard, SelfGuard, poses
from wm_control.trajectory import TrajectoryChunk

__all__ = ["SafetyLayer", "Verdict"]


class Verdict(NamedTuple):
    """What ``SafetyLayer.filter`` decided.

    Attributes:
        chunk: the chunk to send: the input itself when it passed, else the brake.
        passed: whether the input chunk verified.
        violations: why it failed (empty when it passed).
    """

    chunk: TrajectoryChunk
    passed: bool
    violations: list[Violation]


class SafetyLayer:
    """Independent verifier and brake for the trajectory chunks sent to one robot.

    Args:
        spec: the robot: joint names, limit tables, position-dependent velocity limits.
        config: margins and fractions of the limits the command may use.
        dt: knot spacing of every chunk [s] (the control period: 0.02 for fr3-reach).
        servo_period: period of the layer that interpolates the chunks [s] (1 ms on the FR3, the
            MJCF timestep in simulation); acceleration steps at knots happen within it.

    Raises:
        ConfigError: ``dt`` or ``servo_period`` out of range, ``dt`` not a whole multiple of
            ``servo_period``, or margins that leave no room: an empty position range, or a
            velocity bound at its edge that no longer allows rest.
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, dt: float, servo_period: float) -> None:
        check_range("SafetyLayer.dt", dt, 0.0, 1.0, low_inclusive=False)
        check_range("SafetyLayer.servo_period", servo_period, 0.0, 0.1, low_inclusive=False)
        ratio = dt / servo_period
        # Knots on servo ticks: a 1 ms step never straddles a knot, which the checks assume.
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"SafetyLayer.dt={dt!r} s must be a whole multiple of servo_period={servo_period!r} s")
        lim = spec.limits
        low, high = lim.q_min + config.position_margin, lim.q_max - config.position_margin
        if np.any(low >= high):
            j = int(np.argmax(low >= high))
            raise ConfigError(
                f"SafetyConfig.position_margin={config.position_margin!r} rad leaves no range for "
                f"{spec.joint_names[j]} ([{lim.q_min[j]!r}, {lim.q_max[j]!r}] rad)"
            )
        # The bounds are tightest at the range's edges; rest must stay allowed there, or a joint
        # braked next to its margin would violate the velocity limit standing still.
        upper = velocity_bounds(spec, high)[1] - config.velocity_margin
        lower = velocity_bounds(spec, low)[0] + config.velocity_margin
        if np.any(upper < 0.0) or np.any(lower > 0.0):
            j = int(np.argmax((upper < 0.0) | (lower > 0.0)))
            edge = np.minimum(upper, -lower) + config.velocity_margin
            raise ConfigError(
                f"SafetyConfig.velocity_margin={config.velocity_margin!r} rad/s is above the velocity limit of "
                f"{spec.joint_names[j]} at the position margin ({edge[j]:.4g} rad/s): rest would be a violation "
                "there; lower it or raise position_margin"
            )
        self.spec = spec
        self.config = config
        self.dt = float(dt)
        self.servo_period = float(servo_period)
        self._verifier = ChunkVerifier(spec, config, self.dt, self.servo_period)
        self._brake = BrakePlanner(spec, config, self.dt, self.servo_period)
        self._floor = (
            None if config.floor_height is None else FloorGuard(spec, config.floor_height, config.floor_clearance)
        )
        self._base = None if config.base_clearance is None else BaseGuard(spec, config.base_clearance)
        self._self = None if config.self_clearance is None else SelfGuard(spec, config.self_clearance)

    @property
    def brake_knots(self) -> int:
        """Knots of the brake from any valid start (``wm_control.safety.brake``): 40 for the FR3 at 20 ms."""
        return self._brake.num_knots

    def verify(self, chunk: TrajectoryChunk, start: ChunkStart, joint_names: Sequence[str]) -> list[Violation]:
        """Check a chunk from a start state; see ``wm_control.safety.verify`` for every check.

        Args:
            chunk: knots ``(K, n)`` [rad, rad/s] at ``dt, ..., K dt``; anything else is reported.
            start: the command state at the chunk's start, fields ``(n,)``.
            joint_names: the chunk's joint order; must equal ``spec.joint_names``.

        Returns:
            The violations, at most one per kind and joint (the earliest); empty when safe to send.

        Raises:
            InputError: ``start`` is malformed (not a ``ChunkStart``, a wrong shape, NaN or inf).
        """
        state = check_start(start, self.spec.joint_names)
        return self._check(chunk, state, joint_names)

    def _check(
        self, chunk: TrajectoryChunk, state: tuple[np.ndarray, ...], joint_names: Sequence[str]
    ) -> list[Violation]:
        """The verifier's violations, then the floor's, the base column's and the upper arm's (on
        well-formed chunks only).
        """
        violations = self._verifier.verify(chunk, state, joint_names)
        if any(v.kind in ("names", "shape", "finite") for v in violations):
            return violations
        if self._floor is None and self._base is None and self._self is None:
            return violations
        # The kinematics of the start and every knot, once for all the workspace checks.
        p = poses(self.spec, np.vstack([state[0], np.asarray(chunk.positions, dtype=np.float64)]))
        if self._floor is not None:
            hit = self._floor.check(p)
            if hit is not None:
                knot, low = hit
                text = f"floor: the arm's lowest point at knot {knot} is {low:.4g} m, limit {self._floor.limit:.4g} m"
                violations.append(Violation("floor", None, "knot", knot, low, self._floor.limit, text))
        if self._base is not None:
            hit = self._base.check(p)
            if hit is not None:
                knot, gap = hit
                limit = self._base.clearance
                where = f"{gap:.4g} m from the base column at knot {knot}, limit {limit:.4g} m"
                text = f"base: the forearm, wrist or hand comes {where}"
                violations.append(Violation("base", None, "knot", knot, gap, limit, text))
        if self._self is not None:
            hit = self._self.check(p)
            if hit is not None:
                knot, gap = hit
                limit = self._self.clearance
                where = f"{gap:.4g} m from the upper arm (links 2-4) at knot {knot}, limit {limit:.4g} m"
                text = f"self: the forearm, wrist or hand comes {where}"
                violations.append(Violation("self", None, "knot", knot, gap, limit, text))
        return violations

    def brake(self, start: ChunkStart) -> TrajectoryChunk:
        """The fastest stop from ``start`` within the limits, ending at rest (``brake_knots`` knots).

        Raises:
            InputError: ``start`` is malformed, or absurdly far beyond the limits.
        """
        return self._brake.plan(*check_start(start, self.spec.joint_names))

    def filter(self, chunk: TrajectoryChunk, start: ChunkStart, joint_names: Sequence[str]) -> Verdict:
        """The chunk to send this tick: ``chunk`` itself when it verifies, else the brake from ``start``.

        Returns:
            ``Verdict(chunk, passed, violations)``; on failure the violations are the input's.

        Raises:
            InputError: ``start`` is malformed (see ``verify``).
        """
        state = check_start(start, self.spec.joint_names)
        violations = self._check(chunk, state, joint_names)
        if not violations:
            return Verdict(chunk, True, violations)
        return Verdict(self._brake.plan(*state), False, violations)

    def next_start(self, chunk: TrajectoryChunk, start: ChunkStart) -> ChunkStart:
        """The command state at ``chunk``'s first knot, where the next tick's chunk starts.

        Args:
            chunk: a chunk that was sent (a ``filter`` result), from ``start``.
            start: the state it started from.

        Returns:
            Position and velocity of the first knot, the acceleration at the end of the first
            segment and that segment's jerk.
        """
        q0, dq0, _, _ = check_start(start, self.spec.joint_names)
        P = np.asarray(chunk.positions, dtype=np.float64)[:1]
        V = np.asarray(chunk.velocities, dtype=np.float64)[:1]
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate extrema, unused here
            first = segments(q0, dq0, P, V, self.dt)
        return ChunkStart(P[0].copy(), V[0].copy(), first.a_end[0].copy(), first.jerk[0].copy())
