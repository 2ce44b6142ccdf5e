"""``apps/demo_report.py`` on a small synthetic recording: reading (joint order by name, time axis, goals),
the three plots, the video, and its errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apps.demo_report import (
    GOAL_TOPIC,
    STATE_TOPIC,
    Recording,
    plot_distance,
    plot_latency,
    plot_velocities,
    read_recording,
    render_video,
)
from wm_control.errors import ConfigError
from wm_control.robot import FR3

T0_NS = 1_700_000_000_000_000_000
RATE = 250
N_STATES = 500  # 2 s at 250 Hz
STATE_START = 0.1  # the first joint state 0.1 s after the bag's first message (a command)
GOAL_TIMES = (0.5, 1.2)
GOALS = ((0.5, 0.1, 0.4), (0.4, -0.2, 0.3))
SHUFFLED = (3, 0, 6, 1, 5, 2, 4)  # the order the joint states name the joints in


def trajectory(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``q, dq`` ``(N, 7)`` in FR3 order: every joint swings around the start pose."""
    assert FR3.start_q is not None
    w = np.linspace(1.0, 2.5, 7)
    q = FR3.start_q + 0.3 * np.sin(w * t[:, None])
    return q, 0.3 * w * np.cos(w * t[:, None])


def write_bag(path: Path, states: bool = True, goals: bool = True) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]

    def header(ns: int) -> Any:
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="fr3_link0")

    def put(conn: Any, msgtype: str, ns: int, msg: Any) -> None:
        writer.write(conn, ns, ts.serialize_cdr(msg, msgtype))

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cmd_type = "trajectory_msgs/msg/JointTrajectory"
        cmd = writer.add_connection("/fr3_arm_controller/joint_trajectory", cmd_type, typestore=ts)
        empty = T[cmd_type](header=header(T0_NS), joint_names=list(FR3.joint_names), points=[])
        put(cmd, cmd_type, T0_NS, empty)
        if states:
            js_type = "sensor_msgs/msg/JointState"
            js = writer.add_connection(STATE_TOPIC, js_type, typestore=ts)
            t = STATE_START + np.arange(N_STATES) / RATE
            q, dq = trajectory(t)
            names = [FR3.joint_names[i] for i in SHUFFLED]
            for k, tk in enumerate(t):
                ns = T0_NS + round(tk * 1e9)
                msg = T[js_type](
                    header=header(ns), name=names, position=q[k, SHUFFLED], velocity=dq[k, SHUFFLED], effort=np.zeros(0)
                )
                put(js, js_type, ns, msg)
        if goals:
            pt_type = "geometry_msgs/msg/PointStamped"
            gc = writer.add_connection(GOAL_TOPIC, pt_type, typestore=ts)
            for tg, (x, y, z) in zip(GOAL_TIMES, GOALS, strict=True):
                ns = T0_NS + round(tg * 1e9)
                msg = T[pt_type](header=header(ns), point=T["geometry_msgs/msg/Point"](x=x, y=y, z=z))
                put(gc, pt_type, ns, msg)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "recording"
    write_bag(path)
    return path


@pytest.fixture(scope="module")
def rec(bag: Path) -> Recording:
    return read_recording(bag)


def test_reads_joint_states_in_fr3_order_on_the_bag_time_axis(rec: Recording, bag: Path) -> None:
    assert rec.t.shape == (N_STATES,) and rec.q.shape == (N_STATES, 7) and rec.dq.shape == (N_STATES, 7)
    assert rec.goal_times.shape == (2,) and rec.goals.shape == (2, 3)
    assert rec.source == bag
    expected_t = STATE_START + np.arange(N_STATES) / RATE  # seconds from the bag's first message
    np.testing.assert_allclose(rec.t, expected_t, atol=1e-9)
    q, dq = trajectory(expected_t)
    np.testing.assert_allclose(rec.q, q, atol=1e-12)  # reordered by name, not taken in message order
    np.testing.assert_allclose(rec.dq, dq, atol=1e-12)
    np.testing.assert_allclose(rec.goal_times, GOAL_TIMES, atol=1e-9)
    np.testing.assert_allclose(rec.goals, GOALS)


def test_goal_at_is_the_last_goal_received(rec: Recording) -> None:
    assert rec.goal_at(0.0) is None and rec.goal_at(0.49) is None
    for t, k in ((GOAL_TIMES[0], 0), (1.0, 0), (GOAL_TIMES[1], 1), (100.0, 1)):  # active from its receive time
        goal = rec.goal_at(t)
        assert goal is not None and np.allclose(goal, GOALS[k]), (t, goal)


def test_writes_the_three_plots(rec: Recording, tmp_path: Path) -> None:
    edges = [float(e) for e in range(41)]
    counts = [0] * 40
    counts[5:12] = [3, 40, 120, 60, 10, 2, 1]
    paths = [
        plot_distance(rec, tmp_path / "distance.png"),
        plot_latency(edges, counts, 20.0, tmp_path / "plots" / "planner_latency.png"),
        plot_velocities(rec, tmp_path / "joint_velocities.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, path


def test_renders_one_frame_per_step_from_the_first_joint_state(rec: Recording, tmp_path: Path) -> None:
    import imageio.v2 as imageio

    calls: list[tuple[int, int]] = []
    out = render_video(rec, tmp_path / "demo.mp4", size=(160, 120), fps=10, progress=lambda d, n: calls.append((d, n)))
    reader: Any
    with imageio.get_reader(out) as reader:
        frames = np.stack(list(reader.iter_data()))
    assert frames.shape == (20, 120, 160, 3)  # 1.996 s of joint states at 10 fps: frames at 0, 0.1, ..., 1.9 s
    assert calls[-1] == (20, 20) and len(calls) == 20
    assert frames.std(axis=0).mean() > 0.5  # the arm moves and the marker appears: not one frame repeated
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5


def test_a_recording_without_states_or_goals_still_plots(tmp_path: Path) -> None:
    path = tmp_path / "commands_only"
    write_bag(path, states=False, goals=False)
    rec = read_recording(path)
    assert rec.t.shape == (0,) and rec.q.shape == (0, 7) and rec.goals.shape == (0, 3)
    assert rec.goal_at(1.0) is None
    assert plot_distance(rec, tmp_path / "d.png").stat().st_size > 5000
    assert plot_velocities(rec, tmp_path / "v.png").stat().st_size > 5000
    with pytest.raises(ConfigError, match="no joint states"):
        render_video(rec, tmp_path / "v.mp4")


def test_states_without_goals_plot_no_distance(tmp_path: Path) -> None:
    path = tmp_path / "no_goals"
    write_bag(path, goals=False)
    rec = read_recording(path)
    assert rec.t.shape == (N_STATES,) and rec.goals.shape == (0, 3)
    assert plot_distance(rec, tmp_path / "d.png").stat().st_size > 5000


def test_a_missing_or_foreign_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"recording {missing}: no such folder"):
        read_recording(missing)
    with pytest.raises(ConfigError, match=f"recording {tmp_path}: not a rosbag2 folder"):
        read_recording(tmp_path)
