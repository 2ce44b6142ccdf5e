"""The control contract of a sim env, as training records it (``wm_control.contract.ControlContract``).

An FR3 env describes itself: robot, joint names, control period, the task's observation layout with
units, what an action means (velocity scaling and the chunk shaping, servo period included) and the
task's goal space (``goal_space()``, where the task has one). Any other gymnasium env (dm_control) is
described by its spaces: a flat observation, an action range, no goal.
"""

from __future__ import annotations

from typing import Any

from wm_control.config import to_dict
from wm_control.contract import ControlContract
from wm_control.errors import ModelContractError

__all__ = ["control_contract"]

JOINT_VELOCITY_ACTION = "normalised joint velocity target per joint; 1.0 = velocity_scale [rad/s]"
NO_GOAL: dict[str, Any] = {"name": "none", "size": 0}


def control_contract(env: Any) -> ControlContract:
    """What a model trained on ``env`` is trained to control."""
    base = getattr(env, "unwrapped", env)
    generator = getattr(base, "generator", None)
    task = getattr(base, "task", None)
    size = int(env.action_space.shape[0])
    if generator is not None and task is not None and hasattr(task, "layout"):
        spec = generator.spec
        action = {
            "meaning": JOINT_VELOCITY_ACTION,
            "size": size,
            "low": -1.0,
            "high": 1.0,
            "velocity_scale": [float(v) for v in generator.velocity_scale],
            "chunk": to_dict(generator.config),
        }
        delay = float(getattr(getattr(base, "config", None), "playout_delay", 0.0))
        if delay > 0.0:  # chunks start this long after their tick: the deployed layer must run as far behind
            action["playout_delay"] = delay
        goal = task.goal_space()
        return ControlContract(
            spec.name, tuple(spec.joint_names), float(generator.dt), task.layout.to_dict(), action, goal
        )
    dt = getattr(base, "dt", None)
    if dt is None:
        raise ModelContractError(f"{type(base).__name__} has no control period 'dt' [s] to record in the contract")
    low, high = env.action_space.low, env.action_space.high
    flat = {"name": "flat", "size": int(env.observation_space.shape[0]), "fields": []}
    action = {"meaning": "environment action", "size": size, "low": float(low.min()), "high": float(high.max())}
    return ControlContract("none", (), float(dt), flat, {**action, "velocity_scale": []}, NO_GOAL)
