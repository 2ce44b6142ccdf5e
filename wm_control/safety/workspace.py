"""The floor check of the safety layer: no chunk may bring the arm or the hand down onto the surface
the robot stands on.

The joint limits do not keep the hand off the table: a planner far from the poses it was trained
from steers the TCP down into it, and the robot stops with a collision reflex (measured with the
shipped fr3-reach model on goal sequences, ``bench/ros_link.py``: the fingers against the table after
a goal 17 cm above it). Franka's own safety configuration offers Cartesian virtual walls for this;
``FloorGuard`` is the floor among them, checked on the command before it is sent.

The arm is approximated by spheres: one of ``LINK_RADIUS`` at the origins of joint frames 4 to 7 and
of the flange, and, in the TCP frame, the fingertips and the hand's two outer corners. A knot fails
when its lowest sphere bottom lies below ``height + clearance`` and below the start's own lowest
point (a command that is already too low may still rise, never sink further). Only the knots are
checked (20 ms apart); the clearance covers the interpolation between them and the brake's travel.
"""

from __future__ import annotations

import numpy as np

from wm_control.kinematics import joint_frames
from wm_control.robot import RobotSpec

__all__ = ["FloorGuard", "LINK_RADIUS"]

# Radius of the spheres around the wrist joints and the flange [m] (the FR3's links are about 0.12 m across).
LINK_RADIUS = 0.06
# Points on the hand in the TCP frame [m] and their radii: fingertips (opened to 4 cm each) and the
# hand's outer corners, where the fingers' base sits 4.5 cm above the TCP along the approach axis.
_HAND_POINTS = np.array([[0.0, 0.04, 0.0], [0.0, -0.04, 0.0], [0.0, 0.1, -0.045], [0.0, -0.1, -0.045]])
_HAND_RADII = np.array([0.01, 0.01, 0.02, 0.02])
_RISE_EPS = 1e-6  # [m]: a knot this close to the start's lowest point has not sunk


class FloorGuard:
    """Lowest point of the arm above a horizontal floor ``height`` [m] (base frame, z up), kept at
    least ``clearance`` [m] away.
    """

    def __init__(self, spec: RobotSpec, height: float, clearance: float) -> None:
        self.spec = spec
        self.height = float(height)
        self.clearance = float(clearance)

    @property
    def limit(self) -> float:
        """The lowest height [m] a sphere bottom may reach."""
        return self.height + self.clearance

    def lowest(self, q: np.ndarray) -> np.ndarray:
        """Lowest sphere bottom [m] for joint positions ``q`` ``(..., n)``: ``(...,)``."""
        frames = joint_frames(self.spec, q)
        links = frames[..., 3:, 2, 3] - LINK_RADIUS  # joints 4..7 and the flange
        tcp = frames[..., -1, :, :] @ self.spec.T_flange_tcp
        hand = np.einsum("...j,kj->...k", tcp[..., 2, :3], _HAND_POINTS) + tcp[..., 2, 3, None] - _HAND_RADII
        return np.minimum(links.min(axis=-1), hand.min(axis=-1))

    def check(self, positions: np.ndarray, start_q: np.ndarray) -> tuple[int, float] | None:
        """The first knot (1-based, as the verifier counts them) of ``positions`` ``(K, n)`` that
        sinks below the limit from ``start_q`` ``(n,)``, and its lowest point [m]; ``None``: all clear.
        """
        low = self.lowest(np.asarray(positions, dtype=np.float64))
        floor = min(self.limit, float(self.lowest(np.asarray(start_q, dtype=np.float64))) - _RISE_EPS)
        bad = np.flatnonzero(low < floor)
        return None if bad.size == 0 else (int(bad[0]) + 1, float(low[bad[0]]))
