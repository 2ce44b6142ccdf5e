"""Registry of simulation tasks by name, with tags, their gymnasium ids and how each is trained.

A task module registers a factory with ``@register(...)``; every module in ``sim/tasks`` is imported
when ``sim`` is, so adding a task is adding one file. The entry owns what training needs to know
about the task beyond its env: whether episodes end early (``episodic``) and its training planner
budget (``planner``, fields of ``MppiConfig`` that differ from TD-MPC2's defaults). The env factory
owns the control contract (``dt``, action scaling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import gymnasium as gym

from wm_control.errors import ConfigError

__all__ = ["TaskEntry", "get_task", "list_tasks", "make", "register"]

EnvFactory = Callable[..., gym.Env]


@dataclass(frozen=True)
class TaskEntry:
    """A registered task: ``factory(**kwargs)`` builds its gymnasium env.

    episodic: episodes end early on failure (a reflex): the model learns to predict terminations.
    planner: the training planner budget, as ``MppiConfig`` fields that differ from its defaults
        (TD-MPC2's); empty: TD-MPC2's budget.
    """

    name: str
    factory: EnvFactory
    tags: frozenset[str]
    gym_id: str
    description: str
    episodic: bool = False
    planner: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


_TASKS: dict[str, TaskEntry] = {}


def register(
    name: str,
    *,
    gym_id: str,
    tags: tuple[str, ...] = (),
    description: str = "",
    episodic: bool = False,
    planner: Mapping[str, Any] | None = None,
) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator registering an env factory under ``name`` and, with gymnasium, under ``gym_id``."""

    def deco(factory: EnvFactory) -> EnvFactory:
        budget = MappingProxyType(dict(planner or {}))
        add(TaskEntry(name, factory, frozenset(tags), gym_id, description, episodic, budget))
        return factory

    return deco


def add(entry: TaskEntry) -> None:
    """Register a task entry (used by ``register`` and by generated task families)."""
    if entry.name in _TASKS:
        raise ConfigError(f"task {entry.name!r} is registered twice")
    _TASKS[entry.name] = entry
    if entry.gym_id not in gym.registry:
        gym.register(id=entry.gym_id, entry_point=entry.factory)


def get_task(name: str) -> TaskEntry:
    """Look up a registered task; unknown names list the valid ones."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(_TASKS))}") from None


def list_tasks(tag: str | None = None) -> list[str]:
    """Names of registered tasks, optionally only those carrying ``tag``."""
    return sorted(n for n, e in _TASKS.items() if tag is None or tag in e.tags)


def make(name: str, **kwargs: Any) -> gym.Env:
    """Build the env of task ``name`` (keyword arguments go to its factory)."""
    return get_task(name).factory(**kwargs)
