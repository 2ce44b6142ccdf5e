"""Faults over ROS 2, each with what the arm does and what the operator sees: the sim and the controller
as separate rclpy processes on loopback with the shipped model's onnxruntime export at the deployment
budget, goals sent by the test, and an observer node in the test process (``rosproc.Observer``) that
watches the robot's joint states and the controller's ``/diagnostics`` and, for the joint-state faults,
stands between the robot and the controller to corrupt what the controller receives.

These need a model that moves the arm, not one that reaches goals: they run on the shipped model at
the dead time its contract names (the sim's ``playout_delay`` set to match).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from rosproc import RELAYED, Observer, node, observer, playout_delay

ERROR = 2
GOALS = ((0.5, 0.15, 0.4), (0.45, -0.15, 0.45))  # 31 cm apart, in the middle of the goal box of fr3-reach
REST_SPEED = 0.05  # [rad/s]: the arm is at rest below this on every joint (the commander's REST_SPEED)


@contextmanager
def robot_and_controller(
    export: Path, logs: Path, relayed: bool = False, **controller: object
) -> Iterator[tuple[Any, Any]]:
    """The sim and the controller (the controller on ``RELAYED`` joint states if ``relayed``)."""
    delay = playout_delay(export)
    params = {"export": export, "playout_delay": delay, **controller}
    if relayed:
        params["joint_states"] = RELAYED
    with ExitStack() as stack:
        sim = stack.enter_context(node("wm_mujoco_sim", {"playout_delay": delay}, logs / "sim.log"))
        ctrl = stack.enter_context(node("wm_mpc_controller", params, logs / "controller.log"))
        yield sim, ctrl


def moving(watch: Observer, goal: tuple[float, float, float], timeout: float = 60.0) -> None:
    """Send ``goal`` and wait until the arm moves towards it."""
    # Only once the observer hears the robot: before DDS discovery pairs them, the arm can reach a near
    # goal (1.5 s for 23 cm) and stop there, unseen (seen: the test failed with the arm "at the goal").
    assert watch.wait_for(lambda: watch.last_state_age() < 0.1, 20.0), "no joint states reach the observer"
    watch.send_goal(goal)
    sent = time.monotonic()
    moved = watch.wait_for(lambda: watch.robot_speed_since(max(sent, time.monotonic() - 0.2)) > 0.05, timeout)
    age = f"last joint state {watch.last_state_age():.1f} s ago"
    assert moved, ("the arm did not move", age, watch.controller[-1:])


def comes_to_rest_and_stays(watch: Observer, what: str) -> None:
    """The brake to rest takes 0.8 s; then the arm stays at rest."""
    watch.spin(1.2)
    since = time.monotonic()
    watch.spin(0.8)
    speed = watch.robot_speed_since(since)
    assert speed < REST_SPEED, f"{what}: the arm still moves at {speed:.3f} rad/s; {watch.controller[-2:]}"


def no_reflex(logs: Path) -> None:
    for log in logs.glob("*.log"):
        text = log.read_text()
        assert "reflex:" not in text, (log.name, text[-2000:])


def _nan(msg: Any) -> Any:
    msg.position = [math.nan, *msg.position[1:]]
    return msg


def _old(msg: Any) -> Any:
    msg.header.stamp.sec -= 1  # a second old: a stalled driver, or a replayed bag
    return msg


def _renamed(msg: Any) -> Any:
    msg.name = [*msg.name[:-1], "fr3_joint7_typo"]
    return msg


def _short(msg: Any) -> Any:
    msg.position = list(msg.position[:-1])
    return msg


# (corruption, what the controller's ERROR says, the counter in its diagnostics that counts it)
BAD_STATES: list[tuple[str, Callable[[Any], Any], str, str]] = [
    ("NaN position", _nan, "non-finite input: q", "total non-finite input: q"),
    ("stale stamp", _old, "stale state", "total stale state"),
    ("wrong joint name", _renamed, "lacks joint(s) ['fr3_joint7']", "total joint states rejected"),
    ("wrong joint count", _short, "7 names, 6 positions", "total joint states rejected"),
]


def test_nan_stale_and_misnamed_joint_states_are_ignored_counted_and_the_arm_holds(
    shipped_export: Path, tmp_path: Path
) -> None:
    """Each corruption while the arm moves: the controller ignores the states (the arm brakes to rest and
    stays), counts them, and its diagnostics say ERROR with the cause; clean states again: control resumes.
    """
    with observer(relay=True) as watch, robot_and_controller(shipped_export, tmp_path, relayed=True):
        for k, (what, corrupt, says, counter) in enumerate(BAD_STATES):
            moving(watch, GOALS[k % 2])
            watch.corrupt, since = corrupt, time.monotonic()
            assert watch.wait_for(lambda: watch.status_since(since, ERROR, says), 5.0), (what, watch.controller[-2:])  # noqa: B023
            comes_to_rest_and_stays(watch, what)
            _, _, _, values = watch.controller[-1]
            assert int(values.get(counter, "0")) > 0, (what, values)
            watch.corrupt, back = None, time.monotonic()
            assert watch.wait_for(  # controlling again: OK, or WARN when planning falls below budget
                lambda: any(t > back + 1.0 and lvl < ERROR for t, lvl, _, _ in watch.controller),  # noqa: B023
                10.0,
            ), (what, watch.controller[-2:])
    no_reflex(tmp_path)


def test_hold_and_a_lost_robot_make_the_arm_hold_the_operator_hear_it_and_control_resume(
    shipped_export: Path, tmp_path: Path
) -> None:
    """Hold service: the arm comes to rest and stays, diagnostics say so; released, it moves again.
    The sim killed: the controller holds and reports ERROR (stale state); a new sim (at the start pose)
    brings states back: the controller starts again from where the robot is, with no reflex. (Chunks
    the controller sent before the new sim listened never reached it; those it gets, planned from a
    command it never executed, are refused as unjoinable until the controller resyncs: 2 of 9 runs
    tripped a reflex before that refusal existed.)
    """
    delay = playout_delay(shipped_export)
    with observer() as watch, robot_and_controller(shipped_export, tmp_path) as (sim, _):
        moving(watch, GOALS[0])
        assert watch.set_hold(True) == "holding"
        comes_to_rest_and_stays(watch, "hold")
        assert watch.wait_for(lambda: watch.status_since(time.monotonic() - 1.0, None, "on request"), 3.0)
        assert watch.set_hold(False) == "released"
        moving(watch, GOALS[1])
        # --- the robot lost ---
        os.killpg(sim.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert watch.wait_for(lambda: watch.status_since(killed, ERROR, "stale"), 5.0), watch.controller[-2:]
        with node("wm_mujoco_sim", {"playout_delay": delay}, tmp_path / "sim2.log"):
            back = time.monotonic()
            assert watch.wait_for(  # controlling again: OK, or WARN when planning falls below budget
                lambda: any(t > back + 1.0 and lvl < ERROR for t, lvl, _, _ in watch.controller), 20.0
            ), watch.controller[-2:]
            moving(watch, GOALS[0])
            watch.spin(2.0)
    no_reflex(tmp_path)


def test_a_slowed_planner_falls_back_and_a_second_controller_is_reported(shipped_export: Path, tmp_path: Path) -> None:
    """Every planner call 25 ms slower (``fault_planner_delay``): the ticks fall back (counted by level
    and reason), the arm still moves with commands the safety layer never has to replace, no reflex.
    Then a second node publishes on the command topic: the controller reports ERROR and names it.
    """
    from trajectory_msgs.msg import JointTrajectory

    with observer() as watch, robot_and_controller(shipped_export, tmp_path, fault_planner_delay=0.025):
        moving(watch, GOALS[0])
        moving(watch, GOALS[1])
        # The first /diagnostics comes a period after activation; the arm may move before it.
        assert watch.wait_for(
            lambda: bool(watch.controller) and int(watch.controller[-1][3].get("total ticks", "0")) > 150, 10.0
        )
        _, _, _, values = watch.controller[-1]
        fallbacks = sum(int(values.get(f"total {level}", "0")) for level in ("PARTIAL", "POLICY", "SHIFTED"))
        assert fallbacks > 0 and int(values.get("total budget", "0")) > 0, values
        assert int(values.get("total MPPI", "0")) < int(values["total ticks"]), values
        assert values.get("total safety interventions", "0") == "0", values
        # --- a second controller ---
        rival = watch.node.create_publisher(JointTrajectory, "/fr3_arm_controller/joint_trajectory", 10)
        since = time.monotonic()
        assert watch.wait_for(lambda: watch.status_since(since, ERROR, "another controller"), 5.0)
        assert "test_observer" in watch.controller[-1][2], watch.controller[-1]
        watch.node.destroy_publisher(rival)
        gone = time.monotonic()
        assert watch.wait_for(lambda: watch.status_since(gone + 0.5, None) and watch.controller[-1][1] < ERROR, 5.0)
    no_reflex(tmp_path)


def test_commands_nothing_subscribes_to_are_not_sent_and_the_operator_hears_it(
    shipped_export: Path, tmp_path: Path
) -> None:
    """A robot whose trajectory controller is not there (here: the sim listens on another controller's
    topic): the controller sends nothing and reports ERROR naming the topic; once something subscribes,
    commands flow and the ERROR goes."""
    delay = playout_delay(shipped_export)
    params = {"export": shipped_export, "playout_delay": delay}
    with (
        observer(listen=False) as watch,
        node("wm_mujoco_sim", {"playout_delay": delay, "controller": "other_controller"}, tmp_path / "sim.log"),
        node("wm_mpc_controller", params, tmp_path / "controller.log"),
    ):
        assert watch.wait_for(lambda: watch.last_state_age() < 0.1, 20.0), "no joint states reach the observer"
        watch.send_goal(GOALS[0])
        says = "no robot listening: nothing subscribes to /fr3_arm_controller/joint_trajectory"
        assert watch.wait_for(lambda: watch.status_since(0.0, ERROR, says), 10.0), watch.controller[-2:]
        _, _, _, values = watch.controller[-1]
        assert values["ticks"] == "0" and "total ticks" not in values, values  # nothing planned
        watch.listen()
        assert watch.wait_for(lambda: len(watch.chunks) > 10, 10.0), "no commands after a subscriber came"
        since = time.monotonic()
        assert watch.wait_for(lambda: watch.status_since(since, None) and watch.controller[-1][1] < ERROR, 5.0), (
            watch.controller[-2:]
        )
        assert "command topic" not in watch.controller[-1][3]
    assert "nothing subscribes to /fr3_arm_controller/joint_trajectory" in (tmp_path / "controller.log").read_text()


@pytest.mark.parametrize("what", ["corrupted", "mismatched", "other dead time"])
def test_a_corrupted_or_mismatched_model_fails_configure_with_the_reason(
    shipped_export: Path, tmp_path: Path, what: str
) -> None:
    """A real controller process: a flipped byte in a model file; a model.json that names other joints
    than the ONNX files were exported with; a model trained for another dead time than the executing
    layer's. Configure fails (exit code 2) with one line that names the file or the field."""
    import json
    import shutil
    import subprocess

    from rosproc import BIN, ROOT, ros_env

    export = tmp_path / "export"
    shutil.copytree(shipped_export, export)
    delay = playout_delay(shipped_export)
    if what == "corrupted":
        onnx = export / "policy.onnx"
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.write_bytes(bytes(data))
        expected = "policy.onnx"
    elif what == "mismatched":
        contract = json.loads((export / "model.json").read_text())
        contract["joint_names"] = [f"panda_joint{i}" for i in range(1, 8)]  # a Panda model for the FR3
        (export / "model.json").write_text(json.dumps(contract))
        expected = "field 'joint_names[0]' differs from model.json"
    else:
        delay += 0.01
        expected = "'action.playout_delay'"
    cmd = [str(BIN / "wm_mpc_controller"), "--ros-args", "-p", f"export:={export}"]
    cmd += ["-p", f"playout_delay:={delay}"]
    done = subprocess.run(cmd, cwd=ROOT, env=ros_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "configure failed" in done.stderr and expected in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
