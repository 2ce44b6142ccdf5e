"""``wm_mpc_controller``: the learned MPC planner as a ROS 2 lifecycle node with franka_ros2's topics.

- configure: read and check the parameters, open the export (``load_backend``: every file verified),
  build the control loop from the model's contract and the safety layer. Any failure names its cause
  and leaves the node unconfigured.
- activate: a timer at the contract's ``dt``; each tick sends the latest ``joint_states`` and goal
  through ``Commander.tick`` (ControlLoop -> safety layer -> stamped chunk) and publishes the chunk on
  ``/<controller>/joint_trajectory`` (depth 1: a robot that starts listening gets no queue of old
  chunks; while nothing subscribes, nothing is planned or sent, ``/diagnostics`` says ERROR, and the
  robot that comes starts from rest where it is measured); ``~/goal`` (geometry_msgs/PointStamped,
  base frame) sets the goal (one outside the model's workspace is refused with a warning; the
  previous goal stays);
  ``~/hold`` (std_srvs/SetBool) holds until released; ``/diagnostics`` at ``diagnostics_period``.
- deactivate: one last tick with a hold (the brake to rest), then nothing more is published.

Everything but the message plumbing is ROS-free: ``wm_control.runtime`` (loop, commander,
diagnostics), ``wm_control.safety`` and ``ros_nodes.conversions``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ros_nodes.params import declare_parameters, param, read_parameters
from wm_control.runtime.load import BACKENDS

NAME = "wm_mpc_controller"


@dataclass(frozen=True)
class ControllerParams:
    """Parameters of ``wm_mpc_controller`` (shipped values: ``configs/ros/wm_mpc_controller.yaml``)."""

    export: str = param("exports/fr3-reach", "export folder written by wm-control-export (make export)")
    backend: str = param("onnxruntime", "runtime that runs the model", choices=BACKENDS)
    threads: int = param(
        1, "intra-op threads of the runtime (0: all cores; one leaves the other core to the robot)", low=0, high=256
    )
    controller: str = param(
        "fr3_arm_controller", "trajectory controller: commands go to /<controller>/joint_trajectory"
    )
    joint_states: str = param("/franka/joint_states", "joint state topic (1 kHz on a real FR3)")
    margin: float = param(0.004, "time kept free at the end of each control period [s]", low=0.0, high=0.5)
    stale_timeout: float = param(0.05, "a joint state older than this makes the arm hold [s]", low=0.001, high=10.0)
    seed: int = param(0, "seed of the planner's noise", low=0, high=2**31 - 1)
    prepare: bool = param(
        False,
        "run all MPPI iterations but the last between ticks, on the joint state extrapolated one period "
        "ahead; the tick runs the last one on the measured state (joint state to command: one iteration "
        "instead of all, at some cost in goals reached: README); false: every tick solves from scratch",
    )
    safety_position_margin: float = param(
        0.02, "safety layer: distance kept from the joint limits [rad]", low=0.0, high=0.5
    )
    safety_floor: bool = param(True, "safety layer: keep the arm above the surface the robot stands on")
    safety_floor_height: float = param(
        0.0, "safety layer: height of that surface in the base frame (z up) [m]", low=-2.0, high=0.5
    )
    safety_floor_clearance: float = param(
        0.03, "safety layer: distance kept between the arm's lowest point and that surface [m]", low=0.0, high=0.5
    )
    safety_base: bool = param(True, "safety layer: keep the forearm, wrist and hand off the robot's base column")
    safety_base_clearance: float = param(
        0.02, "safety layer: distance kept between them and the base column [m]", low=0.0, high=0.3
    )
    safety_self: bool = param(
        True, "safety layer: keep the forearm, wrist and hand off the upper arm (links 2-4: self-collision)"
    )
    safety_self_clearance: float = param(
        0.02, "safety layer: distance kept between them and the upper arm [m]", low=0.0, high=0.3
    )
    max_lateness: float = param(
        0.02,
        "a chunk ready later than this after its stamp is not sent (the robot goes on with the previous "
        "one); below the executing layer's playout delay, leaving time for delivery [s]",
        low=0.001,
        high=1.0,
    )
    playout_delay: float = param(
        0.03,
        "how far behind the stamps the executing layer runs (wm_mujoco_sim's playout_delay); must be the "
        "model's (its contract's action.playout_delay, 0 if absent) [s]",
        low=0.0,
        high=0.5,
    )
    arrival_radius: float = param(
        0.015,
        "hold the arm at a point goal once the TCP is this close and slower than arrival_speed, until the "
        "goal changes (the planner alone hovers 1-2 cm around it); 0: off [m]",
        low=0.0,
        high=0.5,
    )
    arrival_speed: float = param(0.1, "TCP speed below which an arrival is captured [m/s]", low=0.001, high=10.0)
    arrival_release: float = param(
        0.03, "a held arm pushed further than this from its goal is planned for again [m]", low=0.001, high=1.0
    )
    arrival_lead: float = param(
        0.12,
        "the capture tests where the TCP will be this long ahead at its velocity (where the brake leaves it: "
        "the chunk in flight plays on for the playout delay first); 0: where it is [s]",
        low=0.0,
        high=1.0,
    )
    arrival_rest_speed: float = param(
        0.0,
        "a held arm whose TCP is slower than this rests, and is planned for again if it rests outside "
        "arrival_radius (the brake left it short of the goal) [m/s]; below arrival_speed; 0: held wherever it rests",
        low=0.0,
        high=1.0,
    )
    retreat_stall_time: float = param(
        1.5,
        "when the TCP has come no retreat_progress closer to its goal for this long (and is not at it), take "
        "the arm back to its start pose in joint space, through the safety layer, and plan again from there "
        "(once per goal); 0: off [s]",
        low=0.0,
        high=60.0,
    )
    retreat_progress: float = param(
        0.01, "how much closer to the goal [m] the TCP must come to count as progress", low=0.001, high=1.0
    )
    retreat_max_time: float = param(
        5.0, "a retreat that has not reached the start pose after this long is given up [s]", low=0.1, high=600.0
    )
    diagnostics_period: float = param(1.0, "period of /diagnostics [s]", low=0.05, high=60.0)
    stats_file: str = param(
        "", "JSON file the run's tick statistics are written to at exit (bench/ros_loop.py); empty: none"
    )
    fault_planner_delay: float = param(
        0.0,
        "fault injection for tests and drills: seconds added to every planner call, so that the planner "
        "misses its budget and the fallbacks take over; 0 in operation [s]",
        low=0.0,
        high=1.0,
    )
    autostart: bool = param(
        True, "configure and activate at start-up (simulation); false: wait for lifecycle transitions"
    )


def queued(info: Any) -> float:
    """How long a message waited between its arrival at this process (the middleware's receive time,
    on the system clock) and its callback [s]: the joint state to command latency counts from the
    arrival. 0 where the middleware gives no receive time or one off by more than a second.
    """
    received = info.get("received_timestamp", 0) if isinstance(info, dict) else 0
    waited = (time.time_ns() - int(received)) * 1e-9
    return waited if received and 0.0 <= waited < 1.0 else 0.0


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``ros2 run wm_control wm_mpc_controller``)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import PointStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes.conversions import chunk_to_trajectory, joint_state_arrays, point_goal
    from wm_control.errors import ConfigError, InputError, ModelContractError, WmControlError
    from wm_control.runtime import control_loop, load_backend
    from wm_control.runtime.arrival import ArrivalConfig, GoalArrival
    from wm_control.runtime.checks import check_goal
    from wm_control.runtime.commander import Commander
    from wm_control.runtime.controller import warm_up
    from wm_control.runtime.diagnostics import RunStats, TickLog
    from wm_control.runtime.retreat import Retreat, RetreatConfig
    from wm_control.runtime.slowed import SlowedBackend
    from wm_control.safety import SafetyConfig, SafetyLayer

    class MpcController(LifecycleNode):
        def __init__(self) -> None:
            super().__init__(NAME)
            self.epoch_ns = self.get_clock().now().nanoseconds
            self.commander: Commander | None = None
            self.state: tuple[float, Any, Any] | None = None
            self.state_received = 0.0  # when self.state arrived [s], on the node's clock
            self.run_stats: RunStats | None = None
            self.goal: Any = None
            self.hold = False
            self.log = TickLog()
            self.tick_timers: list[Any] = []
            self.traj_pub = self.diag_pub = None
            self.state_sub: Any = None
            self.unheard = False  # nothing subscribed to the command topic at the last tick

        def now(self) -> float:
            """Seconds since the node started: stamps near 1e9 s would lose the knot grid's precision."""
            return (self.get_clock().now().nanoseconds - self.epoch_ns) * 1e-9

        def on_configure(self, state: Any) -> Any:
            try:
                self.p = p = read_parameters(self, ControllerParams)  # values may have changed since start-up
                backend = load_backend(p.export, p.backend, threads=p.threads)
                warm_up(backend)
                if p.fault_planner_delay > 0.0:
                    backend = SlowedBackend(backend, p.fault_planner_delay)
                    self.get_logger().warning(f"fault injection: planner slowed, {backend.name}")
                loop = control_loop(
                    backend,
                    clock=self.now,
                    margin=p.margin,
                    stale_timeout=p.stale_timeout,
                    seed=p.seed,
                    prepare=p.prepare,
                )
                spec, dt = loop.generator.spec, loop.generator.dt
                # The brake's accelerations and jerks must stay within what the generator accepts as a
                # command state next tick, so the safety layer uses the chunk shaping's fractions.
                shaping = loop.generator.config
                limits = SafetyConfig(
                    position_margin=p.safety_position_margin,
                    acceleration_fraction=shaping.acceleration_fraction,
                    jerk_fraction=shaping.jerk_fraction,
                    floor_height=p.safety_floor_height if p.safety_floor else None,
                    floor_clearance=p.safety_floor_clearance,
                    base_clearance=p.safety_base_clearance if p.safety_base else None,
                    self_clearance=p.safety_self_clearance if p.safety_self else None,
                )
                safety = SafetyLayer(spec, limits, dt, loop.generator.servo_period)
                trained = float(backend.contract.action.get("playout_delay", 0.0))
                if abs(trained - p.playout_delay) > 1e-9:
                    raise ModelContractError(
                        f"model contract field 'action.playout_delay' is {trained} s (the dead time it was trained "
                        f"with); parameter playout_delay says the executing layer runs {p.playout_delay} s behind"
                    )
                arrival = ArrivalConfig(
                    p.arrival_radius, p.arrival_speed, p.arrival_release, p.arrival_lead, p.arrival_rest_speed
                )
                if arrival.enabled and backend.contract.goal.get("name") != "point":
                    raise ConfigError(
                        f"parameter arrival_radius={p.arrival_radius} m needs a point goal; the model's goal is "
                        f"{backend.contract.goal.get('name')!r} (set arrival_radius: 0)"
                    )
                stall = RetreatConfig(
                    stall_time=p.retreat_stall_time, progress=p.retreat_progress, max_time=p.retreat_max_time
                )
                if stall.enabled and backend.contract.goal.get("name") != "point":
                    raise ConfigError(
                        f"parameter retreat_stall_time={p.retreat_stall_time} s needs a point goal; the model's goal "
                        f"is {backend.contract.goal.get('name')!r} (set retreat_stall_time: 0)"
                    )
                retreat = Retreat(spec, loop.generator.velocity_scale, stall) if stall.enabled else None
            except WmControlError as exc:
                self.get_logger().error(f"configure failed: {exc}")
                return TransitionCallbackReturn.FAILURE
            self.commander = Commander(
                loop, safety, self.now, max_lateness=p.max_lateness, arrival=GoalArrival(spec, arrival), retreat=retreat
            )
            self.names = spec.joint_names
            self.goal_space = backend.contract.goal
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            # Depth 1: a command superseded is worthless. A robot that starts listening (restarted) must
            # not be handed a queue of old chunks by the reliable writer, planned while it did not listen.
            self.traj_pub = self.create_lifecycle_publisher(
                JointTrajectory,
                f"/{p.controller}/joint_trajectory",
                QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
            )
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.state_sub = self.create_subscription(JointState, p.joint_states, self.on_state, reliable)
            self.create_subscription(PointStamped, "~/goal", self.on_goal, latched)
            self.create_service(SetBool, "~/hold", self.on_hold)
            c = backend.contract
            self.get_logger().info(f"configured: {c.task} model ({c.model_preset}, {c.planner['num_samples']} x "
                                   f"{c.planner['iterations']}) on {p.backend}, {1 / dt:.0f} Hz")  # fmt: skip
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state: Any) -> Any:
            assert self.commander is not None
            self.commander.restart()  # the robot may have moved while inactive
            self.hold = False
            # Ticks run on the first joint state of each control period (on_state); this timer, at
            # half the period, ticks a period that no state has started within a quarter of it.
            self.tick_timers = [
                self.create_timer(0.5 * self.commander.loop.config.dt, self.on_timer),
                self.create_timer(self.p.diagnostics_period, self.on_diagnostics),
            ]
            return super().on_activate(state)

        def on_deactivate(self, state: Any) -> Any:
            self.hold = True
            self.on_tick()  # the brake to rest goes out before publishing stops
            for timer in self.tick_timers:
                self.destroy_timer(timer)
            self.tick_timers = []
            return super().on_deactivate(state)

        def on_state(self, msg: Any, info: Any) -> None:
            try:
                self.state = joint_state_arrays(msg, self.names, self.epoch_ns)
                self.state_received = self.now() - queued(info)
            except InputError as exc:
                self.log.reject(str(exc))
                self.get_logger().warning(f"joint state ignored: {exc}", throttle_duration_sec=2.0)
                return
            if self.tick_timers and self.commander is not None and self.commander.due(self.state_received) is not None:
                self.on_tick()

        def on_timer(self) -> None:
            """The tick of a period that no joint state started (states late, stale or stopped)."""
            if self.commander is None:
                return
            # The executor runs a due timer before waiting messages: a tick or a prepared solve that ran
            # into this period leaves its states queued. They come first (the first of the period
            # ticks), or this tick would hold on the state the last one used.
            self.take_states()
            age = self.commander.due(self.now())
            if age is not None and age >= 0.25 * self.commander.loop.config.dt:
                self.on_tick()

        def take_states(self) -> None:
            """Handle the joint states waiting in the subscription's queue, oldest first (as the
            executor would, through ``on_state``).
            """
            sub = self.state_sub
            while sub is not None:
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    return
                self.on_state(*taken)

        def on_goal(self, msg: Any) -> None:
            try:
                goal = point_goal(msg)
                outside = check_goal(goal, self.goal_space)
                if outside is not None:
                    raise InputError(outside.text)
            except InputError as exc:
                self.get_logger().warning(f"goal refused ({exc}); keeping {self.goal}")
                return
            self.goal = goal

        def on_hold(self, request: Any, response: Any) -> Any:
            self.hold = bool(request.data)
            response.success, response.message = True, "holding" if self.hold else "released"
            return response

        def on_tick(self) -> None:
            if self.commander is None or self.state is None or self.goal is None:
                return
            if self.traj_pub is not None and not self.listened():
                return
            t, q, dq = self.state
            start, received = self.now(), self.state_received
            out = self.commander.tick(t, q, dq, self.goal, hold=self.hold)
            sent = None
            if out.chunk is not None and self.traj_pub is not None:
                self.traj_pub.publish(chunk_to_trajectory(self.names, out.chunk, self.epoch_ns))
                sent = self.now()
            # The next tick's solve, all iterations but the last, is prepared now that the command is out.
            prepared = self.commander.prepare()
            counters = self.commander.counters
            self.log.add(out, counters)
            if self.run_stats is None:
                self.run_stats = RunStats(self.commander.loop.config.dt)
            self.run_stats.add(start, out, counters, received, sent, prepared)

        def listened(self) -> bool:
            """Whether anything subscribes to the command topic. While nothing does, nothing is planned or
            sent and the commander restarts: the robot that comes starts from rest where it is measured.
            """
            assert self.traj_pub is not None and self.commander is not None
            topic = f"/{self.p.controller}/joint_trajectory"
            count = self.traj_pub.get_subscription_count()
            if count == 0:
                if not self.unheard:
                    self.get_logger().error(f"nothing subscribes to {topic}: not commanding until the robot listens")
                self.commander.restart()
            elif self.unheard:
                self.get_logger().info(f"{topic} has a subscriber again: starting from the measured state")
            self.unheard = count == 0
            self.log.set_listeners(topic, count)
            return count > 0

        def check_rivals(self) -> None:
            """Another node publishing on the command topic means two controllers command one robot."""
            topic = f"/{self.p.controller}/joint_trajectory"
            me = (self.get_name(), self.get_namespace())
            others = [
                f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                for info in self.get_publishers_info_by_topic(topic)
                if (info.node_name, info.node_namespace) != me
            ]
            if others and not self.log.has_rivals():
                self.get_logger().error(f"another controller commands the robot: {topic} is also published by {others}")
            self.log.set_rivals(topic, others)

        def on_diagnostics(self) -> None:
            self.check_rivals()
            report = self.log.report()
            status = DiagnosticStatus(name=f"{NAME}: learned MPC", level=bytes([report.level]), message=report.message)
            status.values = [KeyValue(key=k, value=v) for k, v in report.values.items()]
            msg = DiagnosticArray(status=[status])
            msg.header.stamp = self.get_clock().now().to_msg()
            if self.diag_pub is not None:
                self.diag_pub.publish(msg)

    rclpy.init(args=argv)
    node = MpcController()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        params = declare_parameters(node, ControllerParams)
    except WmControlError as exc:
        node.get_logger().error(str(exc))
        sys.exit(2)
    if params.autostart:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            sys.exit(2)
        node.trigger_activate()
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    finally:
        if params.stats_file and node.run_stats is not None:
            Path(params.stats_file).write_text(json.dumps(node.run_stats.summary(), indent=1) + "\n")
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
