"""The learned planner over ROS 2, end to end: the sim, controller and goal nodes as separate rclpy
processes on loopback (this test process's ``ROS_DOMAIN_ID``), the shipped ``fr3-reach`` model through
its onnxruntime export at the deployment budget, started by the project's launch runner. Every
process a test starts is stopped by the test (its whole process group), also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _trained_for_the_link() -> bool:
    """Whether the shipped model was trained with the sim node's playout delay (its contract says so)."""
    state = json.loads((ROOT / "models" / "fr3-reach" / "state.json").read_text())
    return "playout_delay" in json.dumps(state.get("contract", {}))


# Not coverage yet: the shipped model was trained without the link's dead time, and the controller
# refuses it at the sim's 30 ms playout delay (issue 13's note). These run once models/fr3-reach is
# retrained with the delay, or against an export named by WM_CONTROL_TEST_EXPORT.
pytestmark = pytest.mark.skipif(
    not (_trained_for_the_link() or os.environ.get("WM_CONTROL_TEST_EXPORT")),
    reason="the shipped fr3-reach model was trained without the ROS link's playout delay (issue 13)",
)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model exported at the deployment budget (what ``make export`` writes); the
    environment variable ``WM_CONTROL_TEST_EXPORT`` names an existing export to use instead.
    """
    given = os.environ.get("WM_CONTROL_TEST_EXPORT")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("export") / "fr3-reach"
    cmd = [str(BIN / "wm-control-export"), "checkpoint=models/fr3-reach", f"out={out}", "deploy=fr3-reach"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def children(pid: int, name: str = "") -> list[int]:
    """The pids of the processes ``pid`` started (whose command line contains ``name``)."""
    found = subprocess.run(["pgrep", "-P", str(pid), *(["-f", name] if name else [])], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@contextmanager
def launched(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``wm-control-launch launch/sim.launch.xml <args>`` in its own process group, output to ``log``;
    on exit the runner is stopped (SIGINT: it stops its nodes; SIGKILL after 15 s) and then every
    node it started is killed, whatever state they are in.
    """
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "AMENT_PREFIX_PATH": str(BIN.parent)}
    assert "ROS_DOMAIN_ID" in env
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "wm-control-launch"), "launch/sim.launch.xml", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            nodes = children(proc.pid)  # each node runs in its own session, as launch_ros starts them
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            for pid in [proc.pid, *nodes]:  # nothing the test started may outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def test_the_arm_reaches_seeded_goals_through_three_ros_processes(export: Path, tmp_path: Path) -> None:
    summary, log = tmp_path / "summary.json", tmp_path / "launch.log"
    with launched([f"export:={export}", "goals:=10", "seed:=0", f"summary:={summary}"], log) as proc:
        deadline = time.monotonic() + 240.0
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
        assert proc.poll() == 0, log.read_text()[-3000:]
    result = json.loads(summary.read_text())
    text = log.read_text()
    assert "reflex:" not in text, text[-3000:]
    assert result["finished"] == 10
    assert result["reached"] >= 9, json.dumps(result, indent=1)


class _Observer:
    """An rclpy node in the test process that records what the operator and the robot see."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import JointState
        from std_srvs.srv import SetBool
        from trajectory_msgs.msg import JointTrajectory

        rclpy.init()
        self.node = rclpy.create_node("test_observer")
        self.chunks: list[tuple[float, float]] = []  # (receive time, max |knot velocity|)
        self.states: list[tuple[float, float]] = []  # (receive time, max |dq|)
        self.controller: list[tuple[float, int, str]] = []  # (receive time, level, message)
        self.node.create_subscription(JointTrajectory, "/fr3_arm_controller/joint_trajectory", self._chunk, 10)
        self.node.create_subscription(JointState, "/franka/joint_states", self._state, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 10)
        self.hold = self.node.create_client(SetBool, "/wm_mpc_controller/hold")
        self._SetBool = SetBool

    def _chunk(self, msg) -> None:  # noqa: ANN001
        self.chunks.append((time.monotonic(), max(abs(v) for p in msg.points for v in p.velocities)))

    def _state(self, msg) -> None:  # noqa: ANN001
        self.states.append((time.monotonic(), max(abs(v) for v in msg.velocity)))

    def _diag(self, msg) -> None:  # noqa: ANN001
        for s in msg.status:
            if s.name.startswith("wm_mpc_controller"):
                self.controller.append((time.monotonic(), s.level[0], s.message))

    def spin(self, seconds: float) -> None:
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def wait_for(self, what, timeout: float) -> bool:  # noqa: ANN001
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if what():
                return True
            self.spin(0.1)
        return False

    def set_hold(self, on: bool) -> str:
        import rclpy

        assert self.hold.wait_for_service(10.0)
        future = self.hold.call_async(self._SetBool.Request(data=on))
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=10.0)
        return future.result().message

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()


def test_hold_and_a_lost_robot_make_the_arm_hold_the_operator_hear_it_and_control_resume(
    export: Path, tmp_path: Path
) -> None:
    """Hold service: the arm comes to rest and stays, diagnostics say so; released, it moves again.
    The sim killed: the controller holds and reports ERROR (stale state); a new sim (at the start pose)
    brings states back: the controller starts again from where the robot is, with no reflex.
    """
    observer = _Observer()
    sim_log = tmp_path / "sim2.log"
    replacement: subprocess.Popen[bytes] | None = None
    try:
        with launched([f"export:={export}", "goals:=10", "seed:=1"], tmp_path / "launch.log") as proc:
            assert observer.wait_for(lambda: len(observer.chunks) > 50, 90.0), "no trajectories arrived"
            assert "reflex:" not in (tmp_path / "launch.log").read_text()  # else the hold below proves nothing
            # --- hold ---
            assert observer.set_hold(True) == "holding"
            observer.spin(1.5)  # the brake takes 0.8 s
            since = time.monotonic()
            observer.spin(0.5)
            assert max(v for t, v in observer.states if t >= since) < 0.01
            assert observer.wait_for(lambda: any("on request" in m for _, _, m in observer.controller[-2:]), 3.0)
            assert observer.set_hold(False) == "released"
            released = time.monotonic()
            assert observer.wait_for(lambda: any(t > released and v > 0.01 for t, v in observer.chunks), 10.0)
            # --- the robot lost ---
            pids = children(proc.pid, "wm_mujoco_sim")
            assert pids, "the sim process was not found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            assert observer.wait_for(
                lambda: any(t > killed and lvl == 2 and "stale" in m for t, lvl, m in observer.controller), 5.0
            ), observer.controller[-3:]
            env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
            params = ROOT / "configs" / "ros" / "wm_mujoco_sim.yaml"
            sim_cmd = [str(BIN / "wm_mujoco_sim"), "--ros-args", "-r", "__node:=wm_mujoco_sim", "--params-file"]
            with open(sim_log, "wb") as out:
                replacement = subprocess.Popen(
                    [*sim_cmd, str(params)],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            back = time.monotonic()
            assert observer.wait_for(  # controlling again: OK, or WARN when planning falls below budget
                lambda: any(t > back + 1.0 and lvl < 2 for t, lvl, _ in observer.controller), 20.0
            ), observer.controller[-3:]
            assert observer.wait_for(lambda: any(t > back and v > 0.01 for t, v in observer.chunks), 10.0)
            observer.spin(3.0)
        assert "reflex:" not in sim_log.read_text()
        assert "reflex:" not in (tmp_path / "launch.log").read_text()
    finally:
        observer.close()
        if replacement is not None and replacement.poll() is None:
            os.killpg(replacement.pid, signal.SIGKILL)
            replacement.wait(5)
