"""Error hierarchy: every error a user can cause is a ``WmControlError`` with a message that says
which value was wrong and what the valid choices are.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExportError",
    "InputError",
    "ModelContractError",
    "WmControlError",
    "check_finite",
    "check_range",
    "check_shape",
]


class WmControlError(Exception):
    """Base class of all errors raised on purpose by wm-control."""


class ConfigError(WmControlError, ValueError):
    """A configuration value is missing, of the wrong type or out of its valid range."""


class InputError(WmControlError, ValueError):
    """Data entering the library (an action, an observation, a joint state) is malformed."""


class ModelContractError(WmControlError):
    """A model file does not match the robot, rate or layout it is asked to serve."""


class ExportError(WmControlError):
    """Exporting or loading an exported artefact failed."""


class CheckpointError(WmControlError):
    """A checkpoint (or a model-only copy) is missing, truncated, corrupted or edited; the message
    names the file and what is wrong with it.
    """


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ``ConfigError`` naming ``name`` unless ``low <= value <= high`` (bounds optional)."""
    ok = True
    if low is not None:
        ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok or value != value:  # value != value catches NaN
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        lb = "[" if low_inclusive else "("
        rb = "]" if high_inclusive else ")"
        raise ConfigError(f"{name}={value!r} is out of range; valid: {lb}{lo}, {hi}{rb}")


def check_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    """Raise ``InputError`` unless ``array.shape == shape``."""
    if tuple(array.shape) != tuple(shape):
        raise InputError(f"{name} has shape {tuple(array.shape)}; expected {tuple(shape)}")


def check_finite(name: str, array: np.ndarray, labels: Iterable[str] | None = None) -> None:
    """Raise ``InputError`` naming the first non-finite entries of ``array``."""
    bad = ~np.isfinite(array)
    if bad.any():
        idx = np.flatnonzero(bad.reshape(-1))[:5]
        names = list(labels) if labels is not None else None
        where = (
            ", ".join(names[i] for i in idx)
            if names is not None and len(names) == array.size
            else ", ".join(f"index {i}" for i in idx)
        )
        raise InputError(f"{name} contains NaN or inf at {where}")
