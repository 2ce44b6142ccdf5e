"""The model contract of an export, built from the training run and its environment.

The environment tells what the observation vector holds and what an action means; the run config
gives the task, the model and a hash of the whole training config; the weights give their hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from wm_control.config import config_hash, to_dict
from wm_control.contract import CONTRACT_VERSION, ModelContract
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.runtime.weights import weights_sha256

__all__ = ["make_contract"]


def _env_description(env: Any) -> tuple[str, tuple[str, ...], float, dict[str, Any], dict[str, Any]]:
    """robot, joint names, dt, observation layout and action description of a ``sim`` env."""
    base = getattr(env, "unwrapped", env)
    generator = getattr(base, "generator", None)
    task = getattr(base, "task", None)
    if generator is not None and task is not None and hasattr(task, "layout"):
        spec = generator.spec
        action = {
            "meaning": "normalised joint velocity target per joint; 1.0 = velocity_scale [rad/s]",
            "low": -1.0,
            "high": 1.0,
            "velocity_scale": [float(v) for v in generator.velocity_scale],
            "chunk": to_dict(generator.config),
        }
        return spec.name, tuple(spec.joint_names), float(generator.dt), task.layout.to_dict(), action
    # dm_control and other gymnasium envs: a flat observation without named fields.
    size = int(env.observation_space.shape[0])
    low, high = env.action_space.low, env.action_space.high
    action = {"meaning": "environment action", "low": float(low.min()), "high": float(high.max()), "velocity_scale": []}
    dt_env = float(getattr(base, "dt", 0.0) or 0.0)
    return "none", (), dt_env, {"name": "flat", "size": size, "fields": []}, action


def make_contract(
    run: dict[str, Any], env: Any, model: WorldModel, planner: MppiConfig, training_step: int
) -> ModelContract:
    """The contract of ``model`` trained by ``run`` on ``env``, planning with ``planner``."""
    robot, joints, dt_s, observation, action = _env_description(env)
    mc = to_dict(model.cfg)
    return ModelContract(
        format_version=CONTRACT_VERSION,
        task=str(run["task"]["name"]),
        robot=robot,
        joint_names=joints,
        dt=dt_s,
        observation=observation,
        action=action,
        planner={f.name: getattr(planner, f.name) for f in dataclasses.fields(planner)},
        model=mc,
        model_preset=str(mc.get("preset", "custom")),
        config_hash=config_hash(run),
        training_step=int(training_step),
        export_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        weights_sha256=weights_sha256(model),
    )
