"""Cubic Hermite segments of a chunk, in closed form: what the 1 kHz layer interpolates.

The segment ``i`` (``0 <= i < K``) runs from knot ``i`` at ``i dt`` to knot ``i + 1`` at
``(i + 1) dt``; knot 0 is the chunk's start, knot ``k + 1`` is the chunk's row ``k``. With
``s = (t - i dt) / dt`` in [0, 1], positions ``p0, p1`` [rad] and velocity tangents ``m = v dt``
[rad], the segment is ``q(s) = p0 + m0 s + c2 s^2 + c3 s^3`` (the formula of
``wm_control.trajectory.sample_hermite``, expanded), so its velocity is quadratic, its acceleration
linear and its jerk constant in time.

``pieces`` cuts each segment into ``S`` equal pieces and gives the position and velocity range of
each: the position-dependent velocity bound can be checked per piece (the velocity's extremes
against the bound's worst value over the piece's positions), which is sound and, with pieces of a
few milliseconds, tight, as the velocity and position of a piece lie close together in time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Pieces", "Segments", "pieces", "segments"]


class Segments(NamedTuple):
    """Closed-form description of the ``K`` segments of a chunk, each array ``(K, n)``.

    Attributes:
        q_low, q_high: lowest and highest position inside each segment [rad], endpoints included.
        v_low, v_high: lowest and highest velocity inside each segment [rad/s].
        a_start, a_end: acceleration at the start and end of each segment [rad/s^2].
        jerk: the segment's constant jerk [rad/s^3].
        coefficients: ``(p0, m0, c2, c3)`` of ``q(s)`` [rad].
        turns: ``(r1, q1, r2, q2, sv, vv)``: the parameters ``s`` in [0, 1] of the position's
            stationary points and their positions [rad], of the velocity's vertex and its velocity
            [rad/s] (an ``s`` outside the segment is clipped to an endpoint).
    """

    q_low: np.ndarray
    q_high: np.ndarray
    v_low: np.ndarray
    v_high: np.ndarray
    a_start: np.ndarray
    a_end: np.ndarray
    jerk: np.ndarray
    coefficients: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    turns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Pieces(NamedTuple):
    """Position [rad] and velocity [rad/s] ranges of ``S`` equal pieces of each segment, ``(S, K, n)``."""

    q_low: np.ndarray
    q_high: np.ndarray
    v_low: np.ndarray
    v_high: np.ndarray


def _clip01(s: np.ndarray) -> np.ndarray:
    # fmin / fmax drop NaN (a 0 / 0 of a degenerate segment) and clip inf. An s outside [0, 1] is
    # an extremum outside the segment; clipped, it evaluates an endpoint, already a candidate. Any
    # s in [0, 1] evaluates a point of the segment, so a candidate never reports an extremum the
    # command does not reach.
    return np.fmin(np.fmax(s, 0.0), 1.0)


def segments(q0: np.ndarray, dq0: np.ndarray, positions: np.ndarray, velocities: np.ndarray, dt: float) -> Segments:
    """Extrema, accelerations and jerks of the cubic Hermite spline through a start and a chunk.

    Args:
        q0, dq0: ``(n,)`` start position [rad] and velocity [rad/s].
        positions, velocities: ``(K, n)`` knots [rad, rad/s] at ``dt, 2 dt, ..., K dt``.
        dt: knot spacing [s].

    Returns:
        ``Segments``. Extrema are exact up to rounding: the interior extremum of the position is a
        root of the quadratic velocity, that of the velocity the vertex of the parabola. Huge inputs
        can overflow to inf or NaN (call under ``np.errstate``); callers treat a NaN comparison as a
        violation.
    """
    K, n = positions.shape
    kq = np.empty((K + 1, n))
    kv = np.empty((K + 1, n))
    kq[0], kq[1:], kv[0], kv[1:] = q0, positions, dq0, velocities
    p0, p1 = kq[:-1], kq[1:]
    m0, m1 = kv[:-1] * dt, kv[1:] * dt
    d = p1 - p0
    c2 = 3.0 * d - 2.0 * m0 - m1
    c3 = m0 + m1 - 2.0 * d

    # Position extrema: roots of q'(s) = 3 c3 s^2 + 2 c2 s + m0, by the cancellation-free formula.
    qa, qb = 3.0 * c3, 2.0 * c2
    w = -0.5 * (qb + np.copysign(np.sqrt(np.maximum(qb * qb - 4.0 * qa * m0, 0.0)), qb))
    r1, r2 = _clip01(w / qa), _clip01(m0 / w)
    q1 = p0 + r1 * (m0 + r1 * (c2 + r1 * c3))
    q2 = p0 + r2 * (m0 + r2 * (c2 + r2 * c3))
    q_high = np.maximum(np.maximum(p0, p1), np.maximum(q1, q2))
    q_low = np.minimum(np.minimum(p0, p1), np.minimum(q1, q2))
    # Velocity extremum: the vertex of the parabola, s = -c2 / (3 c3).
    sv = _clip01(-c2 / qa)
    vv = (m0 + sv * (qb + sv * qa)) / dt
    v0, v1 = kv[:-1], kv[1:]
    v_high = np.maximum(np.maximum(v0, v1), vv)
    v_low = np.minimum(np.minimum(v0, v1), vv)

    dt2 = dt * dt
    a_start = qb / dt2
    a_end = (qb + 6.0 * c3) / dt2
    jerk = 6.0 * c3 / (dt2 * dt)
    return Segments(q_low, q_high, v_low, v_high, a_start, a_end, jerk, (p0, m0, c2, c3), (r1, q1, r2, q2, sv, vv))


def pieces(seg: Segments, count: int, dt: float) -> Pieces:
    """Position and velocity ranges of ``count`` equal pieces of every segment.

    Args:
        seg: the segments (``segments``).
        count: ``S``, pieces per segment.
        dt: knot spacing [s].

    Returns:
        ``Pieces`` with arrays ``(S, K, n)``: the values at the piece boundaries, and each interior
        extremum in the piece it lies in.
    """
    p0, m0, c2, c3 = seg.coefficients
    r1, q1, r2, q2, sv, vv = seg.turns
    s = np.linspace(0.0, 1.0, count + 1)[:, None, None]
    Q = p0 + s * (m0 + s * (c2 + s * c3))
    V = (m0 + s * (2.0 * c2 + s * (3.0 * c3))) / dt
    piece = np.arange(count)[:, None, None]

    def inside(x: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(x * count), count - 1)[None] == piece

    in1, in2, inv = inside(r1), inside(r2), inside(sv)
    q_high = np.maximum(np.maximum(Q[:-1], Q[1:]), np.maximum(np.where(in1, q1, -np.inf), np.where(in2, q2, -np.inf)))
    q_low = np.minimum(np.minimum(Q[:-1], Q[1:]), np.minimum(np.where(in1, q1, np.inf), np.where(in2, q2, np.inf)))
    v_high = np.maximum(np.maximum(V[:-1], V[1:]), np.where(inv, vv, -np.inf))
    v_low = np.minimum(np.minimum(V[:-1], V[1:]), np.where(inv, vv, np.inf))
    return Pieces(q_low, q_high, v_low, v_high)
