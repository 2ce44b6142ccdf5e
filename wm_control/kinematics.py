"""Forward kinematics and the geometric Jacobian of a ``RobotSpec`` (numpy, batched).

This is the reference the MJCF is tested against, and what a deployed controller uses to compute
the TCP position from measured joint angles (no simulator needed).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from wm_control.errors import InputError
from wm_control.robot import RobotSpec

__all__ = ["forward_kinematics", "joint_frames", "tcp_jacobian", "tcp_position", "transform_from_xyz_rpy"]


def transform_from_xyz_rpy(xyz: np.ndarray, rpy: np.ndarray) -> np.ndarray:
    """4x4 transform from a translation [m] and URDF roll-pitch-yaw [rad] (R = Rz Ry Rx)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    T = np.eye(4)
    T[:3, :3] = [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]
    T[:3, 3] = xyz
    return T


@lru_cache(maxsize=8)
def _fixed_transforms(spec: RobotSpec) -> np.ndarray:
    out = np.stack([transform_from_xyz_rpy(o[:3], o[3:]) for o in spec.joint_origins])
    out.setflags(write=False)
    return out


def _check_q(spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1:] != (spec.dof,):
        raise InputError(f"q has shape {q.shape}; expected (..., {spec.dof}) for robot {spec.name!r}")
    return q


def joint_frames(spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    """Poses in the base frame of every joint frame (after its rotation) and of the flange.

    Args:
        q: ``(..., n)`` joint angles [rad].

    Returns:
        ``(..., n + 1, 4, 4)``; entry ``i < n`` is joint ``i + 1``'s frame (its z axis is the joint
        axis), entry ``n`` is the flange.
    """
    q = _check_q(spec, q)
    fixed = _fixed_transforms(spec)
    batch = q.shape[:-1]
    n = spec.dof
    c, s = np.cos(q), np.sin(q)
    rot = np.zeros((*batch, n, 4, 4))
    rot[..., 0, 0] = c
    rot[..., 0, 1] = -s
    rot[..., 1, 0] = s
    rot[..., 1, 1] = c
    rot[..., 2, 2] = 1.0
    rot[..., 3, 3] = 1.0
    local = fixed[:n] @ rot  # parent -> joint i frame, after its rotation
    out = np.empty((*batch, n + 1, 4, 4))
    T = local[..., 0, :, :]
    out[..., 0, :, :] = T
    for i in range(1, n):
        T = T @ local[..., i, :, :]
        out[..., i, :, :] = T
    out[..., n, :, :] = T @ fixed[n]
    return out


def forward_kinematics(spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    """``T_base_tcp`` ``(..., 4, 4)`` for joint angles ``q`` ``(..., n)`` [rad]."""
    return joint_frames(spec, q)[..., -1, :, :] @ spec.T_flange_tcp


def tcp_position(spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    """TCP position [m] in the base frame, ``(..., 3)``."""
    return forward_kinematics(spec, q)[..., :3, 3]


def tcp_jacobian(spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    """Geometric Jacobian of the TCP in the base frame, ``(..., 6, n)``.

    Rows 0-2 map joint velocities [rad/s] to TCP linear velocity [m/s], rows 3-5 to angular
    velocity [rad/s].
    """
    frames = joint_frames(spec, q)
    p_tcp = (frames[..., -1, :, :] @ spec.T_flange_tcp)[..., :3, 3]
    z = frames[..., :-1, :3, 2]  # (..., n, 3)
    p = frames[..., :-1, :3, 3]
    lin = np.cross(z, p_tcp[..., None, :] - p)
    return np.concatenate([np.swapaxes(lin, -1, -2), np.swapaxes(z, -1, -2)], axis=-2)
