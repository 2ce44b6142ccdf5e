"""ROS 2 messages <-> the numpy arrays of the library: the only place that knows both.

- ``sensor_msgs/JointState`` <-> ``(t [s], q (n,) [rad], dq (n,) [rad/s])`` in the robot's joint order
  (messages may list joints in any order, and carry other joints, e.g. the gripper's);
- ``trajectory_msgs/JointTrajectory`` <-> ``StampedChunk``: the header stamp is the time of the start
  state, the first point (``time_from_start`` 0) is the start state and the others are the knots at
  ``dt, 2 dt, ...``, positions and velocities at every point (joint_trajectory_controller semantics);
- ``geometry_msgs/PointStamped`` -> a goal ``(3,)`` [m] in the base frame;
- ``builtin_interfaces/Time`` / ``Duration`` <-> seconds.

Malformed messages raise ``InputError`` naming the field; nodes turn that into a warning and a count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from wm_control.errors import InputError
from wm_control.trajectory import StampedChunk, TrajectoryChunk

__all__ = [
    "BASE_FRAMES",
    "chunk_to_trajectory",
    "duration_to_seconds",
    "joint_state_arrays",
    "joint_state_message",
    "point_goal",
    "seconds_to_duration",
    "seconds_to_time",
    "time_to_seconds",
    "trajectory_to_chunk",
]

# Frames a goal may be given in: the FR3's base (franka_ros2 names the base link fr3_link0).
BASE_FRAMES = ("base", "fr3_link0", "")


def time_to_seconds(stamp: Any, epoch_ns: int = 0) -> float:
    """``builtin_interfaces/Time`` -> seconds after ``epoch_ns`` [ns] (the difference is taken in integer
    nanoseconds: a float of seconds since 1970 resolves only 0.24 us, too coarse to put chunk stamps on
    their knot grid).
    """
    return (int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec) - epoch_ns) * 1e-9


def seconds_to_time(seconds: float, epoch_ns: int = 0) -> Any:
    """Seconds after ``epoch_ns`` [ns] -> ``builtin_interfaces/Time`` (must not be before 1970)."""
    from builtin_interfaces.msg import Time

    ns = int(round(seconds * 1e9)) + epoch_ns
    if ns < 0:
        raise InputError(f"a ROS time must not be negative; got {seconds} s after epoch {epoch_ns} ns")
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def duration_to_seconds(duration: Any) -> float:
    """``builtin_interfaces/Duration`` -> seconds."""
    return float(duration.sec) + 1e-9 * float(duration.nanosec)


def seconds_to_duration(seconds: float) -> Any:
    """Seconds -> ``builtin_interfaces/Duration``."""
    from builtin_interfaces.msg import Duration

    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def joint_state_arrays(msg: Any, joint_names: Sequence[str], epoch_ns: int = 0) -> tuple[float, np.ndarray, np.ndarray]:
    """``(t, q, dq)`` of ``joint_names`` (in that order) from a ``JointState``; ``t`` [s] after ``epoch_ns``.

    Raises:
        InputError: a joint is missing, or the position / velocity lists do not match the names.
    """
    names = list(msg.name)
    if len(msg.position) != len(names) or len(msg.velocity) != len(names):
        raise InputError(
            f"JointState has {len(names)} names, {len(msg.position)} positions and {len(msg.velocity)} velocities"
        )
    index = {name: i for i, name in enumerate(names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise InputError(f"JointState lacks joint(s) {missing}; it has {names}")
    order = [index[j] for j in joint_names]
    q = np.asarray(msg.position, dtype=np.float64)[order]
    dq = np.asarray(msg.velocity, dtype=np.float64)[order]
    return time_to_seconds(msg.header.stamp, epoch_ns), q, dq


def joint_state_message(joint_names: Sequence[str], t: float, q: np.ndarray, dq: np.ndarray, epoch_ns: int = 0) -> Any:
    """A ``JointState`` stamped ``t`` [s] after ``epoch_ns`` with positions ``q`` and velocities ``dq``."""
    from sensor_msgs.msg import JointState

    msg = JointState()
    msg.header.stamp = seconds_to_time(t, epoch_ns)
    msg.name = list(joint_names)
    msg.position = [float(v) for v in q]
    msg.velocity = [float(v) for v in dq]
    return msg


def chunk_to_trajectory(joint_names: Sequence[str], chunk: StampedChunk, epoch_ns: int = 0) -> Any:
    """A ``JointTrajectory``: header stamp = the start state's time (``chunk.stamp`` [s] after
    ``epoch_ns``), point 0 = the start state, then the knots at ``time_from_start`` ``dt, 2 dt, ...``.
    """
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory()
    msg.header.stamp = seconds_to_time(chunk.stamp, epoch_ns)
    msg.joint_names = list(joint_names)
    knots = chunk.chunk
    # Whole arrays to lists at once, and one Duration per knot time shared by every message: this runs
    # on every control tick, between the solve and the publish.
    positions = [np.asarray(chunk.start_q, dtype=np.float64).tolist(), *np.asarray(knots.positions, float).tolist()]
    velocities = [np.asarray(chunk.start_dq, dtype=np.float64).tolist(), *np.asarray(knots.velocities, float).tolist()]
    times = _knot_times(float(knots.dt), len(positions))
    msg.points = [
        JointTrajectoryPoint(positions=q, velocities=dq, time_from_start=t)
        for q, dq, t in zip(positions, velocities, times, strict=True)
    ]
    return msg


@functools.lru_cache(maxsize=8)
def _knot_times(dt: float, n: int) -> tuple[Any, ...]:
    """``time_from_start`` of ``n`` points ``dt`` [s] apart from 0 (not to be modified: shared)."""
    return tuple(seconds_to_duration(k * dt) for k in range(n))


def trajectory_to_chunk(msg: Any, joint_names: Sequence[str], epoch_ns: int = 0) -> StampedChunk:
    """The ``StampedChunk`` of a ``JointTrajectory`` written by ``chunk_to_trajectory`` (joints reordered
    to ``joint_names``; evenly spaced points, the first at ``time_from_start`` 0; stamp [s] after
    ``epoch_ns``).

    Raises:
        InputError: other joints, fewer than 2 points, missing velocities, uneven or non-increasing
            times, or a first point not at 0.
    """
    names = list(msg.joint_names)
    if sorted(names) != sorted(joint_names) or len(names) != len(joint_names):
        raise InputError(f"JointTrajectory joint_names are {names}; expected {list(joint_names)}")
    order = [names.index(j) for j in joint_names]
    points = list(msg.points)
    if len(points) < 2:
        raise InputError(f"JointTrajectory has {len(points)} point(s); expected the start state and >= 1 knot")
    times = np.array([duration_to_seconds(p.time_from_start) for p in points])
    n = len(names)
    for i, p in enumerate(points):
        if len(p.positions) != n or len(p.velocities) != n:
            raise InputError(f"JointTrajectory point {i} has {len(p.positions)} positions and "
                             f"{len(p.velocities)} velocities; expected {n} of each")  # fmt: skip
    if abs(times[0]) > 1e-9:
        raise InputError(f"JointTrajectory point 0 is at time_from_start {times[0]} s; expected 0 (the start state)")
    steps = np.diff(times)
    if np.any(steps <= 0) or np.ptp(steps) > 1e-6:
        raise InputError(f"JointTrajectory points must be evenly spaced in time; got time_from_start {times.tolist()}")
    q = np.array([p.positions for p in points], dtype=np.float64)[:, order]
    dq = np.array([p.velocities for p in points], dtype=np.float64)[:, order]
    knots = TrajectoryChunk(q[1:], dq[1:], float(steps[0]))
    return StampedChunk(time_to_seconds(msg.header.stamp, epoch_ns), q[0], dq[0], knots)


def point_goal(msg: Any) -> np.ndarray:
    """The goal ``(3,)`` [m] of a ``PointStamped`` in the base frame.

    Raises:
        InputError: another frame (this node has no transforms) or a non-finite coordinate.
    """
    frame = msg.header.frame_id
    if frame not in BASE_FRAMES:
        raise InputError(f"goal frame_id {frame!r}; this controller takes goals in {[f for f in BASE_FRAMES if f]}")
    goal = np.array([msg.point.x, msg.point.y, msg.point.z], dtype=np.float64)
    if not np.isfinite(goal).all():
        raise InputError(f"goal {goal.tolist()} is not finite")
    return goal
