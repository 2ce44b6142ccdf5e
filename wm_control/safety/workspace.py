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

from typing import NamedTuple

import numpy as np

from wm_control.kinematics import joint_frames
from wm_control.robot import RobotSpec

__all__ = ["BASE_RADIUS", "BASE_TOP", "BaseGuard", "FloorGuard", "LINK_RADIUS", "Poses", "SelfGuard", "poses"]

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


class Poses(NamedTuple):
    """The kinematics the guards need for a stack of joint positions, computed once per chunk
    (``poses``): the joint frames ``joint_frames(spec, q)`` ``(m, n + 1, 4, 4)``, the TCP frames
    ``(m, 4, 4)`` and the centres of the forearm, wrist and hand spheres ``(m, S, 3)`` (base frame).
    """

    frames: np.ndarray
    tcp: np.ndarray
    spheres: np.ndarray


# The sphere centres on the links, homogeneous, and the joint frame each moves with.
_ARM_FRAME = np.array([f for f, _, _ in _ARM_SPHERES])
_ARM_CENTRES = np.array([(*c, 1.0) for _, c, _ in _ARM_SPHERES])


def poses(spec: RobotSpec, q: np.ndarray) -> Poses:
    """``Poses`` of joint positions ``q`` ``(m, n)`` [rad]."""
    frames = joint_frames(spec, np.asarray(q, dtype=np.float64))
    tcp = frames[:, -1] @ spec.T_flange_tcp
    arm = np.einsum("mkij,kj->mki", frames[:, _ARM_FRAME, :3, :], _ARM_CENTRES)
    hand = tcp[:, None, :3, :3] @ _HAND_BODY[None, :, :, None]
    spheres = np.concatenate([arm, hand[..., 0] + tcp[:, None, :3, 3]], axis=1)
    return Poses(frames, tcp, spheres)


def _stack(spec: RobotSpec, q: np.ndarray) -> tuple[Poses, tuple[int, ...]]:
    """``poses`` of ``q`` ``(..., n)`` flattened to ``(m, n)``, and the leading shape to restore."""
    q = np.asarray(q, dtype=np.float64)
    return poses(spec, q.reshape(-1, q.shape[-1])), q.shape[:-1]


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
        p, shape = _stack(self.spec, q)
        return self.lowest_of(p).reshape(shape)

    def lowest_of(self, p: Poses) -> np.ndarray:
        """Lowest sphere bottom [m] of each pose of ``p``: ``(m,)``."""
        links = p.frames[:, 3:, 2, 3] - LINK_RADIUS  # joints 4..7 and the flange
        hand = p.tcp[:, 2, :3] @ _HAND_POINTS.T + p.tcp[:, 2, 3, None] - _HAND_RADII
        return np.minimum(links.min(axis=-1), hand.min(axis=-1))

    def check(self, p: Poses) -> tuple[int, float] | None:
        """For ``p`` the ``poses`` of ``[start_q, *knots]``: the first knot (1-based, as the verifier
        counts them) that sinks below the limit from the start, and its lowest point [m]; ``None``:
        all clear.
        """
        return _first_closing(self.lowest_of(p), self.limit)


class BaseGuard:
    """Distance [m] between the forearm, wrist and hand and the base column (see the module
    docstring), kept at least ``clearance`` [m].
    """

    def __init__(self, spec: RobotSpec, clearance: float) -> None:
        self.spec = spec
        self.clearance = float(clearance)

    def gap(self, q: np.ndarray) -> np.ndarray:
        """Smallest surface distance [m] of any sphere to the base column for ``q`` ``(..., n)``: ``(...,)``."""
        p, shape = _stack(self.spec, q)
        return self.gap_of(p).reshape(shape)

    def gap_of(self, p: Poses) -> np.ndarray:
        """Smallest surface distance [m] of any sphere to the base column for each pose of ``p``: ``(m,)``."""
        c = p.spheres
        x, y, z = c[..., 0], c[..., 1], c[..., 2]
        column = (x - BASE_X) ** 2 + y**2 + (z - np.clip(z, 0.0, BASE_TOP)) ** 2
        plate = (x - np.clip(x, *_PLATE_X)) ** 2 + y**2 + (z - _PLATE_Z) ** 2
        return (np.sqrt(np.minimum(column, plate)) - _MOVING_RADII - BASE_RADIUS).min(axis=-1)

    def check(self, p: Poses) -> tuple[int, float] | None:
        """For ``p`` the ``poses`` of ``[start_q, *knots]``: the first knot (1-based) closer to the base
        column than the clearance and than the start is, and its gap [m]; ``None``: all clear.
        """
        return _first_closing(self.gap_of(p), self.clearance)


