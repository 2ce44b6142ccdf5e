"""Joint trajectory chunks and their cubic Hermite interpolation (the 1 kHz layer's contract).

A chunk is what one planner tick hands to the interpolating controller: knot positions and
velocities at ``dt, 2 dt, ..., N dt`` after the moment it becomes active. The segment before the
first knot starts from the controller's current command state. This is the semantics of ros2_control's
joint_trajectory_controller (cubic splines when positions and velocities are given; the last point is
held once the trajectory ends) and of our MuJoCo loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wm_control.errors import InputError, check_finite

__all__ = ["HermiteSample", "TrajectoryChunk", "sample_hermite"]


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
