"""The workspace checks of the safety layer: no chunk may bring the arm or the hand down onto the
surface the robot stands on (``FloorGuard``), the wrist and the hand against the robot's own base
column (``BaseGuard``), or the forearm, the wrist and the hand against the upper arm (``SelfGuard``).

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

The base column is link 0 and link 1 around joint 1's axis: a vertical capsule from the floor to
``BASE_TOP`` of radius ``BASE_RADIUS``, enclosing their collision capsules in ``sim/assets/fr3.xml``,
and link 0's foot plate as a horizontal capsule along x of the same radius.
The forearm (link 5), the wrist (links 6 and 7) and the hand, as spheres, may not come closer to it
than the clearance, nor closer than they already are. The FR3 itself stops with a collision reflex
when they touch (measured with the shipped fr3-reach model on goal sequences, ``bench/ros_link.py``:
link 5 and link 6 against link 0, link 5 against link 1, from poses the model was not trained from).

The upper arm is links 2 to 4, each as the capsules of its collision geoms in ``sim/assets/fr3.xml``,
moving with its joint frame. The same spheres on the forearm, the wrist and the hand are kept off the
capsules of the links the sim (and the robot) can bring them against: link 5 against link 2, link 6
against links 2 and 3, link 7 and the hand against links 2 to 4 (closer pairs are neighbours whose
housings touch by construction, excluded in the sim too). With the base and floor checks on, the
shipped fr3-reach model still stopped with a link 2 against link 5 reflex on goal sequences
(``bench/ros_link.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wm_control.kinematics import joint_frames
from wm_control.robot import RobotSpec

__all__ = ["BASE_RADIUS", "BASE_TOP", "BaseGuard", "FloorGuard", "LINK_RADIUS", "SelfGuard"]

# Radius of the spheres around the wrist joints and the flange [m] (the FR3's links are about 0.12 m across).
LINK_RADIUS = 0.06
# Points on the hand in the TCP frame [m] and their radii: fingertips (opened to 4 cm each) and the
# hand's outer corners, where the fingers' base sits 4.5 cm above the TCP along the approach axis.
_HAND_POINTS = np.array([[0.0, 0.04, 0.0], [0.0, -0.04, 0.0], [0.0, 0.1, -0.045], [0.0, -0.1, -0.045]])
_HAND_RADII = np.array([0.01, 0.01, 0.02, 0.02])
_RISE_EPS = 1e-6  # [m]: a knot this close to the start's lowest point has not sunk
# The base column [m]: axis x = BASE_X, y = 0, from z = 0 to BASE_TOP (joint 2's height is 0.333 m; link
# 1's capsule ends at 0.273 m), radius enclosing link 0's capsule (x = -0.04, r = 0.075) and link 1's
# (x = 0, r = 0.07).
BASE_X = -0.02
BASE_TOP = 0.28
BASE_RADIUS = 0.095
# Link 0's foot plate (a box 0.22 x 0.18 x 0.06 m centred at x = -0.05): a capsule along x at mid-height.
_PLATE_X = (-0.16, 0.06)
_PLATE_Z = 0.03
# Spheres on the moving links, (frame index into joint_frames, centre in that frame [m], radius [m]):
# link 5's forearm capsule (z from -0.25 to -0.11) and its side bump, link 6's two capsules, link 7's.
_ARM_SPHERES = (
    (4, (0.0, 0.0, -0.25), 0.055),
    (4, (0.0, 0.0, -0.18), 0.055),
    (4, (0.0, 0.0, -0.11), 0.055),
    (4, (0.0, 0.08, -0.065), 0.035),
    (5, (0.0, 0.0, -0.01), 0.05),
    (5, (0.06, 0.0, 0.0), 0.045),
    (6, (0.0, 0.0, 0.055), 0.045),
)
# The hand in the TCP frame: its body (a sphere 6 cm behind the TCP) and the floor check's points.
_HAND_BODY = np.vstack([[[0.0, 0.0, -0.06]], _HAND_POINTS])
_HAND_BODY_RADII = np.concatenate([[0.05], _HAND_RADII])
_HAND_LINK = 8  # the link number the hand's spheres count as
# The upper arm's capsules, (link, end points in the link's joint frame [m], radius [m]): the collision
# geoms of links 2, 3 and 4 in sim/assets/fr3.xml (joint frame index = link - 1).
_UPPER_ARM = (
    (2, ((0.0, 0.0, -0.07), (0.0, 0.0, 0.07)), 0.065),
    (2, ((0.0, -0.05, 0.0), (0.0, -0.16, 0.0)), 0.06),
    (3, ((0.0, 0.0, -0.14), (0.0, 0.0, -0.07)), 0.06),
    (3, ((0.0825, 0.0, -0.06), (0.0825, 0.0, 0.02)), 0.055),
    (4, ((-0.0825, 0.07, 0.0), (-0.0825, 0.16, 0.0)), 0.055),
    (4, ((0.0, 0.03, 0.0), (-0.05, 0.1, 0.0)), 0.055),
)


def _moving_spheres(spec: RobotSpec, frames: np.ndarray) -> np.ndarray:
    """Centres [m] of the forearm, wrist and hand spheres (``_ARM_SPHERES`` then ``_HAND_BODY``) for
    the joint frames ``joint_frames(spec, q)`` ``(..., n + 1, 4, 4)``: ``(..., S, 3)``, base frame.
    """
    index = np.array([f for f, _, _ in _ARM_SPHERES])
    centre = np.array([np.append(c, 1.0) for _, c, _ in _ARM_SPHERES])  # homogeneous
    arm = np.einsum("...kij,kj->...ki", frames[..., index, :3, :], centre)
    tcp = frames[..., -1, :, :] @ spec.T_flange_tcp
    hand = np.einsum("...ij,kj->...ki", tcp[..., :3, :3], _HAND_BODY) + tcp[..., None, :3, 3]
    return np.concatenate([arm, hand], axis=-2)


_MOVING_RADII = np.concatenate([[r for _, _, r in _ARM_SPHERES], _HAND_BODY_RADII])
_MOVING_LINKS = np.array([f + 1 for f, _, _ in _ARM_SPHERES] + [_HAND_LINK] * len(_HAND_BODY))


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


class BaseGuard:
    """Distance [m] between the forearm, wrist and hand and the base column (see the module
    docstring), kept at least ``clearance`` [m].
    """

    def __init__(self, spec: RobotSpec, clearance: float) -> None:
        self.spec = spec
        self.clearance = float(clearance)

    def gap(self, q: np.ndarray) -> np.ndarray:
        """Smallest surface distance [m] of any sphere to the base column for ``q`` ``(..., n)``: ``(...,)``."""
        centres = _moving_spheres(self.spec, joint_frames(self.spec, q))
        z = np.clip(centres[..., 2], 0.0, BASE_TOP)
        column = np.stack([np.full_like(z, BASE_X), np.zeros_like(z), z], axis=-1)
        x = np.clip(centres[..., 0], *_PLATE_X)
        plate = np.stack([x, np.zeros_like(x), np.full_like(x, _PLATE_Z)], axis=-1)
        axis_distance = np.minimum(np.linalg.norm(centres - column, axis=-1), np.linalg.norm(centres - plate, axis=-1))
        return (axis_distance - _MOVING_RADII - BASE_RADIUS).min(axis=-1)

    def check(self, positions: np.ndarray, start_q: np.ndarray) -> tuple[int, float] | None:
        """The first knot (1-based) of ``positions`` ``(K, n)`` closer to the base column than the
        clearance and than ``start_q`` ``(n,)`` is, and its gap [m]; ``None``: all clear.
        """
        return _first_closing(self.gap, self.clearance, positions, start_q)


class SelfGuard:
    """Distance [m] between the forearm, wrist and hand and the upper arm (links 2-4; see the module
    docstring), kept at least ``clearance`` [m].
    """

    def __init__(self, spec: RobotSpec, clearance: float) -> None:
        self.spec = spec
        self.clearance = float(clearance)
        self._frame = np.array([link - 1 for link, _, _ in _UPPER_ARM])
        ends = np.array([[np.append(p, 1.0) for p in ends] for _, ends, _ in _UPPER_ARM])  # (C, 2, 4)
        self._start, self._end = ends[:, 0], ends[:, 1]
        self._radius = np.array([r for _, _, r in _UPPER_ARM])
        upper = np.array([link for link, _, _ in _UPPER_ARM])
        self._pairs = _MOVING_LINKS[:, None] - upper[None, :] >= 3  # (S, C): pairs that can touch

    def gap(self, q: np.ndarray) -> np.ndarray:
        """Smallest surface distance [m] of a sphere to a capsule it can touch for ``q`` ``(..., n)``: ``(...,)``."""
        all_frames = joint_frames(self.spec, q)
        frames = all_frames[..., self._frame, :3, :]  # (..., C, 3, 4)
        a = np.einsum("...cij,cj->...ci", frames, self._start)
        b = np.einsum("...cij,cj->...ci", frames, self._end)
        centres = _moving_spheres(self.spec, all_frames)[..., :, None, :]  # (..., S, 1, 3)
        ab = (b - a)[..., None, :, :]
        t = np.clip(np.sum((centres - a[..., None, :, :]) * ab, axis=-1) / np.sum(ab * ab, axis=-1), 0.0, 1.0)
        nearest = a[..., None, :, :] + t[..., None] * ab
        surface = np.linalg.norm(centres - nearest, axis=-1) - _MOVING_RADII[:, None] - self._radius
        return np.where(self._pairs, surface, np.inf).min(axis=(-2, -1))

    def check(self, positions: np.ndarray, start_q: np.ndarray) -> tuple[int, float] | None:
        """The first knot (1-based) of ``positions`` ``(K, n)`` closer to the upper arm than the
        clearance and than ``start_q`` ``(n,)`` is, and its gap [m]; ``None``: all clear.
        """
        return _first_closing(self.gap, self.clearance, positions, start_q)


def _first_closing(
    gap: Callable[[np.ndarray], np.ndarray], clearance: float, positions: np.ndarray, start_q: np.ndarray
) -> tuple[int, float] | None:
    """The first knot (1-based) whose ``gap`` is below ``clearance`` and below the start's own (a pose
    already too close may move away, never closer), and that gap; ``None``: all clear.
    """
    values = gap(np.asarray(positions, dtype=np.float64))
    limit = min(clearance, float(gap(np.asarray(start_q, dtype=np.float64))) - _RISE_EPS)
    bad = np.flatnonzero(values < limit)
    return None if bad.size == 0 else (int(bad[0]) + 1, float(values[bad[0]]))
