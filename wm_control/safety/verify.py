"""The checks: does the 1 kHz command interpolated through a chunk stay inside the limits?

The 1 kHz layer interpolates the start state and the chunk's knots with cubic Hermite splines
(``wm_control.safety.spline``) and the robot differentiates what it receives over its servo period
``h``. On every segment and at every knot, with ``A = acceleration_fraction * ddq_max`` and
``J = jerk_fraction * dddq_max``:

- position: the segment's exact extrema lie in ``[q_min + position_margin, q_max - position_margin]``;
- velocity: the exact velocity extrema of each segment lie in the position-dependent bounds
  ``velocity_bounds(spec, q)`` narrowed by ``velocity_margin``, each bound taken at the worse end of
  the segment's exact position range (the bounds are monotone in ``q``, so that is their worst value
  there). Pairing the fastest moment with the tightest bound is pessimistic over 20 ms, so a
  segment that fails is checked again in quarters, the same way (``spline.pieces``). Either way the
  velocity is inside the bound at its own position at every moment, which covers the robot's finite
  difference over ``h`` too (a mean velocity over a step, moving one way, checked against the bound
  at the step's first position) whatever the phase of its ticks;
- acceleration: both ends of each segment (it is linear in between) within ``A``;
- jerk inside a segment (constant) within ``J``;
- jerk across each knot, the start included (acceleration and jerk before it: ``start.ddq`` and
  ``start.dddq``) and the end (after it the layer holds the last knot: zero acceleration and jerk):
  ``|a_after - a_before| / h + max(|j_before|, |j_after|) <= J``. The step happens within one servo
  period; the jerk term is there because a finite difference straddling a knot mixes the step with
  the neighbouring segments' jerks (second differences of the velocity give ``step / h`` plus their
  mean, third differences of the position half the step plus a weighted mean), so this bound holds
  for both;
- rest: the last knot's velocity is zero, since the layer holds it at zero velocity when no new
  chunk arrives (a velocity step there would be an unbounded acceleration), reported as ``velocity``.

Before these, the chunk's form: joint names equal to the robot's (``names``); float64 arrays of
shape ``(K >= 1, n)`` and the layer's ``dt`` (``shape``); every value finite (``finite``). A chunk that
fails one of these is not checked further. Limits are met up to ``SafetyConfig.tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from wm_control.robot import RobotSpec, velocity_bounds
from wm_control.safety.config import SafetyConfig
from wm_control.safety.spline import Pieces, Segments, pieces, segments
from wm_control.trajectory import TrajectoryChunk

__all__ = ["KINDS", "ChunkVerifier", "Violation"]

#: Every ``Violation.kind``, in the order ``verify`` reports them.
KINDS = ("names", "shape", "finite", "position", "velocity", "acceleration", "jerk", "floor", "base", "self")
# Pieces per segment for the velocity check (``wm_control.safety.spline``): 5 ms at dt = 20 ms,
# where the check's pessimism (pairing a piece's fastest velocity with its tightest bound) costs the
# generator's chunks under a tenth of their velocity room.
_PIECES = 4
_UNITS = {"position": "rad", "velocity": "rad/s", "acceleration": "rad/s^2", "jerk": "rad/s^3"}


class Violation(NamedTuple):
    """One limit a chunk breaks, for one joint: the earliest place it does.

    Attributes:
        kind: one of ``KINDS``: names, shape, finite, position, velocity, acceleration, jerk, floor, base,
            self (the last three: ``wm_control.safety.workspace``, reported by the layer).
        joint: the joint's name; ``None`` when the violation is not one joint's (names, shape).
        where: ``"segment"``, ``"knot"`` or ``"chunk"`` (names, shape).
        at: segment ``i`` runs from ``i dt`` to ``(i + 1) dt`` after the start; knot ``i`` is at
            ``i dt`` (knot 0 is the start, knot ``k + 1`` the chunk's row ``k``); -1 for ``"chunk"``.
        value: the offending value in the limit's unit (NaN where there is no number).
        limit: the limit it breaks, margins and fractions applied (NaN where there is no number).
        message: one line saying all of the above.
    """

    kind: str
    joint: str | None
    where: str
    at: int
    value: float
    limit: float
    message: str


def _chunk_violation(kind: str, value: float, limit: float, message: str) -> list[Violation]:
    return [Violation(kind, None, "chunk", -1, value, limit, f"{kind}: {message}")]


class ChunkVerifier:
    """Checks chunks against one robot's limits at one control and one servo period.

    Args:
        spec: the robot (names, limit tables, velocity curve).
        config: margins, fractions and tolerance.
        dt: knot spacing [s] every chunk must have.
        servo_period: period [s] of the layer that interpolates the chunks (it turns acceleration
            steps into jerk).
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, dt: float, servo_period: float) -> None:
        lim = spec.limits
        tol = config.tolerance
        self.spec = spec
        self.config = config
        self.dt = float(dt)
        self.servo_period = float(servo_period)
        self.names = tuple(spec.joint_names)
        self.q_low = lim.q_min + config.position_margin
        self.q_high = lim.q_max - config.position_margin
        self.max_acceleration = config.acceleration_fraction * lim.ddq_max
        self.max_jerk = config.jerk_fraction * lim.dddq_max
        # Limits with the rounding allowance added, computed once: the checks run every tick.
        slack_q = tol * (lim.q_max - lim.q_min)
        self._q_low_tol, self._q_high_tol = self.q_low - slack_q, self.q_high + slack_q
        self._v_slack = tol * lim.dq_max
        self._a_tol = self.max_acceleration + tol * lim.ddq_max
        self._j_tol = self.max_jerk + tol * lim.dddq_max

    def verify(
        self, chunk: TrajectoryChunk, start: tuple[np.ndarray, ...], joint_names: Sequence[str]
    ) -> list[Violation]:
        """Check one chunk from a start state (already validated: four float64 arrays ``(n,)``).

        Returns:
            The violations, at most one per kind and joint (the earliest), in ``KINDS`` order, then
            joint order; empty when the chunk is safe to send.
        """
        n = len(self.names)
        try:
            names = tuple(joint_names)
        except TypeError:
            names = (repr(joint_names),)
        if names != self.names:
            return _chunk_violation(
                "names", math.nan, math.nan, f"joint names {names!r} differ from the robot's {self.names!r}"
            )
        P, V, dt = (getattr(chunk, f, None) for f in ("positions", "velocities", "dt"))
        # What is verified is what gets sent: float64 arrays, not something that converts to them.
        if not (isinstance(P, np.ndarray) and isinstance(V, np.ndarray) and P.dtype == V.dtype == np.float64):
            kinds = f"{type(P).__name__} {getattr(P, 'dtype', '')}, {type(V).__name__} {getattr(V, 'dtype', '')}"
            return _chunk_violation(
                "shape", math.nan, math.nan, f"chunk positions, velocities are {kinds}; expected float64 arrays"
            )
        if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] != n or V.shape != P.shape:
            msg = f"chunk shapes {P.shape}, {V.shape}; expected two equal (K >= 1, {n})"
            return _chunk_violation("shape", math.nan, math.nan, msg)
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
            return _chunk_violation("shape", math.nan, self.dt, f"chunk dt = {dt!r}; expected {self.dt!r} s")
        if not abs(float(dt) - self.dt) <= 1e-9 * self.dt:  # NaN fails too
            return _chunk_violation("shape", float(dt), self.dt, f"chunk dt = {dt!r} s; the layer's is {self.dt!r} s")
        if not (np.isfinite(P).all() and np.isfinite(V).all()):
            return self._finite(P, V)
        q0, dq0, ddq0, dddq0 = start
        with np.errstate(all="ignore"):
            return self._limits(q0, dq0, ddq0, dddq0, P, V)

    def _finite(self, P: np.ndarray, V: np.ndarray) -> list[Violation]:
        out = []
        bad = ~(np.isfinite(P) & np.isfinite(V))
        for j in np.flatnonzero(bad.any(axis=0)):
            k = int(np.argmax(bad[:, j]))
            value = float(P[k, j]) if not np.isfinite(P[k, j]) else float(V[k, j])
            name = self.names[j]
            msg = f"finite: {name} at knot {k + 1} (chunk row {k}) is {value!r}"
            out.append(Violation("finite", name, "knot", k + 1, value, math.nan, msg))
        return out

    def _limits(
        self,
        q0: np.ndarray,
        dq0: np.ndarray,
        ddq0: np.ndarray,
        dddq0: np.ndarray,
        P: np.ndarray,
        V: np.ndarray,
    ) -> list[Violation]:
        seg = segments(q0, dq0, P, V, self.dt)
        # One comparison per limit, written so that NaN (overflow of huge inputs) counts as outside.
        pos_bad = ~((seg.q_high <= self._q_high_tol) & (seg.q_low >= self._q_low_tol))

        K = len(P)
        # Velocity: first whole segments, which is stricter; only if one fails, pieces of it.
        ranges: Segments | Pieces = seg
        v_lo, v_hi, vel_bad = self._velocity(seg)
        if vel_bad.any():
            ranges = pieces(seg, _PIECES, self.dt)
            v_lo, v_hi, piece_bad = self._velocity(ranges)
            vel_bad = np.any(piece_bad, axis=0)
        rest_bad = ~(np.abs(V[-1]) <= self._v_slack)

        a_worst = np.where(np.abs(seg.a_end) > np.abs(seg.a_start), seg.a_end, seg.a_start)
        acc_bad = ~(np.abs(a_worst) <= self._a_tol)

        seg_jerk_bad = ~(np.abs(seg.jerk) <= self._j_tol)
        zero = np.zeros((1, len(q0)))
        a_before = np.concatenate([ddq0[None], seg.a_end])
        a_after = np.concatenate([seg.a_start, zero])
        abs_jerk = np.abs(seg.jerk)
        j_before = np.concatenate([np.abs(dddq0)[None], abs_jerk])
        j_after = np.concatenate([abs_jerk, zero])
        knot_jerk = np.abs(a_after - a_before) / self.servo_period + np.maximum(j_before, j_after)
        knot_jerk_bad = ~(knot_jerk <= self._j_tol)

        any_bad = pos_bad.any() or vel_bad.any() or rest_bad.any() or acc_bad.any()
        if not (any_bad or seg_jerk_bad.any() or knot_jerk_bad.any()):
            return []
        out: list[Violation] = []
        pos_value = np.where(seg.q_high > self._q_high_tol, seg.q_high, seg.q_low)
        pos_limit = np.where(seg.q_high > self._q_high_tol, self.q_high, self.q_low)
        self._report(out, "position", "segment", pos_bad, pos_value, pos_limit, "outside")
        # Per segment, the piece (or the segment itself) that exceeds its bound the most.
        v_high, v_low = ranges.v_high, ranges.v_low
        if v_high.ndim == 2:
            v_high, v_low, v_hi, v_lo = v_high[None], v_low[None], v_hi[None], v_lo[None]
        over, under = v_high - v_hi, v_lo - v_low
        worst = np.argmax(np.fmax(over, under), axis=0)[None]
        up = np.take_along_axis(over >= under, worst, axis=0)[0]
        v_value = np.where(up, np.take_along_axis(v_high, worst, 0)[0], np.take_along_axis(v_low, worst, 0)[0])
        v_limit = np.where(up, np.take_along_axis(v_hi, worst, 0)[0], np.take_along_axis(v_lo, worst, 0)[0])
        self._report(out, "velocity", "segment", vel_bad, v_value, v_limit)
        rest = np.zeros((K + 1, len(q0)), dtype=bool)
        rest[K] = rest_bad
        last_v = np.zeros_like(rest, dtype=np.float64)
        last_v[K] = V[-1]
        self._report(out, "velocity", "knot", rest, last_v, np.zeros_like(last_v), "at the chunk's end (held at rest)")
        acc_limit = np.copysign(np.broadcast_to(self.max_acceleration, a_worst.shape), a_worst)
        self._report(out, "acceleration", "segment", acc_bad, a_worst, acc_limit)
        jerk_limit = np.broadcast_to(self.max_jerk, seg.jerk.shape)
        self._report(out, "jerk", "segment", seg_jerk_bad, seg.jerk, jerk_limit)
        knot_limit = np.broadcast_to(self.max_jerk, knot_jerk.shape)
        note = "(acceleration step over one servo period)"
        self._report(out, "jerk", "knot", knot_jerk_bad, knot_jerk, knot_limit, note)
        order = {k: i for i, k in enumerate(KINDS)}
        out.sort(key=lambda v: (order[v.kind], self.names.index(v.joint or self.names[0])))
        return out

    def _velocity(self, ranges: Segments | Pieces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Velocity bounds ``(lower, upper)`` over each range's positions and where they are broken."""
        m = len(ranges.q_low)
        lo, hi = velocity_bounds(self.spec, np.concatenate([ranges.q_low, ranges.q_high]))
        margin = self.config.velocity_margin
        v_hi = np.minimum(hi[:m], hi[m:]) - margin
        v_lo = np.maximum(lo[:m], lo[m:]) + margin
        bad = ~((ranges.v_high <= v_hi + self._v_slack) & (ranges.v_low >= v_lo - self._v_slack))
        return v_lo, v_hi, bad

    def _report(
        self,
        out: list[Violation],
        kind: str,
        where: str,
        bad: np.ndarray,
        value: np.ndarray,
        limit: np.ndarray,
        note: str = "",
    ) -> None:
        """Append the earliest violation of each joint in ``bad`` ``(m, n)`` (rows: segments or knots)."""
        unit = _UNITS[kind]
        for j in np.flatnonzero(bad.any(axis=0)):
            i = int(np.argmax(bad[:, j]))
            more = int(bad[:, j].sum()) - 1
            name = self.names[j]
            v, lim = float(value[i, j]), float(limit[i, j])
            tail = f" ({more} more {where}s)" if more else ""
            text = f"{note} " if note else ""
            msg = f"{kind}: {name} at {where} {i} is {v:.6g} {unit}, {text}limit {lim:.6g} {unit}{tail}"
            out.append(Violation(kind, name, where, i, v, lim, msg))
