"""Helpers of the tests that run real rclpy processes on loopback (this test process's ``ROS_DOMAIN_ID``):
start nodes (alone or through the project's launch runner) in their own process groups and stop every
one of them, also when the test fails; an rclpy node in the test process that watches what the robot
and the operator see, and can stand between the robot and the controller to corrupt joint states.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RELAYED = "/relayed/joint_states"  # where the observer's relay republishes the robot's joint states


def ros_env() -> dict[str, str]:
    """This process's environment, on loopback, with the venv as the ament prefix (the launch runner's
    ``find-pkg-share``)."""
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "AMENT_PREFIX_PATH": str(BIN.parent)}
    assert "ROS_DOMAIN_ID" in env  # conftest gives every test process its own
    return env


def playout_delay(export: Path) -> float:
    """The dead time the exported model was trained with (its contract's ``action.playout_delay``)."""
    contract = json.loads((export / "model.json").read_text())
    return float(contract["action"].get("playout_delay", 0.0))


def children(pid: int, name: str = "") -> list[int]:
    """The pids of the processes ``pid`` started (whose command line contains ``name``)."""
    found = subprocess.run(["pgrep", "-P", str(pid), *(["-f", name] if name else [])], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _stop(proc: subprocess.Popen[bytes], extra: list[int]) -> None:
    """SIGINT to ``proc``'s group (SIGKILL after 15 s), then SIGKILL to every group in ``extra``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for pid in [proc.pid, *extra]:  # nothing a test started may outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@contextmanager
def launched(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``wm-control-launch launch/sim.launch.xml <args>`` in its own process group, output to ``log``;
    on exit the runner is stopped (SIGINT: it stops its nodes) and then every node it started is killed.
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "wm-control-launch"), "launch/sim.launch.xml", *args],
            cwd=ROOT, env=ros_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            _stop(proc, children(proc.pid))  # each node runs in its own session, as launch_ros starts them


@contextmanager
def node(executable: str, params: dict[str, object], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One node as ``ros2 run`` starts it: its shipped params file, then ``params`` (``-p name:=value``)."""
    shipped = ROOT / "configs" / "ros" / f"{executable}.yaml"
    args = ["--ros-args", "-r", f"__node:={executable}", "--params-file", str(shipped)]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / executable), *args],
            cwd=ROOT, env=ros_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            _stop(proc, [])


class Observer:
    """An rclpy node in the test process that records what the robot and the operator see: the
    trajectories on the command topic, the robot's joint states, the controller's diagnostics. With
    ``relay`` it also republishes the robot's joint states on ``RELAYED``, passed through ``corrupt``
    (set by the test; ``None``: unchanged), for a controller that listens there. An executor spins it
    on a thread of its own, so the relay keeps the robot's rate while the test waits. With ``listen``
    false it does not subscribe to the command topic until ``listen()`` is called.
    """

    def __init__(self, relay: bool = False, listen: bool = True) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_srvs.srv import SetBool
        from trajectory_msgs.msg import JointTrajectory

        rclpy.init()
        self.node = rclpy.create_node("test_observer")
        self.chunks: list[tuple[float, float]] = []  # (receive time, max |knot velocity|)
        self.states: list[tuple[float, float]] = []  # (receive time, max |dq|)
        self.controller: list[tuple[float, int, str, dict[str, str]]] = []  # (receive time, level, message, values)
        self.corrupt: Callable[[Any], Any] | None = None
        self._JointTrajectory = JointTrajectory
        if listen:
            self.listen()
        self.node.create_subscription(JointState, "/franka/joint_states", self._state, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 10)
        self.relay = None
        if relay:
            reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.relay = self.node.create_publisher(JointState, RELAYED, reliable)
        self.hold = self.node.create_client(SetBool, "/wm_mpc_controller/hold")
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.goals = self.node.create_publisher(PointStamped, "/wm_mpc_controller/goal", latched)
        self._SetBool, self._PointStamped = SetBool, PointStamped
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def listen(self) -> None:
        """Subscribe to the command topic (``chunks`` records what arrives)."""
        self.node.create_subscription(self._JointTrajectory, "/fr3_arm_controller/joint_trajectory", self._chunk, 10)

    def _chunk(self, msg: Any) -> None:
        self.chunks.append((time.monotonic(), max(abs(v) for p in msg.points for v in p.velocities)))

    def _state(self, msg: Any) -> None:
        self.states.append((time.monotonic(), max(abs(v) for v in msg.velocity)))
        if self.relay is not None:
            self.relay.publish(msg if self.corrupt is None else self.corrupt(msg))

    def _diag(self, msg: Any) -> None:
        for s in msg.status:
            if s.name.startswith("wm_mpc_controller"):
                values = {kv.key: kv.value for kv in s.values}
                self.controller.append((time.monotonic(), s.level[0], s.message, values))

    def spin(self, seconds: float) -> None:
        """Let ``seconds`` pass while the executor thread records."""
        time.sleep(seconds)

    def wait_for(self, what: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self._thread.is_alive(), "the observer's executor thread died"
            if what():
                return True
            self.spin(0.1)
        return False

    def status_since(self, since: float, level: int | None = None, text: str = "") -> bool:
        """Whether a controller status arrived after ``since`` with ``level`` (any: ``None``) and ``text``
        in its message."""
        return any(t > since and (level is None or lvl == level) and text in m for t, lvl, m, _ in self.controller)

    def last_state_age(self) -> float:
        """Seconds since the robot's last joint state arrived (inf: none yet)."""
        return time.monotonic() - self.states[-1][0] if self.states else math.inf

    def robot_speed_since(self, since: float) -> float:
        """The largest joint speed the robot reported after ``since`` [rad/s] (NaN: no state)."""
        speeds = [v for t, v in self.states if t > since]
        return max(speeds) if speeds else math.nan

    def send_goal(self, xyz: tuple[float, float, float], matched: bool = True) -> None:
        """Publish a goal, by default once the controller's subscription is matched: though the topic is
        latched, a goal published while discovery is still pairing a running controller was seen lost (the
        arm never moved, the controller held at its start pose "at the goal"). ``matched=False`` publishes at
        once, for a controller that starts later and receives the latched goal when it subscribes."""
        end = time.monotonic() + 10.0
        while matched and self.goals.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        if matched:
            assert self.goals.get_subscription_count() > 0, "no subscriber on the controller's goal topic after 10 s"
        msg = self._PointStamped()
        msg.header.frame_id = "base"
        msg.point.x, msg.point.y, msg.point.z = xyz
        self.goals.publish(msg)

    def set_hold(self, on: bool) -> str:
        """Call the controller's ``~/hold``; its answer's message."""
        assert self.hold.wait_for_service(10.0)
        future = self.hold.call_async(self._SetBool.Request(data=on))
        assert self.wait_for(future.done, 10.0), "no answer from ~/hold"
        return future.result().message

    def close(self) -> None:
        import rclpy

        self._executor.shutdown()
        self._thread.join(5.0)
        self.node.destroy_node()
        rclpy.try_shutdown()


@contextmanager
def observer(relay: bool = False, listen: bool = True) -> Iterator[Observer]:
    """An ``Observer`` for the duration of a test."""
    watcher = Observer(relay, listen)
    try:
        yield watcher
    finally:
        watcher.close()
