"""``wm_goal_publisher``: a seeded scenario of reach goals for the controller, judged by the measured TCP.

Publishes each goal (geometry_msgs/PointStamped, frame ``base``, latched) on ``goal_topic``, watches the
joint states (the TCP from forward kinematics), and moves on when the goal is reached and settled or
times out (``wm_control.goals``). Each outcome goes out on ``~/result`` (std_msgs/String, one JSON
object: index, count, goal, reached, time_to_reach, final_distance, reason). Goals are a YAML list
(``scenario``) or drawn from the box the model was trained to reach (the export's ``model.json`` goal
space). When the scenario ends it writes ``summary`` (JSON) and exits.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes.conversions import joint_state_arrays, seconds_to_time
from ros_nodes.params import declare_parameters, param
from wm_control.errors import ConfigError, InputError, WmControlError
from wm_control.goals import GoalSequence, GoalSettings, random_goals
from wm_control.kinematics import tcp_jacobian, tcp_position
from wm_control.robot import FR3

NAME = "wm_goal_publisher"


@dataclass(frozen=True)
class GoalParams:
    """Parameters of ``wm_goal_publisher`` (shipped values: ``configs/ros/wm_goal_publisher.yaml``)."""

    export: str = param("exports/fr3-reach", "export folder whose model.json gives the goal box (random goals)")
    scenario: str = param("", "YAML file with a list of [x, y, z] goals [m]; empty: random goals")
    count: int = param(10, "number of random goals", low=1, high=10000)
    seed: int = param(0, "seed of the random goals", low=0, high=2**31 - 1)
    tolerance: float = param(0.02, "TCP distance that counts as reached [m]", low=0.001, high=1.0)
    settle_speed: float = param(0.05, "TCP speed below which the arm is settled [m/s]", low=0.001, high=10.0)
    settle_time: float = param(0.2, "how long reached and settled must hold [s]", low=0.0, high=60.0)
    timeout: float = param(8.0, "time allowed per goal [s]", low=0.1, high=3600.0)
    goal_topic: str = param("wm_mpc_controller/goal", "where goals are published (the controller's ~/goal)")
    joint_states: str = param("/joint_states", "joint state topic the TCP is computed from (franka_ros2's 30 Hz one)")
    summary: str = param("", "JSON file the results are written to at the end; empty: none")
    startup_timeout: float = param(
        120.0,
        "give up (all goals failed) when the robot or the controller has not appeared by then [s]",
        low=1.0,
        high=3600.0,
    )


def goals_of(p: GoalParams) -> list[np.ndarray]:
    """The scenario's goals: the YAML list, or ``count`` random ones in the export's goal box."""
    if p.scenario:
        import yaml

        try:
            data = yaml.safe_load(Path(p.scenario).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"scenario {p.scenario}: cannot read ({exc})") from None
        return [np.asarray(g, dtype=np.float64) for g in (data or [])]
    from wm_control.runtime.manifest import read_export

    space = read_export(p.export).contract.goal
    if "low" not in space:
        raise ConfigError(f"the model in {p.export} has no goal box (goal space {space}); give a scenario")
    return random_goals(p.count, space["low"], space["high"], p.seed)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``ros2 run wm_control wm_goal_publisher``)."""
    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    rclpy.init(args=argv)
    node = Node(NAME)
    try:
        p = declare_parameters(node, GoalParams)
        sequence = GoalSequence(goals_of(p), GoalSettings(p.tolerance, p.settle_speed, p.settle_time, p.timeout))
    except WmControlError as exc:
        node.get_logger().error(str(exc))
        sys.exit(2)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(PointStamped, p.goal_topic, latched)
    results = node.create_publisher(
        String, "~/result", QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    )
    log = node.get_logger()

    def now() -> float:
        return node.get_clock().now().nanoseconds * 1e-9

    def publish_current() -> None:
        goal = sequence.current
        if goal is None:
            return
        msg = PointStamped()
        msg.header.stamp, msg.header.frame_id = seconds_to_time(now()), "base"
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in goal)
        pub.publish(msg)
        sequence.start(now())
        log.info(f"goal {sequence.index + 1}/{len(sequence.goals)}: {np.round(goal, 3).tolist()} m")

    def on_state(msg: Any) -> None:
        try:
            _, q, dq = joint_state_arrays(msg, FR3.joint_names)
        except InputError as exc:
            log.warning(f"joint state ignored: {exc}", throttle_duration_sec=5.0)
            return
        if sequence.index == 0 and not started[0]:
            # The first goal's clock starts once the robot reports and the controller listens.
            if pub.get_subscription_count() == 0:
                return
            started[0] = True
            publish_current()
        speed = float(np.linalg.norm(tcp_jacobian(FR3, q)[:3] @ dq))
        result = sequence.update(now(), tcp_position(FR3, q), speed)
        if result is not None:
            outcome = f"reached in {result.time_to_reach:.2f} s" if result.reached else f"not reached: {result.reason}"
            log.info(f"goal {sequence.index}/{len(sequence.goals)} {outcome}")
            payload = {"index": sequence.index, "count": len(sequence.goals), **result.to_dict()}
            results.publish(String(data=json.dumps(payload)))
            publish_current()

    started = [False]
    node.create_subscription(JointState, p.joint_states, on_state, 10)
    deadline = now() + p.startup_timeout
    try:
        while rclpy.ok() and not sequence.done:
            rclpy.spin_once(node, timeout_sec=0.1)
            if not started[0] and now() > deadline:
                why = "no joint states" if pub.get_subscription_count() else "no controller listening"
                log.error(f"{why} after {p.startup_timeout:g} s on {p.joint_states} / {p.goal_topic}")
                while sequence.fail(f"not started: {why} after {p.startup_timeout:g} s") is not None:
                    pass
    except KeyboardInterrupt:
        pass
    summary = sequence.summary()
    log.info(f"{summary['reached']}/{summary['goals']} goals reached")
    if p.summary:
        Path(p.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(p.summary).write_text(json.dumps(summary, indent=2))
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
