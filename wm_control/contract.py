"""The control contract a model is trained under, and the model contract an export carries.

``ControlContract`` is recorded when training starts, from the env the model learns on (robot, joint
names, control period ``dt``, observation layout with units, action meaning and scaling, including
how actions become trajectory chunks). Checkpoints store it; export copies it, never rebuilding it
from today's code. ``ModelContract`` is that plus provenance (task, planner budget baked into the
graphs, model config, hashes), stored in ``model.json`` beside the exported files and inside every
ONNX file (``metadata_props``). A controller states what it drives and ``ModelContract.check``
refuses a mismatch, naming the field that differs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wm_control.errors import ModelContractError

__all__ = [
    "CHUNK_FIELDS_ADDED",
    "CONTRACT_VERSION",
    "ControlContract",
    "ModelContract",
    "first_difference",
    "with_added_chunk_fields",
]

# 2: the goal's workspace is part of the contract, and model.json lists every exported file's sha256.
CONTRACT_VERSION = 2

# ChunkConfig fields added after contracts of this version were first written, with the value that
# shapes chunks as before them: a contract that does not record one was made without it.
CHUNK_FIELDS_ADDED: dict[str, Any] = {"posture_gain": 0.0}


def with_added_chunk_fields(action: Mapping[str, Any]) -> dict[str, Any]:
    """A contract's ``action`` with the ``CHUNK_FIELDS_ADDED`` its ``chunk`` predates filled in, for
    comparison with what today's code records.
    """
    chunk = action.get("chunk")
    return {**action, "chunk": {**CHUNK_FIELDS_ADDED, **chunk}} if isinstance(chunk, Mapping) else dict(action)


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """The dotted path of the first place where two plain-data values differ (``None`` if equal).

    Floats compare with a relative tolerance of 1e-9 (JSON round trips); lists compare by length,
    then element by element (``path[i]``); dicts by key set, then value by value.
    """
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in sorted(set(expected) | set(actual), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in expected or key not in actual:
                return sub
            found = first_difference(expected[key], actual[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        if not isinstance(actual, Sequence) or isinstance(actual, str) or len(expected) != len(actual):
            return path
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected is actual else path
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return None if math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12) else path
    return None if expected == actual else path


def _lookup(data: Any, path: str) -> Any:
    """The value at a ``first_difference`` path (``"<missing>"`` where it does not exist)."""
    node = data
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return "<missing>"
    return node


@dataclass(frozen=True)
class ControlContract:
    """What a model was trained to control, recorded at training time.

    robot: robot name (``"fr3"``; ``"none"`` for envs that are not a robot, e.g. dm_control).
    joint_names: the robot's joints, in observation and action order.
    dt: control period [s]: one action per ``dt``.
    observation: the layout (``ObservationLayout.to_dict()``: ``name``, ``size``, ``fields`` with
        ``name``, ``size``, ``unit``, ``description``).
    action: ``meaning``, ``size``, ``low``, ``high``, ``velocity_scale`` (per joint [rad/s] at action
        1.0; empty when actions are not joint velocities) and ``chunk`` (the ``ChunkConfig`` the
        actions were shaped with, its servo period filled in).
    goal: what a goal is and where the model was trained to reach: ``name``, ``size``, ``unit``,
        ``frame`` and the box ``low`` / ``high`` that deployed goals must lie in (``name`` ``"none"``
        and ``size`` 0 for tasks without a goal).
    """

    robot: str
    joint_names: tuple[str, ...]
    dt: float
    observation: dict[str, Any]
    action: dict[str, Any]
    goal: dict[str, Any]

    def __post_init__(self) -> None:
        if not (isinstance(self.dt, int | float) and self.dt > 0 and math.isfinite(self.dt)):
            raise ModelContractError(f"contract field 'dt' is {self.dt!r}; valid: a period in seconds > 0")
        for name in ("observation", "action", "goal"):
            if not isinstance(getattr(self, name), Mapping):
                raise ModelContractError(f"contract field {name!r} must be a mapping; got {getattr(self, name)!r}")
        if not isinstance(self.observation.get("size"), int):
            raise ModelContractError(f"contract field 'observation.size' is {self.observation.get('size')!r}")
        object.__setattr__(self, "joint_names", tuple(self.joint_names))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``state.json`` and ``model.json``)."""
        return {
            "robot": self.robot,
            "joint_names": list(self.joint_names),
            "dt": self.dt,
            "observation": self.observation,
            "action": self.action,
            "goal": self.goal,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlContract:
        """Inverse of ``to_dict``; a missing field is a ``ModelContractError`` naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelContractError(f"control contract lacks field(s) {missing}")
        return cls(**{n: data[n] for n in names})


@dataclass(frozen=True)
class ModelContract:
    """Everything a controller must agree with before it runs a model.

    The control fields (``robot``, ``joint_names``, ``dt``, ``observation``, ``action``, ``goal``:
    see ``ControlContract``) are what a runtime checks; ``format_version`` what it can read. The rest
    describes provenance: ``planner`` (the budget baked into the planner graphs), ``model`` (the
    ``ModelConfig``), ``config_hash`` of the training run, ``training_step``, ``export_time`` and
    ``weights_sha256``.
    """

    format_version: int
    task: str
    robot: str
    joint_names: tuple[str, ...]
    dt: float
    observation: dict[str, Any]
    action: dict[str, Any]
    goal: dict[str, Any]
    planner: dict[str, Any]
    model: dict[str, Any]
    model_preset: str
    config_hash: str
    training_step: int
    export_time: str
    weights_sha256: str

    @property
    def control(self) -> ControlContract:
        """The control fields."""
        return ControlContract(self.robot, self.joint_names, self.dt, self.observation, self.action, self.goal)

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
        joint_names: Sequence[str] | None = None,
        dt: float | None = None,
        observation: Mapping[str, Any] | None = None,
        velocity_scale: Sequence[float] | None = None,
        chunk: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ``ModelContractError`` naming the first field that differs from what the controller
        does: the robot, its joint names, the control period [s], the observation layout it builds
        (compared field by field, units included), the velocity at action 1.0 [rad/s] and the chunk
        shaping (``ChunkConfig`` as a dict, servo period included).
        """
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
        expected = {
            "observation": (self.observation, observation, "the controller builds"),
            "action.velocity_scale": (
                self.action.get("velocity_scale"),
                None if velocity_scale is None else [float(v) for v in velocity_scale],
                "the controller scales by",
            ),
            "action.chunk": (
                with_added_chunk_fields(self.action).get("chunk"),
                chunk,
                "the controller shapes chunks with",
            ),
        }
        for field, (recorded, actual, says) in expected.items():
            if actual is None:
                continue
            where = first_difference(recorded, actual)
            if where is not None:
                name = field + ("" if not where or where.startswith("[") else ".") + where
                raise ModelContractError(
                    f"model contract field {name!r} is {_lookup(recorded, where)!r}; {says} {_lookup(actual, where)!r}"
                )
