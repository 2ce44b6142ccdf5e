"""Node parameters as typed, validated dataclasses: one schema per node.

A node's parameters are the fields of a frozen dataclass; each field is made with ``param(default,
description, low=, high=, choices=)``. ``declare_parameters(node, schema)`` declares every field on an
rclpy node (type, description and range in its descriptor, so ``ros2 param describe`` shows them),
reads the values back, checks types and ranges, and returns the dataclass; a value of the wrong type
or out of range raises ``ConfigError`` naming the parameter and the valid range, and a parameter the
node was given but does not declare (a typo in a params file or on the command line) is reported too.
The shipped values live in ``configs/ros/<node>.yaml`` (ros2 params-file format); launch files
override them, never define new ones.

rclpy is imported only by ``declare_parameters``; the schema itself is plain Python, testable
without ROS.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from wm_control.errors import ConfigError

__all__ = [
    "ParamSpec",
    "declare_parameters",
    "from_values",
    "param",
    "params_file",
    "read_parameters",
    "render_params_file",
    "schema_of",
    "shipped_values",
]

T = TypeVar("T")
_TYPES = (bool, int, float, str)
# rclpy's own parameters, present on every node.
_BUILTIN = ("use_sim_time", "start_type_description_service")


def param(
    default: Any,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A schema field: its default, what it means (with units), and its valid range or choices."""
    return dataclasses.field(
        default=default, metadata={"description": description, "low": low, "high": high, "choices": choices}
    )


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: name, Python type, default, description and valid range / choices."""

    name: str
    type: type
    default: Any
    description: str
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None

    def check(self, value: Any) -> Any:
        """``value`` converted to the parameter's type, or ``ConfigError`` naming the parameter."""
        kind = self.type
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(
                f"parameter {self.name!r} = {value!r} has type {type(value).__name__}; expected {kind.__name__}"
            )
        if kind in (int, float) and (
            not math.isfinite(value)
            or (self.low is not None and value < self.low)
            or (self.high is not None and value > self.high)
        ):
            lo = "-inf" if self.low is None else repr(self.low)
            hi = "inf" if self.high is None else repr(self.high)
            raise ConfigError(f"parameter {self.name!r} = {value!r} is out of range; valid: [{lo}, {hi}]")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"parameter {self.name!r} = {value!r}; valid: {list(self.choices)}")
        return value


def schema_of(cls: type) -> list[ParamSpec]:
    """The parameter specs of schema dataclass ``cls``, in field order."""
    specs = []
    for f in dataclasses.fields(cls):
        kind = type(f.default)
        if kind not in _TYPES:
            raise ConfigError(f"{cls.__name__}.{f.name}: parameters are bool, int, float or str; got {kind.__name__}")
        meta = f.metadata
        choices = tuple(meta["choices"]) if meta.get("choices") is not None else None
        specs.append(ParamSpec(f.name, kind, f.default, meta.get("description", ""), meta.get("low"),
                               meta.get("high"), choices))  # fmt: skip
    return specs


def from_values(cls: type[T], values: Mapping[str, Any]) -> T:
    """Schema dataclass ``cls`` from parameter values (defaults for the missing ones).

    Raises:
        ConfigError: an unknown name (listing the valid ones), a wrong type or an out-of-range value.
    """
    specs = {s.name: s for s in schema_of(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {cls.__name__}; valid: {sorted(specs)}")
    return cls(**{name: specs[name].check(value) for name, value in values.items()})


def params_file(node_name: str, config_dir: str | Path) -> Path:
    """The shipped parameter file of a node: ``<config_dir>/ros/<node_name>.yaml``."""
    return Path(config_dir) / "ros" / f"{node_name}.yaml"


def shipped_values(path: str | Path, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ros2 params file (``ConfigError`` if malformed)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the parameters file ({exc})") from None
    try:
        values = data[node_name]["ros__parameters"]
    except (KeyError, TypeError):
        raise ConfigError(f"{path}: expected '{node_name}: {{ros__parameters: {{...}}}}'") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: {node_name}.ros__parameters must be a mapping")
    return values


def declare_parameters(node: Any, cls: type[T]) -> T:
    """Declare every field of schema ``cls`` on rclpy ``node`` and return the validated values.

    Raises:
        ConfigError: a wrong type, an out-of-range value, or a parameter the node was given (params
            file, ``-p``) that the schema does not declare.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    specs = schema_of(cls)
    values: dict[str, Any] = {}
    for spec in specs:
        descriptor = ParameterDescriptor(name=spec.name, description=spec.description)
        if spec.choices is not None:
            descriptor.additional_constraints = f"one of {list(spec.choices)}"
        if spec.type is float and (spec.low is not None or spec.high is not None):
            lo = -math.inf if spec.low is None else float(spec.low)
            hi = math.inf if spec.high is None else float(spec.high)
            descriptor.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
        if spec.type is int and (spec.low is not None or spec.high is not None):
            lo_i = -(2**63) if spec.low is None else int(spec.low)
            hi_i = 2**63 - 1 if spec.high is None else int(spec.high)
            descriptor.integer_range = [IntegerRange(from_value=lo_i, to_value=hi_i, step=0)]
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise ConfigError(f"parameter {spec.name!r}: {exc}") from None
        values[spec.name] = spec.check(value)
    # rclpy keeps what the node was given in its overrides; a name no field declares is a mistake the
    # user must hear about (rclpy itself ignores it silently).
    given = getattr(node, "_parameter_overrides", {})
    declared = {s.name for s in specs}
    unknown = sorted(n for n in given if n not in declared and n not in _BUILTIN and not n.startswith("qos_overrides."))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {node.get_name()}; valid: {sorted(declared)}")
    return cls(**values)


def read_parameters(node: Any, cls: type[T]) -> T:
    """The current values of the (declared) parameters of schema ``cls`` on ``node``, checked again
    (``ros2 param set`` may have changed them since ``declare_parameters``).
    """
    return cls(**{s.name: s.check(node.get_parameter(s.name).value) for s in schema_of(cls)})


def render_params_file(cls: type, node_name: str) -> str:
    """The shipped params file of a node, rendered from its schema: every parameter with its default
    and its description as a comment (``python -m ros_nodes.params`` writes them all).
    """
    import json

    lines = [
        f"# {node_name}: shipped parameter values (ros2 params-file format), written from the schema",
        f"# {cls.__module__}.{cls.__name__} by `python -m ros_nodes.params`. Each parameter's meaning,",
        "# unit and valid range are declared there; launch files override values, never add names.",
        f"{node_name}:",
        "  ros__parameters:",
    ]
    for spec in schema_of(cls):
        value = json.dumps(spec.default)  # JSON scalars are YAML scalars (true/false, numbers, "strings")
        if spec.choices is not None:
            valid = f"one of {', '.join(spec.choices)}"
        elif spec.low is not None or spec.high is not None:
            lo, hi = ("-inf" if spec.low is None else spec.low), ("inf" if spec.high is None else spec.high)
            valid = f"in [{lo}, {hi}]"
        else:
            valid = ""
        lines.append(f"    {spec.name}: {value}  # {spec.description}" + (f"; {valid}" if valid else ""))
    return "\n".join(lines) + "\n"


def _write_shipped(config_dir: Path) -> list[Path]:
    """Write ``configs/ros/<node>.yaml`` of every node from its schema."""
    from ros_nodes import NODES

    written = []
    for name, schema in NODES.items():
        path = params_file(name, config_dir)
        path.write_text(render_params_file(schema, name))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in _write_shipped(Path(__file__).resolve().parent.parent / "configs"):
        print(f"wrote {path}")
