"""What an FR3 task is: reset + observation + reward (with its residual terms) + success.


The env (``sim.env.FR3Env``) owns the physics, the control contract and the episode bookkeeping;
a task only decides where episodes start, what the agent sees, and how it is scored.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

from sim.physics import FR3Sim
from wm_control.chunking import CommandState
from wm_control.observation import ObservationLayout

__all__ = ["FR3Task", "Reward"]


class Reward(NamedTuple):
    """The outcome of a control tick: scalar reward, the named terms it was summed from, whether the
    success condition holds, and task metrics for ``info`` (e.g. distance to the goal).
    """

    total: float
    terms: dict[str, float]
    success: bool
    metrics: dict[str, float]


class FR3Task(Protocol):
    """An FR3 task. Cost weights and ranges are data on the task's config."""

    layout: ObservationLayout

    def reset(self, physics: FR3Sim, rng: np.random.Generator) -> np.ndarray:
        """Sample the episode (goal, ...) and return the initial joint positions ``(7,)`` [rad]."""
        ...

    def observation(self, physics: FR3Sim, q: np.ndarray, dq: np.ndarray, command: CommandState) -> np.ndarray:
        """Observation vector (``layout``) from measured (possibly noisy) joint state and the command
        state of the trajectory generator.
        """
        ...

    def evaluate(self, physics: FR3Sim) -> Reward:
        """Reward, success and metrics of the state reached after a control tick (or a reset)."""
        ...

    def goal_marker(self) -> np.ndarray | None:
        """Position [m] of the scene's ``target`` marker, or ``None`` to hide it."""
        ...

    def goal_space(self) -> dict[str, Any]:
        """What a deployed goal is (``name``, ``size``, ``unit``, ``frame``) and the box ``low`` /
        ``high`` it must lie in: recorded in the model contract, checked by the control loop.
        ``{"name": "none", "size": 0}`` for a task without a goal.
        """
        ...
