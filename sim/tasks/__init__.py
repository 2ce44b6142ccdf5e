"""Simulation tasks. Each module registers its tasks; ``sim`` imports them all (see ``load_all``)."""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["load_all"]

_SKIP = {"base", "registry"}


def load_all() -> None:
    """Import every task module in this package so its ``@register`` decorators run."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP:
            importlib.import_module(f"{__name__}.{info.name}")
