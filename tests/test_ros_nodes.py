"""The ROS 2 layer without a running graph where possible: parameter schemas and the shipped params
files, message conversions, the launch files through the project's launch runner, and the controller
node's refusals as a real rclpy process (loopback, this process's ``ROS_DOMAIN_ID``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rosproc import node as ros_node
from rosproc import observer, playout_delay

from apps.launch import check, command, parse
from ros_nodes import NODES
from ros_nodes.conversions import (
    chunk_to_trajectory,
    joint_state_arrays,
    joint_state_message,
    trajectory_to_chunk,
)
from ros_nodes.mpc_controller import queued
from ros_nodes.params import from_values, params_file, render_params_file, shipped_values
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.errors import ConfigError, InputError
from wm_control.robot import FR3
from wm_control.trajectory import StampedChunk

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.xml"))


@pytest.mark.parametrize("node", sorted(NODES))
def test_shipped_params_files_are_the_schemas_defaults(node: str) -> None:
    """``configs/ros/<node>.yaml`` is what ``python -m ros_nodes.params`` writes from the schema, and
    loads back to the schema's defaults.
    """
    path = params_file(node, ROOT / "configs")
    assert path.read_text() == render_params_file(NODES[node], node), "regenerate: python -m ros_nodes.params"
    assert from_values(NODES[node], shipped_values(path, node)) == NODES[node]()


def test_parameter_errors_name_the_parameter_and_the_valid_range() -> None:
    schema = NODES["wm_mpc_controller"]
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['exprot'\].*valid: \["):
        from_values(schema, {"exprot": "x"})
    with pytest.raises(ConfigError, match=r"'threads' = '2' has type str; expected int"):
        from_values(schema, {"threads": "2"})
    with pytest.raises(ConfigError, match=r"'max_lateness' = 5.0 is out of range; valid: \[0.001, 1.0\]"):
        from_values(schema, {"max_lateness": 5.0})
    with pytest.raises(ConfigError, match=r"'backend' = 'tflite'; valid: \['onnxruntime', 'tensorrt', 'torch'\]"):
        from_values(schema, {"backend": "tflite"})
    assert from_values(schema, {"margin": 0}).margin == 0.0  # an int where a float is expected is fine


def test_a_stamped_chunk_survives_a_joint_trajectory_round_trip_in_another_joint_order() -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(), 0.02, 0.001)
    assert FR3.start_q is not None
    state = gen.rest(FR3.start_q)
    chunk = StampedChunk(12.34, state.q, state.dq, gen.generate(state, np.linspace(-1, 1, 7)).chunk)
    epoch = 1_796_000_000_123_456_789  # a wall-clock epoch: stamps stay exact relative to it
    msg = chunk_to_trajectory(FR3.joint_names, chunk, epoch)
    assert len(msg.points) == len(chunk.chunk.positions) + 1 and msg.points[0].time_from_start.sec == 0
    order = [6, 0, 5, 1, 4, 2, 3]  # a controller may list the joints in any order
    msg.joint_names = [msg.joint_names[i] for i in order]
    for p in msg.points:
        p.positions = [p.positions[i] for i in order]
        p.velocities = [p.velocities[i] for i in order]
    back = trajectory_to_chunk(msg, FR3.joint_names, epoch)
    assert back.stamp == pytest.approx(chunk.stamp, abs=1e-9)
    np.testing.assert_array_equal(back.chunk.positions, chunk.chunk.positions)
    np.testing.assert_array_equal(back.chunk.velocities, chunk.chunk.velocities)
    np.testing.assert_array_equal(back.start_q, chunk.start_q)
    assert back.chunk.dt == pytest.approx(chunk.chunk.dt, abs=1e-9)
    msg.joint_names[0] = "panda_joint7"
    with pytest.raises(InputError, match="fr3_joint7"):
        trajectory_to_chunk(msg, FR3.joint_names, epoch)


def test_joint_states_convert_both_ways_and_a_missing_joint_is_named() -> None:
    q, dq = np.linspace(-1, 1, 7), np.linspace(0.1, 0.7, 7)
    msg = joint_state_message(FR3.joint_names, 3.5, q, dq, 10**18)
    t, q2, dq2 = joint_state_arrays(msg, FR3.joint_names, 10**18)
    assert t == pytest.approx(3.5, abs=1e-9)
    np.testing.assert_array_equal(q2, q)
    np.testing.assert_array_equal(dq2, dq)
    msg.name = list(msg.name[:6])
    msg.position = list(msg.position[:6])
    msg.velocity = list(msg.velocity[:6])
    with pytest.raises(InputError, match="fr3_joint7"):
        joint_state_arrays(msg, FR3.joint_names, 10**18)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_check_out_and_start_nodes_as_launch_ros_would(path: Path) -> None:
    nodes = parse(path, {})
    assert nodes and check(nodes) == []
    for node in nodes:
        cmd = command(node)
        assert cmd[1:4] == ["--ros-args", "-r", f"__node:={node.name}"]
        assert all(Path(f).is_file() for f in node.params_files)


def test_the_launch_runner_names_what_is_wrong() -> None:
    path = ROOT / "launch" / "sim.launch.xml"
    with pytest.raises(ConfigError, match=r"unknown launch argument\(s\) \['backnd'\]"):
        parse(path, {"backnd": "torch"})
    problems = check(parse(path, {"backend": "tflite"}))
    assert problems and "'backend' = 'tflite'" in problems[0]


def _run_node(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert "ROS_DOMAIN_ID" in env  # conftest gives every test process its own
    cmd = [sys.executable, "-m", "ros_nodes.mpc_controller", "--ros-args", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_the_controller_refuses_an_unknown_parameter_and_a_missing_export(tmp_path: Path) -> None:
    """A real rclpy process: each mistake ends it with exit code 2 and one line that names the cause."""
    typo = _run_node(["-p", "exprot:=exports/fr3-reach"])
    assert typo.returncode == 2, typo.stderr
    assert "unknown parameter(s) ['exprot']" in typo.stderr
    missing = _run_node(["-p", f"export:={tmp_path / 'nothing'}"])
    assert missing.returncode == 2, missing.stderr
    assert "configure failed" in missing.stderr and str(tmp_path / "nothing") in missing.stderr
    assert "Traceback" not in missing.stderr + typo.stderr


# What the package needs to build: the project files colcon and setuptools read, the packages, and the
# launch and config files it installs under share/.
_PACKAGE_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "package.xml", "README.md", "resource", "launch")
_PACKAGE_FILES += ("configs",)
_PACKAGES = ("wm_control", "sim", "apps", "export", "ros_nodes")


def test_colcon_builds_the_package_where_ros2_run_and_ros2_launch_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``colcon build`` of a workspace holding this package (pip-installed colcon, the venv as the ament
    prefix): the nodes land in ``install/wm_control/lib/wm_control``, the launch and parameter files and
    the ament index marker in ``share``; the launch runner finds and checks the installed launch file.
    """
    import shutil

    src = tmp_path / "src" / "wm_control"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info")
    for name in (*_PACKAGE_FILES, *_PACKAGES):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    venv = Path(sys.executable).parent
    env = {**os.environ, "AMENT_PREFIX_PATH": str(venv.parent), "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(venv / "colcon"), "build"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    install = tmp_path / "install" / "wm_control"
    executables = {p.name for p in (install / "lib" / "wm_control").iterdir() if os.access(p, os.X_OK)}
    assert set(NODES) | {"wm-control-launch"} <= executables, executables
    share = install / "share" / "wm_control"
    assert {p.name for p in (share / "launch").iterdir()} == {p.name for p in LAUNCH_FILES}
    assert {p.name for p in (share / "configs" / "ros").iterdir()} == {f"{n}.yaml" for n in NODES}
    assert (share / "package.xml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "wm_control").is_file()
    # As `ros2 launch wm_control sim.launch.xml` would: the installed prefix first on AMENT_PREFIX_PATH.
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{install}{os.pathsep}{venv.parent}")
    nodes = parse(share / "launch" / "sim.launch.xml", {})
    assert check(nodes) == []
    for node in nodes:
        cmd = command(node)
        assert cmd[0] == str(install / "lib" / "wm_control" / node.exec), cmd
        assert node.params_files == [str(share / "configs" / "ros" / f"{node.exec}.yaml")], cmd


def _launch(args: list[str], timeout: float = 200.0) -> subprocess.CompletedProcess[str]:
    prefix = str(Path(sys.executable).parents[1])
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "AMENT_PREFIX_PATH": prefix}
    exe = Path(sys.executable).parent / "wm-control-launch"
    return subprocess.run([str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_started_sim_launch_file_has_every_parameter_as_given_and_every_subscription_published(
    shipped_export: Path,
) -> None:
    """``--verify``: the three nodes run; each one's parameters (params files, then the launch file's
    values) are what it reports over ROS, and every topic it subscribes to has a publisher."""
    delay = playout_delay(shipped_export)
    done = _launch(["launch/sim.launch.xml", f"export:={shipped_export}", f"playout_delay:={delay}", "--verify"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "verified 3 running node(s)" in done.stdout


def test_the_real_robot_launch_file_runs_against_the_sim_standing_in_for_the_robot(
    shipped_export: Path, tmp_path: Path
) -> None:
    """``launch/fr3.launch.xml`` (the controller alone, configured at start) with ``wm_mujoco_sim`` in the
    robot's place and the test as the operator's goal source: verified. Without the robot, ``--verify``
    names the subscription nobody publishes and exits 1."""
    delay = playout_delay(shipped_export)
    args = ["launch/fr3.launch.xml", f"export:={shipped_export}", "autostart:=true", f"playout_delay:={delay}"]
    alone = _launch([*args, "--verify=10"])
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert "subscribes to /franka/joint_states but nothing publishes it" in alone.stderr
    with ros_node("wm_mujoco_sim", {"playout_delay": delay}, tmp_path / "sim.log"), observer() as operator:
        operator.send_goal((0.5, 0.0, 0.4), matched=False)  # latched: the controller launched next receives it
        done = _launch([*args, "--verify"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "verified 1 running node(s)" in done.stdout


def test_a_runner_started_with_sigint_ignored_still_stops_its_nodes_cleanly_on_sigint(
    shipped_export: Path, tmp_path: Path
) -> None:
    """A runner started in a script's background inherits SIGINT ignored, which survives exec into its
    nodes. It answers SIGINT like Ctrl-C anyway: the nodes stop and write their files (seen:
    ``bench/ros_loop.py`` under ``nohup`` lost the nodes' statistics; they were killed 30 s later)."""
    import signal

    from rosproc import BIN, children, ros_env
    from rosproc import _stop as stop

    stats, log = tmp_path / "sim_stats.json", tmp_path / "launch.log"
    args = [f"export:={shipped_export}", f"playout_delay:={playout_delay(shipped_export)}", f"sim_stats:={stats}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "wm-control-launch"), "launch/sim.launch.xml", *args],
            cwd=ROOT, env=ros_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
    try:
        end = time.monotonic() + 120.0
        while b"goal 1/" not in log.read_bytes() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert b"goal 1/" in log.read_bytes(), log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 130, log.read_text()[-3000:]
        assert stats.is_file(), log.read_text()[-3000:]
    finally:
        stop(proc, children(proc.pid))


def test_the_state_latency_counts_from_the_middlewares_receive_time() -> None:
    now = time.time_ns()
    assert queued({"received_timestamp": now - 3_000_000}) == pytest.approx(0.003, abs=0.002)
    # No receive time, one in the future or one from another clock: the callback's own time counts.
    for info in ({}, {"received_timestamp": 0}, {"received_timestamp": now + 10**9}, {"received_timestamp": 5}, None):
        assert queued(info) == 0.0
