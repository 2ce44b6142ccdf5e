"""ROS 2 nodes of wm-control: thin rclpy adapters around the ROS-free library.

- ``wm_mpc_controller`` (``mpc_controller.py``): the learned MPC planner, a lifecycle node;
- ``wm_mujoco_sim`` (``mujoco_sim.py``): the simulated FR3 behind franka_ros2's topics;
- ``wm_goal_publisher`` (``goal_publisher.py``): a seeded scenario of reach goals and its results.

``NODES`` maps each executable to its parameter schema (``params.py``), for the launch checker.
rclpy is imported only when a node runs, so the schemas load without ROS.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NODES"]


def _schemas() -> dict[str, Any]:
    from ros_nodes.goal_publisher import GoalParams
    from ros_nodes.mpc_controller import ControllerParams
    from ros_nodes.mujoco_sim import SimParams

    return {"wm_mpc_controller": ControllerParams, "wm_mujoco_sim": SimParams, "wm_goal_publisher": GoalParams}


def __getattr__(name: str) -> Any:
    if name == "NODES":
        return _schemas()
    raise AttributeError(name)
