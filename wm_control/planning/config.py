"""The planner's torch-free data: its budget (``MppiConfig``), the shapes of its random draws
(``noise_shapes``) and the warm-start shift.

Runtimes without torch (onnxruntime on a robot PC) read the budget from the model contract, draw the
noise with numpy in the shapes given here, and shift warm starts with the same ``shift`` the exported
graphs were traced from, so the table of shapes and the shift exist once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from wm_control.errors import check_range

__all__ = ["NOISE_FIELDS", "MppiConfig", "noise_shapes", "shift"]


@dataclass(frozen=True)
class MppiConfig:
    """Planner budget and shape (TD-MPC2 defaults).

    horizon: planning horizon H [control steps]; iterations: refits per solve; num_samples: K
    trajectories per iteration, of which num_pi_trajs come from the policy prior; num_elites: E best
    kept per iteration; temperature: inverse temperature of the elite weights; min_std / max_std:
    bounds of the sampling std (max_std is also the initial std); discount: per-step discount.
    """

    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    temperature: float = 0.5
    min_std: float = 0.05
    max_std: float = 2.0
    discount: float = 0.99

    def __post_init__(self) -> None:
        check_range("planner.horizon", self.horizon, 1, 64)
        check_range("planner.iterations", self.iterations, 1, 64)
        check_range("planner.num_samples", self.num_samples, 2, 1 << 20)
        check_range("planner.num_pi_trajs", self.num_pi_trajs, 0, self.num_samples - 1)
        check_range("planner.num_elites", self.num_elites, 1, self.num_samples)
        check_range("planner.temperature", self.temperature, 0.0, 1e6, low_inclusive=False)
        check_range("planner.min_std", self.min_std, 0.0, 10.0)
        check_range("planner.max_std", self.max_std, self.min_std, 10.0, low_inclusive=False)
        check_range("planner.discount", self.discount, 0.0, 1.0)


# The random draws of one solve, in the order every runtime passes them.
NOISE_FIELDS = ("pi_eps", "samples", "value_eps", "q_heads", "gumbel", "explore")


def noise_shapes(cfg: MppiConfig, action_dim: int) -> dict[str, tuple[int, ...]]:
    """Shape of each random draw of one solve (``NOISE_FIELDS`` order).

    ``P = num_pi_trajs``, ``S = num_samples - P``, ``I = iterations``, ``K = num_samples``:
    pi_eps ``(H, P, A)`` policy-prior trajectories; samples ``(I, H, S, A)`` Gaussian samples;
    value_eps ``(I, K, A)`` policy action at the horizon; q_heads ``(I, 2)`` the two Q heads averaged
    in each iteration (integers); gumbel ``(K,)`` elite pick, one variate per sample; explore ``(A,)``.
    """
    H, I, K, P, A = cfg.horizon, cfg.iterations, cfg.num_samples, cfg.num_pi_trajs, action_dim
    return {
        "pi_eps": (H, P, A),
        "samples": (I, H, K - P, A),
        "value_eps": (I, K, A),
        "q_heads": (I, 2),
        "gumbel": (K,),
        "explore": (A,),
    }


_Array = TypeVar("_Array", bound=Any)


def shift(mean: _Array) -> _Array:
    """Warm start for the next tick: the mean sequence ``(H, A)`` advanced by one step, zeros appended.

    Takes a numpy array (the control loop's fallbacks) or a torch tensor (the planner and its exported
    graphs); both spell ``concatenate`` and ``zeros_like`` alike, so the one definition serves both.
    """
    xp: Any = np if isinstance(mean, np.ndarray) else sys.modules[type(mean).__module__.split(".")[0]]
    return xp.concatenate([mean[1:], xp.zeros_like(mean[:1])], axis=0)
