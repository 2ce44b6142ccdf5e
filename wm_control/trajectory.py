"""Joint trajectory chunks and their cubic Hermite interpolation (the 1 kHz layer's contract).

A chunk is what one planner tick hands to the interpolating controller: knot positions and
velocities at ``dt, 2 dt, ..., N dt``, interpolated by cubic Hermite splines (ros2_control's
joint_trajectory_controller interpolates the same way when positions and velocities are given); after
the last knot its position is held at zero velocity until another chunk replaces it. Two forms:

- ``TrajectoryChunk``: the knots count from the moment the chunk becomes active, and the segment
  before the first knot starts from the layer's command state at that moment. This is what the
  training env sends.
- ``StampedChunk``: the chunk carries the time of its start state (a trajectory header stamp, in the
  clock of the layer that executes it) and that state; the knots lie at ``stamp + dt, stamp + 2 dt, ...``
  and the layer samples the spline at absolute times, so a chunk delivered late is evaluated where it
  would have been had it arrived on time. This is what a controller sends over a link with latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import NamedTuple

import numpy as np

from wm_control.errors import InputError, check_finite

__all__ = ["HermiteSample", "StampedChunk", "TrajectoryChunk", "sample_hermite"]


class TrajectoryChunk(NamedTuple):
    """Knots of a joint trajectory.

    positions: ``(N, n)`` [rad] at ``dt * (k + 1)`` after activation; velocities ``(N, n)`` [rad/s];
    dt: knot spacing [s].
    """

    positions: np.ndarray
    velocities: np.ndarray
    dt: float

    @property
    def duration(self) -> float:
        """Time from activation to the last knot [s]."""
        return self.dt * len(self.positions)

    def validate(self, dof: int) -> None:
        """Raise ``InputError`` on a malformed chunk (shapes, NaN, non-positive ``dt``)."""
        p, v = np.asarray(self.positions), np.asarray(self.velocities)
        if p.ndim != 2 or p.shape[1] != dof or len(p) == 0:
            raise InputError(f"chunk positions have shape {p.shape}; expected (N >= 1, {dof})")
        if v.shape != p.shape:
            raise InputError(f"chunk velocities have shape {v.shape}; expected {p.shape} like positions")
        if not (self.dt > 0 and np.isfinite(self.dt)):
            raise InputError(f"chunk dt={self.dt!r} must be a positive number of seconds")
        check_finite("chunk positions", p)
        check_finite("chunk velocities", v)


class HermiteSample(NamedTuple):
    """Interpolated command at sample times: positions, velocities, accelerations, each ``(m, n)``."""

    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray


def sample_hermite(q0: np.ndarray, dq0: np.ndarray, chunk: TrajectoryChunk, times: np.ndarray) -> HermiteSample:
    """Sample the cubic Hermite spline through ``(q0, dq0)`` at t=0 and the chunk's knots.

    Args:
        q0, dq0: ``(n,)`` command state when the chunk becomes active [rad, rad/s].
        chunk: knots at ``dt, 2 dt, ...``.
        times: ``(m,)`` sample times after activation [s], ``>= 0``. After the last knot the
            spline holds the last position at zero velocity (joint_trajectory_controller behaviour).

    Returns:
        ``HermiteSample`` with arrays of shape ``(m, n)``.
    """
    times = np.asarray(times, dtype=np.float64)
    dt = chunk.dt
    kq = np.concatenate([q0[None], chunk.positions], axis=0)
    kv = np.concatenate([dq0[None], chunk.velocities], axis=0)
    n_seg = len(chunk.positions)
    seg = np.clip(np.floor(times / dt).astype(np.int64), 0, n_seg - 1)
    s = np.clip(times / dt - seg, 0.0, 1.0)[:, None]
    p0, p1 = kq[seg], kq[seg + 1]
    m0, m1 = kv[seg] * dt, kv[seg + 1] * dt
    s2, s3 = s * s, s * s * s
    q = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0 + (3 * s2 - 2 * s3) * p1 + (s3 - s2) * m1
    dq = ((6 * s2 - 6 * s) * (p0 - p1) + (3 * s2 - 4 * s + 1) * m0 + (3 * s2 - 2 * s) * m1) / dt
    ddq = ((12 * s - 6) * (p0 - p1) + (6 * s - 4) * m0 + (6 * s - 2) * m1) / (dt * dt)
    after = times > chunk.duration
    if after.any():
        q[after] = kq[-1]
        dq[after] = 0.0
        ddq[after] = 0.0
    return HermiteSample(q, dq, ddq)


@dataclass(frozen=True, eq=False)
class StampedChunk:
    """A trajectory chunk with the time and the command state it starts from (a JTC header stamp).

    The controller stamps the chunk of a control tick with the time of the command state the chunk
    generator started from (the start of the tick, in the clock of the layer that executes the chunk)
    and includes that state. The spline runs from ``(start_q, start_dq)`` at ``stamp`` through the
    knots at ``stamp + dt, stamp + 2 dt, ..., stamp + duration``; after the last knot its position is
    held at zero velocity. Consecutive chunks of a generator pass through the same state at the later
    one's stamp (a chunk starts from the previous chunk's first knot).

    The arrays are copied into read-only float64 arrays, so a stamped chunk cannot change after it was
    validated.

    Attributes:
        stamp: time of the start state [s], in the executing layer's clock.
        start_q: ``(n,)`` commanded positions at ``stamp`` [rad].
        start_dq: ``(n,)`` commanded velocities at ``stamp`` [rad/s].
        chunk: the knots, ``(K, n)`` positions [rad] and velocities [rad/s], spaced ``dt`` [s].

    Raises:
        InputError: the stamp is not a finite number, a start array is not ``(n,)`` or not finite, or the
            chunk is malformed for ``n`` joints (the message names the field).
    """

    stamp: float
    start_q: np.ndarray
    start_dq: np.ndarray
    chunk: TrajectoryChunk

    def __post_init__(self) -> None:
        stamp = self.stamp
        if isinstance(stamp, bool) or not isinstance(stamp, Real) or not np.isfinite(float(stamp)):
            raise InputError(f"StampedChunk.stamp={stamp!r} must be a finite time in seconds")
        q = _frozen_array("StampedChunk.start_q", self.start_q)
        if q.ndim != 1 or q.size == 0:
            raise InputError(f"StampedChunk.start_q has shape {q.shape}; expected (n >= 1,)")
        dq = _frozen_array("StampedChunk.start_dq", self.start_dq)
        if dq.shape != q.shape:
            raise InputError(f"StampedChunk.start_dq has shape {dq.shape}; expected {q.shape} like start_q")
        check_finite("StampedChunk.start_q", q)
        check_finite("StampedChunk.start_dq", dq)
        c = self.chunk
        knots = TrajectoryChunk(
            _frozen_array("chunk positions", c.positions), _frozen_array("chunk velocities", c.velocities), c.dt
        )
        knots.validate(q.size)
        knots = knots._replace(dt=float(c.dt))
        object.__setattr__(self, "stamp", float(stamp))
        object.__setattr__(self, "start_q", q)
        object.__setattr__(self, "start_dq", dq)
        object.__setattr__(self, "chunk", knots)

    @property
    def duration(self) -> float:
        """Time from the stamp to the last knot [s]: ``K dt``."""
        return self.chunk.duration

    @property
    def end(self) -> float:
        """Time of the last knot [s]: ``stamp + duration``; the last position is held after it."""
        return self.stamp + self.duration

    def sample(self, times: np.ndarray) -> HermiteSample:
        """Sample the spline at absolute times.

        Args:
            times: ``(m,)`` sample times [s] in the executing layer's clock, each ``>= stamp``.

        Returns:
            ``HermiteSample`` with arrays of shape ``(m, n)``; after ``end``, the last knot's position at
            zero velocity and acceleration.

        Raises:
            InputError: ``times`` is not 1-D, not finite, or has a time before the stamp (the spline is
                not defined there: the chunk says nothing about the command before its start state).
        """
        t = np.asarray(times, dtype=np.float64)
        if t.ndim != 1:
            raise InputError(f"StampedChunk.sample times has shape {t.shape}; expected (m,)")
        check_finite("StampedChunk.sample times", t)
        early = np.flatnonzero(t < self.stamp)
        if early.size:
            i = int(early[0])
            raise InputError(f"StampedChunk.sample times[{i}]={float(t[i])!r} s is before the stamp {self.stamp!r} s")
        return sample_hermite(self.start_q, self.start_dq, self.chunk, t - self.stamp)


def _frozen_array(name: str, value: np.ndarray) -> np.ndarray:
    """A read-only float64 copy of ``value``; ``InputError`` naming ``name`` if it is not numeric."""
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise InputError(f"{name} has dtype {a.dtype}; expected a real float array")
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out
