"""The model contract: what an exported model was trained for, stored inside the file.

Observation layout, action meaning and scaling, joint names, control period, robot, planner budget,
model preset, config hash, training step, export time and a hash of the weights travel as ONNX
``metadata_props`` (and ``model.json`` beside the files). A controller builds the contract it
expects and ``check`` refuses a mismatch, naming the field that differs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from wm_control.errors import ModelContractError

__all__ = ["CONTRACT_VERSION", "ModelContract"]

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class ModelContract:
    """Everything a controller must agree with before it runs a model.

    Fields that a runtime checks: ``format_version``, ``robot``, ``joint_names``, ``dt``,
    ``observation`` (layout dict), ``action`` (meaning, range, per-joint velocity scale [rad/s] and
    the chunk shaping config). The rest describes provenance.
    """

    format_version: int
    task: str
    robot: str
    joint_names: tuple[str, ...]
    dt: float
    observation: dict[str, Any]
    action: dict[str, Any]
    planner: dict[str, Any]
    model: dict[str, Any]
    model_preset: str
    config_hash: str
    training_step: int
    export_time: str
    weights_sha256: str

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``model.json``)."""
        d = dataclasses.asdict(self)
        d["joint_names"] = list(self.joint_names)
        return d

    def to_metadata(self) -> dict[str, str]:
        """ONNX ``metadata_props``: every field JSON-encoded under ``wm_control.<field>``."""
        return {f"wm_control.{k}": json.dumps(v, sort_keys=True) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        """Inverse of ``to_dict``; unknown or missing fields are a contract error."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise ModelContractError(f"model metadata lacks contract field(s) {missing}")
        version = data["format_version"]
        if version != CONTRACT_VERSION:
            raise ModelContractError(
                f"contract format_version {version} is not supported (this build reads {CONTRACT_VERSION})"
            )
        values = {k: data[k] for k in names}
        values["joint_names"] = tuple(values["joint_names"])
        return cls(**values)

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> ModelContract:
        """Read a contract from ONNX ``metadata_props``."""
        prefix = "wm_control."
        data = {k[len(prefix) :]: json.loads(v) for k, v in props.items() if k.startswith(prefix)}
        if not data:
            raise ModelContractError("the model has no wm_control metadata (was it exported by wm-control-export?)")
        return cls.from_dict(data)

    # --- checks -----------------------------------------------------------------------------------------
    def check(
        self,
        *,
        robot: str | None = None,
        joint_names: tuple[str, ...] | list[str] | None = None,
        dt: float | None = None,
        observation_layout: str | None = None,
        observation_size: int | None = None,
        velocity_scale: list[float] | tuple[float, ...] | None = None,
    ) -> None:
        """Raise ``ModelContractError`` naming the first field that differs from what is expected."""
        if robot is not None and robot != self.robot:
            raise ModelContractError(
                f"model contract field 'robot' is {self.robot!r}; this controller drives {robot!r}"
            )
        if joint_names is not None and tuple(joint_names) != self.joint_names:
            raise ModelContractError(
                f"model contract field 'joint_names' is {list(self.joint_names)}; the robot reports {list(joint_names)}"
            )
        if dt is not None and not math.isclose(dt, self.dt, rel_tol=1e-9, abs_tol=1e-12):
            raise ModelContractError(
                f"model contract field 'dt' is {self.dt} s ({1 / self.dt:.0f} Hz); the controller runs at {dt} s"
            )
        if observation_layout is not None and observation_layout != self.observation.get("name"):
            raise ModelContractError(
                f"model contract field 'observation' is layout {self.observation.get('name')!r}; "
                f"the controller builds {observation_layout!r}"
            )
        if observation_size is not None and observation_size != self.observation.get("size"):
            raise ModelContractError(
                f"model contract field 'observation' has size {self.observation.get('size')}; got {observation_size}"
            )
        if velocity_scale is not None:
            expected = [float(v) for v in self.action["velocity_scale"]]
            if len(expected) != len(velocity_scale) or any(
                not math.isclose(a, b, rel_tol=1e-6) for a, b in zip(expected, velocity_scale, strict=False)
            ):
                raise ModelContractError(
                    f"model contract field 'action.velocity_scale' is {expected} rad/s; the controller scales by "
                    f"{list(velocity_scale)}"
                )
