"""The model contract of an export: the control contract the checkpoint recorded at training time,
plus provenance (task, planner budget baked into the graphs, model config, hashes).

The control part is copied from the checkpoint, never rebuilt from today's code: a model trained on
an older observation layout or action scaling keeps describing what it was trained on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from wm_control.config import config_hash, to_dict
from wm_control.contract import CONTRACT_VERSION, ControlContract, ModelContract
from wm_control.errors import ModelContractError
from wm_control.model.weights import weights_sha256
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig

__all__ = ["make_contract"]


def make_contract(
    run: dict[str, Any], control: ControlContract, model: WorldModel, planner: MppiConfig, training_step: int
) -> ModelContract:
    """The contract of ``model``, trained by ``run`` under ``control``, planning with ``planner``.

    Raises:
        ModelContractError: the recorded observation or action size differs from the model's.
    """
    mc = to_dict(model.cfg)
    sizes = {"observation.size": (control.observation["size"], mc["obs_dim"])}
    if "size" in control.action:
        sizes["action.size"] = (control.action["size"], mc["action_dim"])
    for field, (recorded, actual) in sizes.items():
        if recorded != actual:
            raise ModelContractError(f"control contract field {field!r} is {recorded}; the model takes {actual}")
    return ModelContract(
        format_version=CONTRACT_VERSION,
        task=str(run["task"]["name"]),
        robot=control.robot,
        joint_names=control.joint_names,
        dt=control.dt,
        observation=control.observation,
        action=control.action,
        goal=control.goal,
        planner={f.name: getattr(planner, f.name) for f in dataclasses.fields(planner)},
        model=mc,
        model_preset=str(mc.get("preset", "custom")),
        config_hash=config_hash(run),
        training_step=int(training_step),
        export_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        weights_sha256=weights_sha256(model),
    )
