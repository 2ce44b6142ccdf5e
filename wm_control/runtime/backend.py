"""The ``Backend`` protocol: one exported world model + planner, whatever runs it.

Every backend (torch eager, ONNX Runtime, TensorRT) takes and returns numpy arrays and exposes the
four stages of the planner (``wm_control.planning.solve``), which the exported graphs are traced from:

- ``policy(obs)``: the policy prior's deterministic action (the cheap fallback);
- ``plan(obs, mean, noise, explore_scale)``: one complete MPPI solve;
- ``plan_init(obs, pi_eps)`` and ``plan_step(...)``: the same solve split per iteration, so a
  deadline-aware loop can stop between iterations and keep the best-so-far action.

All random draws are inputs (``PlanNoise`` arrays from ``wm_control.runtime.noise``): a backend is a
deterministic function, and two backends given the same inputs must agree (the parity tests).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from wm_control.contract import ModelContract
from wm_control.planning.config import MppiConfig

__all__ = ["Backend", "PlanOutput", "StepNoise", "StepOutput", "PlanNoiseArrays"]


class PlanNoiseArrays(NamedTuple):
    """Every random draw of one solve, as numpy arrays (float32, ``q_heads`` int64), in the shapes of
    ``wm_control.planning.config.noise_shapes``: pi_eps ``(H, P, A)``; samples ``(I, H, S, A)``;
    value_eps ``(I, K, A)``; q_heads ``(I, 2)``; gumbel ``(K,)``; explore ``(A,)``.
    """

    pi_eps: np.ndarray
    samples: np.ndarray
    value_eps: np.ndarray
    q_heads: np.ndarray
    gumbel: np.ndarray
    explore: np.ndarray

    def step(self, i: int) -> StepNoise:
        """The draws one iteration ``i`` uses (for ``Backend.plan_step``)."""
        return StepNoise(self.samples[i], self.value_eps[i], self.q_heads[i], self.gumbel, self.explore)


class StepNoise(NamedTuple):
    """Draws of one MPPI iteration: samples ``(H, S, A)``, value_eps ``(K, A)``, q_heads ``(2,)``,
    gumbel ``(K,)``, explore ``(A,)``.
    """

    samples: np.ndarray
    value_eps: np.ndarray
    q_heads: np.ndarray
    gumbel: np.ndarray
    explore: np.ndarray


class PlanOutput(NamedTuple):
    """Result of a full solve: action ``(A,)`` in [-1, 1], the shifted warm start ``(H, A)`` for the
    next tick, elite value mean and std (floats), and the final sampling std of the first action ``(A,)``.
    """

    action: np.ndarray
    mean: np.ndarray
    elite_value_mean: float
    elite_value_std: float
    std: np.ndarray


class StepOutput(NamedTuple):
    """Result of one iteration: the refit (unshifted) mean and std ``(H, A)``, the action this
    iteration would execute ``(A,)``, and the elite value mean and std.
    """

    mean: np.ndarray
    std: np.ndarray
    action: np.ndarray
    elite_value_mean: float
    elite_value_std: float


@runtime_checkable
class Backend(Protocol):
    """A loaded model that plans. ``name`` identifies the runtime (``"torch"``, ``"onnxruntime"``,
    ``"tensorrt"``); ``contract`` is what the model was trained for; ``planner`` the baked-in budget.
    """

    name: str
    contract: ModelContract
    planner: MppiConfig
    obs_dim: int
    action_dim: int
    latent_dim: int
    num_q: int

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """``obs (O,)`` -> action ``(A,)`` (policy-prior mean, squashed)."""
        ...

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:
        """One full MPPI solve from warm start ``mean (H, A)``."""
        ...

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``obs (O,)``, ``pi_eps (H, P, A)`` -> latent ``(dz,)`` and prior trajectories ``(H, P, A)``."""
        ...

    def plan_step(
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        """One MPPI iteration from sampling distribution ``mean, std (H, A)``."""
        ...