class SelfGuard:
    """Distance [m] between the forearm, wrist and hand and the upper arm (links 2-4; see the module
    docstring), kept at least ``clearance`` [m].
    """

    def __init__(self, spec: RobotSpec, clearance: float) -> None:
        self.spec = spec
        self.clearance = float(clearance)
        self._frame = np.array([link - 1 for link, _, _ in _UPPER_ARM])
        ends = np.array([[(*p, 1.0) for p in ends] for _, ends, _ in _UPPER_ARM])  # (C, 2, 4)
        self._start, self._axis = ends[:, 0], ends[:, 1] - ends[:, 0]  # the axis as a direction (w = 0)
        upper = np.array([link for link, _, _ in _UPPER_ARM])
        # The (sphere, capsule) pairs that can touch (see the module docstring), flattened.
        self._sphere, self._capsule = np.nonzero(_MOVING_LINKS[:, None] - upper[None, :] >= 3)
        self._inv_length2 = 1.0 / np.sum(self._axis[self._capsule, :3] ** 2, axis=-1)
        radius = np.array([r for _, _, r in _UPPER_ARM])
        self._radii = _MOVING_RADII[self._sphere] + radius[self._capsule]

    def gap(self, q: np.ndarray) -> np.ndarray:
        """Smallest surface distance [m] of a sphere to a capsule it can touch for ``q`` ``(..., n)``: ``(...,)``."""
        p, shape = _stack(self.spec, q)
        return self.gap_of(p).reshape(shape)

    def gap_of(self, p: Poses) -> np.ndarray:
        """Smallest surface distance [m] of a sphere to a capsule it can touch, for each pose of ``p``: ``(m,)``."""
        frames = p.frames[:, self._frame, :3, :]  # (m, C, 3, 4)
        a = (frames @ self._start[:, :, None])[..., 0]  # (m, C, 3)
        ab = (frames @ self._axis[:, :, None])[..., 0]  # (m, C, 3), rigid: |ab|^2 is constant
        d = p.spheres[:, self._sphere] - a[:, self._capsule]  # (m, pairs, 3)
        ab = ab[:, self._capsule]
        t = np.clip(np.sum(d * ab, axis=-1) * self._inv_length2, 0.0, 1.0)
        off = d - t[..., None] * ab
        return (np.sqrt(np.sum(off * off, axis=-1)) - self._radii).min(axis=-1)

    def check(self, p: Poses) -> tuple[int, float] | None:
        """For ``p`` the ``poses`` of ``[start_q, *knots]``: the first knot (1-based) closer to the upper
        arm than the clearance and than the start is, and its gap [m]; ``None``: all clear.
        """
        return _first_closing(self.gap_of(p), self.clearance)


def _first_closing(values: np.ndarray, clearance: float) -> tuple[int, float] | None:
    """For ``values`` of ``[start, *knots]``: the first knot (1-based) whose value is below
    ``clearance`` and below the start's own (a pose already too close may move away, never closer),
    and that value; ``None``: all clear.
    """
    limit = min(clearance, float(values[0]) - _RISE_EPS)
    values = values[1:]
    bad = np.flatnonzero(values < limit)
    return None if bad.size == 0 else (int(bad[0]) + 1, float(values[bad[0]]))
