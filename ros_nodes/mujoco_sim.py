"""``wm_mujoco_sim``: the FR3 in MuJoCo behind franka_ros2's topics, standing in for the robot.

- Steps the simulated FR3 and its 1 kHz tracking layer (``sim.physics.FR3Sim``) in real time: a timer
  every ``step_period`` (or every joint-state period, if that is shorter) advances the physics to the
  wall clock, in whole 1 ms ticks. At 4 ms rather than 2 ms the sim took a third less CPU (32-35 %
  of a core against 48-49 %, ``bench/ros_loop.py``), leaving more to the planner.
- Publishes ``joint_states`` (sensor_msgs/JointState, the arm's joints) at ``joint_states_rate`` and
  the merged ``/joint_states`` at ``merged_joint_states_rate`` (franka_ros2 publishes 1 kHz and 30 Hz;
  a 1 kHz rclpy publisher costs about 40 % of a core, so the shipped default is lower: see
  ``configs/ros/wm_mujoco_sim.yaml``), stamped in the node's clock.
- Executes ``/<controller>/joint_trajectory`` with joint_trajectory_controller semantics: a new
  trajectory replaces the active one and is evaluated at ``now - header.stamp`` (point 0 is the start
  state), on a clock ``playout_delay`` behind: a message up to that late takes over exactly where the
  active trajectory passes through its start state, without a jump (evaluated at once at ``now -
  stamp``, the old trajectory has already left that state, since it brakes after its first knot); a
  later one takes over with the difference decaying smoothly (``sim.tracking.JOIN_TIME``). One
  stamped in the future, older than itself or older than the active one, or one too far from the
  command to join within the limits (planned from a command this robot never executed, e.g. sent
  before a restarted sim listened) is refused and counted (``FR3Sim.send_stamped``). ``stats_file``
  gets the run's lateness, refusals and reflexes at exit.
- On a reflex the arm stops, ``/diagnostics`` says why (ERROR), and it waits for ``~/reset``
  (std_srvs/Trigger), as a real Franka waits for error recovery.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes.conversions import joint_state_message, trajectory_to_chunk
from ros_nodes.params import declare_parameters, param
from wm_control.errors import WmControlError

NAME = "wm_mujoco_sim"


@dataclass(frozen=True)
class SimParams:
    """Parameters of ``wm_mujoco_sim`` (shipped values: ``configs/ros/wm_mujoco_sim.yaml``)."""

    controller: str = param("fr3_arm_controller", "trajectory controller name: /<controller>/joint_trajectory")
    joint_states: str = param("/franka/joint_states", "arm joint state topic")
    joint_states_rate: float = param(250.0, "publish rate of joint_states [Hz]", low=1.0, high=1000.0)
    merged_joint_states_rate: float = param(30.0, "publish rate of /joint_states [Hz]", low=1.0, high=1000.0)
    step_period: float = param(
        0.004,
        "longest wall-clock period of the physics timer [s]; shorter when joint_states_rate needs it",
        low=0.001,
        high=0.05,
    )
    playout_delay: float = param(
        0.03,
        "the 1 kHz layer runs this far behind the stamps, so chunks up to this late join exactly [s]",
        low=0.0,
        high=0.1,
    )
    diagnostics_period: float = param(1.0, "period of /diagnostics [s]", low=0.05, high=60.0)
    stats_file: str = param(
        "", "JSON file the run's statistics are written to at exit (bench/ros_loop.py); empty: none"
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``ros2 run wm_control wm_mujoco_sim``)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    import sim.scene
    from sim.physics import FR3Sim
    from wm_control.robot import FR3

    rclpy.init(args=argv)
    node = Node(NAME)
    log = node.get_logger()
    try:
        p = declare_parameters(node, SimParams)
    except WmControlError as exc:
        log.error(str(exc))
        sys.exit(2)
    physics = FR3Sim(sim.scene.build_model(hand=True, scene=True), FR3, playout_delay=p.playout_delay)
    names = FR3.joint_names
    arm_pub = node.create_publisher(JointState, p.joint_states, 10)
    merged_pub = node.create_publisher(JointState, "/joint_states", 10)
    diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
    t0_ns = node.get_clock().now().nanoseconds  # the node clock at sim time 0: stamps are sim time after it
    t0_wall = time.monotonic()
    counts = {"trajectories": 0, "refused": 0, "late_ms_max": 0.0, "reflexes": 0}
    lateness: list[float] = []  # arrival minus stamp of every trajectory [s]
    last = {"arm": -1.0, "merged": -1.0, "reflex": ""}

    def on_trajectory(msg: Any) -> None:
        step()  # bring the simulation up to the wall clock first: the stamp is judged against now
        try:
            chunk = trajectory_to_chunk(msg, names, t0_ns)
            refusal = physics.send_stamped(chunk)
        except WmControlError as exc:  # malformed, or stopped by a reflex: refused until reset
            counts["refused"] += 1
            log.warning(f"trajectory refused: {exc}", throttle_duration_sec=2.0)
            return
        counts["late_ms_max"] = max(counts["late_ms_max"], (physics.time - chunk.stamp) * 1e3)
        lateness.append(physics.time - chunk.stamp)
        if refusal is not None:
            counts["refused"] += 1
            log.warning(f"trajectory refused: {refusal.message}", throttle_duration_sec=2.0)
        else:
            counts["trajectories"] += 1

    def step() -> None:
        target = time.monotonic() - t0_wall
        n = int((target - physics.time) / physics.h)
        if n > 0 and physics.reflex is None:
            # All the way to the wall clock: stamps are judged against it, so a starved sim must catch up.
            report = physics.advance(n * physics.h)
            if report.reflex is not None:
                last["reflex"] = report.reflex.message
                counts["reflexes"] += 1
                log.error(f"reflex: {report.reflex.message}; call ~/reset to recover")
        # Stopped by a reflex, the arm stands still and the states go on (as a robot's do), on the wall clock.
        now = physics.time if physics.reflex is None else target
        dq = physics.dq if physics.reflex is None else np.zeros(7)
        if now - last["arm"] >= 1.0 / p.joint_states_rate - 1e-9:
            arm_pub.publish(joint_state_message(names, now, physics.q, dq, t0_ns))
            last["arm"] = now
        if now - last["merged"] >= 1.0 / p.merged_joint_states_rate - 1e-9:
            merged_pub.publish(joint_state_message(names, now, physics.q, dq, t0_ns))
            last["merged"] = now

    def diagnostics() -> None:
        status = DiagnosticStatus(name=f"{NAME}: simulated FR3", hardware_id="mujoco")
        factor = physics.time / max(time.monotonic() - t0_wall, 1e-9)
        if last["reflex"]:
            status.level, status.message = DiagnosticStatus.ERROR, f"stopped by a reflex: {last['reflex']}"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"running, real-time factor {factor:.2f}"
        values = {**counts, "sim_time_s": physics.time, "real_time_factor": factor}
        status.values = [
            KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()
        ]
        out = DiagnosticArray(status=[status])
        out.header.stamp = node.get_clock().now().to_msg()
        diag_pub.publish(out)

    def on_reset(request: Any, response: Any) -> Any:
        physics.reset(physics.q, time=physics.h * int((time.monotonic() - t0_wall) / physics.h))
        last["reflex"] = ""
        response.success, response.message = True, "reset: holding the current position"
        log.info(response.message)
        return response

    node.create_subscription(JointTrajectory, f"/{p.controller}/joint_trajectory", on_trajectory, 10)
    node.create_service(Trigger, "~/reset", on_reset)
    # Each wake publishes at most one joint state, so the timer is at least as fast as the state rate.
    period = min(p.step_period, 1.0 / p.joint_states_rate)
    node.create_timer(period, step)
    node.create_timer(p.diagnostics_period, diagnostics)
    log.info(
        f"simulated FR3 up: {p.joint_states} at {p.joint_states_rate:g} Hz, physics timer every "
        f"{period * 1e3:g} ms, commands on /{p.controller}"
    )
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        if p.stats_file:
            late = np.asarray(lateness) * 1e3
            stats = {
                **counts,
                "refused_by_reason": physics.refused_chunks,
                "late_ms_p50": round(float(np.median(late)), 3) if late.size else None,
                "late_ms_p99": round(float(np.percentile(late, 99)), 3) if late.size else None,
                "beyond_playout": int(np.sum(late > p.playout_delay * 1e3)),
                "real_time_factor": round(physics.time / max(time.monotonic() - t0_wall, 1e-9), 3),
            }
            Path(p.stats_file).write_text(json.dumps(stats, indent=1) + "\n")
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
