"""Turn a demo's ROS 2 recording into plots and a video, after the run.

``read_recording`` reads the rosbag2 folder (MCAP storage) that ``ros_nodes.recorder`` writes: the joint
states of ``/franka/joint_states`` (reordered to ``fr3_joint1..7`` by name) and the goals of
``/wm_mpc_controller/goal``, on the bag's receive time axis (seconds from its first message). The other
recorded topics (commands, ``/diagnostics``) are not needed here. From a ``Recording``:

- ``plot_distance``: the TCP's distance to the active goal over time, goal switches, the tolerance;
- ``plot_latency``: the planner latency histogram (from ``summary.json``) against the budget;
- ``plot_velocities``: each joint's speed against FR3's position-dependent velocity limit at q(t);
- ``render_video``: the arm replayed in the task scene (``front`` camera, as the env renders), with the
  active goal as the green target marker, encoded to mp4.

Any topic may be missing or empty: the plots then say so instead of drawing it, and only the video
refuses a recording without joint states.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from wm_control.errors import ConfigError, InputError  # noqa: E402
from wm_control.kinematics import tcp_position  # noqa: E402
from wm_control.robot import FR3, velocity_bounds  # noqa: E402

__all__ = [
    "GOAL_TOPIC",
    "STATE_TOPIC",
    "Recording",
    "frame_times",
    "nearest_indices",
    "plot_distance",
    "plot_latency",
    "plot_velocities",
    "read_recording",
    "render_video",
    "speed_limits",
    "tcp_distances",
]

STATE_TOPIC = "/franka/joint_states"
GOAL_TOPIC = "/wm_mpc_controller/goal"
# ros_nodes/goal_publisher.py's default tolerance: the TCP distance that counts as reached [m].
DEFAULT_TOLERANCE_M = 0.02
CAMERA = "front"  # FR3EnvConfig.camera's default: the view the env's videos use
GRIPPER_OPENING_M = 0.04  # FR3Sim.reset's default finger opening


@dataclass(frozen=True, eq=False)
class Recording:
    """Joint states and goals of one demo run, times in seconds from the recording's first message.

    t: ``(N,)`` receive time of each joint state [s], ascending.
    q, dq: ``(N, 7)`` joint positions [rad] and velocities [rad/s], in ``FR3.joint_names`` order
        (velocities are NaN where a message carried none).
    goal_times: ``(G,)`` receive time of each goal [s], ascending.
    goals: ``(G, 3)`` goal positions [m] in the robot base frame.
    source: the folder it was read from (for error messages), if any.
    """

    t: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    goal_times: np.ndarray
    goals: np.ndarray
    source: Path | None = field(default=None)

    def goal_at(self, t: float) -> np.ndarray | None:
        """The goal active at time ``t`` [s]: the last one received at or before ``t``, or ``None``
        before the first goal (or when there are none). Returns a copy, ``(3,)``.
        """
        i = int(np.searchsorted(self.goal_times, t, side="right")) - 1
        return None if i < 0 else self.goals[i].copy()

    def goal_indices(self, t: np.ndarray) -> np.ndarray:
        """Index into ``goals`` of the goal active at each time in ``t``; -1 before the first goal."""
        return np.searchsorted(self.goal_times, np.asarray(t, dtype=np.float64), side="right") - 1


# --- reading ----------------------------------------------------------------------------------------
def read_recording(path: str | Path) -> Recording:
    """Read the joint states and goals of the rosbag2 folder ``path`` (MCAP storage).

    Raises:
        ConfigError: ``path`` does not exist, is not a rosbag2 folder, cannot be read (a recording
            whose writer was killed lacks the MCAP footer: ``ros2 bag reindex`` repairs it), or a
            joint state lacks one of the FR3 joints.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recording {path}: no such folder")
    if not (path / "metadata.yaml").is_file():
        raise ConfigError(f"recording {path}: not a rosbag2 folder (no metadata.yaml)")
    try:
        stamps, states, goals = _read_messages(path)
        t0 = min(stamps) if stamps else 0
        t, q, dq = _joint_arrays(states, t0)
        goal_times, goal_points = _goal_arrays(goals, t0)
    except ConfigError as exc:
        raise ConfigError(f"recording {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 (rosbags raises several types for one cause: an unreadable file)
        raise ConfigError(
            f"recording {path}: cannot be read ({type(exc).__name__}: {exc}); "
            "a recording whose writer was killed can be repaired with `ros2 bag reindex`"
        ) from None
    return Recording(t=t, q=q, dq=dq, goal_times=goal_times, goals=goal_points, source=path)


def _read_messages(path: Path) -> tuple[list[int], list[tuple[int, Any]], list[tuple[int, Any]]]:
    """Candidates for the first message's stamp (the bag's start time, the earliest joint state and goal)
    [ns], and the deserialized joint states and goals, each ``(ns, msg)``.
    """
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    stamps: list[int] = []
    states: list[tuple[int, Any]] = []
    goals: list[tuple[int, Any]] = []
    sinks = {STATE_TOPIC: states, GOAL_TOPIC: goals}
    with Reader(path) as reader:
        if reader.message_count:
            stamps.append(int(reader.start_time))
        wanted = [c for c in reader.connections if c.topic in sinks]
        # An empty filter means every connection to rosbags: read nothing when no wanted topic is there.
        for conn, stamp, raw in reader.messages(connections=wanted) if wanted else ():
            sinks[conn.topic].append((int(stamp), store.deserialize_cdr(raw, conn.msgtype)))
    for items in (states, goals):
        if items:
            stamps.append(min(s for s, _ in items))
    return stamps, states, goals


def _joint_arrays(states: list[tuple[int, Any]], t0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``t (N,)``, ``q (N, 7)``, ``dq (N, 7)`` from JointState messages, in ``FR3.joint_names`` order."""
    n = len(states)
    t = np.empty(n)
    q = np.empty((n, FR3.dof))
    dq = np.full((n, FR3.dof), np.nan)
    orders: dict[tuple[str, ...], np.ndarray] = {}
    for k, (stamp, msg) in enumerate(states):
        names = tuple(msg.name)
        if names not in orders:
            orders[names] = _joint_order(names)
        idx = orders[names]
        if len(msg.position) != len(names):
            raise ConfigError(f"{STATE_TOPIC}: a joint state has {len(msg.position)} positions for {len(names)} names")
        t[k] = (stamp - t0) / 1e9
        q[k] = np.asarray(msg.position, dtype=np.float64)[idx]
        if len(msg.velocity) == len(names):
            dq[k] = np.asarray(msg.velocity, dtype=np.float64)[idx]
    order = np.argsort(t, kind="stable")
    return t[order], q[order], dq[order]


def _joint_order(names: tuple[str, ...]) -> np.ndarray:
    """Indices that pick ``FR3.joint_names`` out of a message's ``names``."""
    missing = [j for j in FR3.joint_names if j not in names]
    if missing:
        raise ConfigError(f"{STATE_TOPIC}: a joint state lacks {missing} (it names {list(names)})")
    return np.array([names.index(j) for j in FR3.joint_names])


def _goal_arrays(goals: list[tuple[int, Any]], t0: int) -> tuple[np.ndarray, np.ndarray]:
    """``goal_times (G,)`` and ``goals (G, 3)`` from PointStamped messages, in receive order."""
    times = np.array([(stamp - t0) / 1e9 for stamp, _ in goals], dtype=np.float64)
    points = np.array([[m.point.x, m.point.y, m.point.z] for _, m in goals], dtype=np.float64).reshape(-1, 3)
    order = np.argsort(times, kind="stable")
    return times[order], points[order]


# --- plots ------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    """The pyplot module on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    """Write ``fig`` as a PNG to ``out`` (creating its folder) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    _pyplot().close(fig)
    return out


def _note(ax: Any, text: str) -> None:
    """Write ``text`` in the middle of an empty axes."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="0.3")


def tcp_distances(rec: Recording) -> np.ndarray:
    """``(N,)`` TCP distance to the active goal [m] at each joint state; NaN before the first goal."""
    dist = np.full(len(rec.t), np.nan)
    if not len(rec.t) or not len(rec.goals):
        return dist
    idx = rec.goal_indices(rec.t)
    active = idx >= 0
    tcp = tcp_position(FR3, rec.q[active])
    dist[active] = np.linalg.norm(tcp - rec.goals[idx[active]], axis=1)
    return dist


def plot_distance(rec: Recording, out: Path, tolerance: float = DEFAULT_TOLERANCE_M) -> Path:
    """Plot the TCP's distance to the active goal over time (log scale) to ``out`` (PNG).

    Goal switches are dashed vertical lines; ``tolerance`` [m] (the goal publisher's 2 cm by default) is
    a horizontal line. Without joint states or goals the plot says so. Returns ``out``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    ax.set(title="TCP distance to the active goal", xlabel="time [s]", ylabel="distance [m] (log scale)")
    dist = tcp_distances(rec)
    for k, tg in enumerate(rec.goal_times):
        ax.axvline(tg, color="0.5", linestyle="--", linewidth=0.8, label="new goal" if k == 0 else None)
    if not len(rec.t):
        _note(ax, "no joint states in the recording")
    elif not len(rec.goals):
        _note(ax, "no goals in the recording: no distance to plot")
    else:
        ax.plot(rec.t, np.maximum(dist, 1e-4), color="C0", linewidth=1.2, label="TCP to goal")
        ax.axhline(tolerance, color="C3", linewidth=1.0, label=f"tolerance {tolerance * 100:g} cm")
        ax.set_yscale("log")
        ax.legend(loc="upper right")
    return _save(fig, out)


def plot_latency(hist_edges_ms: Sequence[float], hist_counts: Sequence[int], budget_ms: float, out: Path) -> Path:
    """Plot the planner latency histogram (bars between ``hist_edges_ms``, heights ``hist_counts``)
    with the budget [ms] as a vertical line, to ``out`` (PNG). Returns ``out``.

    Raises:
        InputError: there is not exactly one more edge than counts, or the edges do not ascend.
    """
    edges = np.asarray(hist_edges_ms, dtype=np.float64)
    counts = np.asarray(hist_counts, dtype=np.float64)
    if edges.ndim != 1 or counts.ndim != 1 or len(edges) != len(counts) + 1:
        raise InputError(f"plot_latency: {len(edges)} edges for {len(counts)} counts; expected one more edge")
    if np.any(np.diff(edges) <= 0):
        raise InputError("plot_latency: histogram edges must ascend")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    total = int(counts.sum())
    ax.set(title=f"Planner latency ({total} ticks)", xlabel="planner latency [ms]", ylabel="ticks")
    if total:
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0", edgecolor="white", label="ticks")
    else:
        _note(ax, "no planner ticks recorded")
    over = counts[edges[:-1] >= budget_ms].sum() / total if total else 0.0
    ax.axvline(budget_ms, color="C3", linewidth=1.5, label=f"budget {budget_ms:g} ms ({over:.1%} of ticks at or above)")
    ax.legend(loc="upper right")
    return _save(fig, out)


def speed_limits(q: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """FR3's velocity limit [rad/s] at ``q`` in the direction of ``dq`` (``velocity_bounds``' upper bound
    when moving forward, minus its lower bound when moving back), ``(..., 7)``.
    """
    lower, upper = velocity_bounds(FR3, q)
    return np.where(dq < 0, -lower, upper)


def plot_velocities(rec: Recording, out: Path) -> Path:
    """Plot each joint's speed ``|dq_i|`` over time against FR3's position-dependent velocity limit at
    ``q(t)`` in the direction of motion (``wm_control.robot.velocity_bounds``), one subplot a joint, to
    ``out`` (PNG). Returns ``out``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(FR3.dof, 1, figsize=(10, 14), sharex=True, layout="constrained")
    fig.suptitle("Joint speeds against the position-dependent velocity limits")
    speed = np.abs(rec.dq)
    limit = speed_limits(rec.q, rec.dq) if len(rec.t) else np.empty((0, FR3.dof))
    for i, ax in enumerate(axes):
        ax.set_ylabel(f"joint {i + 1}\n[rad/s]")
        if not len(rec.t):
            _note(ax, "no joint states in the recording")
            continue
        ax.plot(rec.t, speed[:, i], color="C0", linewidth=1.0, label="|dq|")
        ax.plot(rec.t, limit[:, i], color="C3", linewidth=1.0, label="limit at q(t)")
        ax.set_ylim(bottom=0.0)
        ax.set_title(f"{FR3.joint_names[i]}: peak {_peak_share(speed[:, i], limit[:, i])} of its limit", fontsize=9)
    if len(rec.t):
        axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time [s]")
    return _save(fig, out)


def _peak_share(speed: np.ndarray, limit: np.ndarray) -> str:
    """The largest ``speed / limit`` as a percentage ("-" without finite values)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = speed / np.maximum(limit, 1e-9)
    finite = share[np.isfinite(share)]
    return f"{finite.max():.0%}" if finite.size else "-"


# --- video ------------------------------------------------------------------------------------------
def frame_times(rec: Recording, fps: int) -> np.ndarray:
    """Times [s] of the video's frames: one every ``1 / fps`` s from the first joint state to the last,
    ``int(duration * fps) + 1`` frames.
    """
    if not len(rec.t):
        return np.empty(0)
    n = int((rec.t[-1] - rec.t[0]) * fps + 1e-9) + 1
    return rec.t[0] + np.arange(n) / fps


def nearest_indices(t: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the entry of the ascending ``t`` nearest to each time in ``at``."""
    right = np.clip(np.searchsorted(t, at), 0, len(t) - 1)
    left = np.clip(right - 1, 0, len(t) - 1)
    return np.where(np.abs(at - t[left]) <= np.abs(t[right] - at), left, right)


class _Frames(Sequence[np.ndarray]):
    """The video's frames, rendered when read: ``write_video`` takes a sequence, and a demo's minutes at
    640x480 would not fit in memory as a list.
    """

    def __init__(self, rec: Recording, fps: int, scene: _Scene, progress: Callable[[int, int], None] | None) -> None:
        self._times = frame_times(rec, fps)
        self._states = nearest_indices(rec.t, self._times)
        self._goals = rec.goal_indices(self._times)
        self._rec = rec
        self._scene = scene
        self._progress = progress

    def __len__(self) -> int:
        return len(self._times)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        g = int(self._goals[i])
        return self._scene.render(self._rec.q[self._states[i]], self._rec.goals[g] if g >= 0 else None)

    def __iter__(self) -> Iterator[np.ndarray]:
        n = len(self)
        for k in range(n):
            yield self[k]
            if self._progress is not None:
                self._progress(k + 1, n)


class _Scene:
    """The task scene of ``sim.scene`` with a renderer: poses the arm and the target marker, renders."""

    def __init__(self, width: int, height: int) -> None:
        import mujoco

        from sim.scene import ARM_JOINTS, build_model

        self._mj = mujoco
        model = build_model(hand=True, scene=True)
        # The offscreen buffer bounds the frame size (scene.xml: 1280x960); grow it for larger videos.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        self.model = model
        self.data = mujoco.MjData(model)
        self._arm = np.array([model.joint(j).qposadr[0] for j in ARM_JOINTS])
        fingers = [j for j in range(model.njnt) if model.joint(j).name.startswith("fr3_hand_finger_joint")]
        for j in fingers:
            self.data.qpos[model.jnt_qposadr[j]] = GRIPPER_OPENING_M
        self._mocap = int(model.body("target").mocapid[0])
        self._marker = model.geom("target").id
        self._marker_rgba = model.geom_rgba[self._marker].copy()
        self._renderer = mujoco.Renderer(model, height, width)

    def render(self, q: np.ndarray, goal: np.ndarray | None) -> np.ndarray:
        """RGB frame ``(H, W, 3)`` uint8 of the arm at ``q`` with the marker at ``goal`` (hidden if ``None``)."""
        self.data.qpos[self._arm] = q
        if goal is not None:
            self.data.mocap_pos[self._mocap] = goal
        self.model.geom_rgba[self._marker, 3] = self._marker_rgba[3] if goal is not None else 0.0
        self._mj.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera=CAMERA)
        return self._renderer.render()

    def close(self) -> None:
        """Free the renderer's GL context."""
        self._renderer.close()


def render_video(
    rec: Recording,
    out: Path,
    size: tuple[int, int] = (640, 480),
    fps: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Replay ``rec`` in the task scene and encode it to the mp4 ``out``; returns ``out``.

    One frame every ``1 / fps`` s from the first joint state to the last (``frame_times``), each showing
    the nearest joint state from the ``front`` camera, fingers open, and the active goal as the green
    target marker (hidden before the first goal). ``size`` is ``(width, height)`` [px]; ``progress(done,
    total)`` is called after each frame. Needs offscreen GL (``MUJOCO_GL=egl`` headless).

    Raises:
        ConfigError: the recording has no joint states, or ``size`` / ``fps`` is not positive.
    """
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ConfigError(f"render_video: size={tuple(size)!r}; expected (width, height) of at least 1 px each")
    if fps < 1:
        raise ConfigError(f"render_video: fps={fps!r}; expected at least 1")
    if not len(rec.t):
        where = f"recording {rec.source}" if rec.source is not None else "the recording"
        raise ConfigError(f"{where}: no joint states on {STATE_TOPIC}, nothing to render")
    from wm_control.video import write_video

    scene = _Scene(width, height)
    try:
        return write_video(out, _Frames(rec, fps, scene, progress), fps)
    finally:
        scene.close()
