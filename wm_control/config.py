"""Frozen-dataclass configs to and from plain data (YAML/JSON/hydra dicts), and a stable hash.

Configs are owned by the module they configure; entry points turn hydra's dicts into them with
``from_dict`` (which rejects unknown keys by name), and checkpoints / exported models store
``to_dict`` output and ``config_hash``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from wm_control.errors import ConfigError

__all__ = ["config_hash", "from_dict", "to_dict"]

T = TypeVar("T")


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass type inside an annotation like ``Foo`` or ``Foo | None``."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _dataclass_type(arg)
            if found is not None:
                return found
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | T | None, path: str | None = None) -> T:
    """Build dataclass ``cls`` from a mapping (nested dataclasses too; lists become tuples).

    ``None`` gives the defaults; an instance of ``cls`` is returned unchanged. Unknown keys raise
    ``ConfigError`` listing the valid ones; value checks are the dataclass's own ``__post_init__``.
    """
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    where = path or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of fields; got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _dataclass_type(hints[key])
        if sub is not None and isinstance(value, Mapping):
            kwargs[key] = from_dict(sub, value, f"{where}.{key}")
        else:
            kwargs[key] = _plain(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # e.g. a required field missing
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data (JSON-ready) view of a dataclass config; tuples become lists."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return v

    out = conv(config)
    if not isinstance(out, dict):
        raise ConfigError(f"to_dict expects a dataclass instance; got {type(config).__name__}")
    return out


def config_hash(config: Any) -> str:
    """Stable short hash (16 hex digits) of a config's plain-data form."""
    blob = json.dumps(to_dict(config) if not isinstance(config, dict) else config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
