"""The MPPI planner budget, a torch-free dataclass (runtimes without torch read it from model metadata)."""

from __future__ import annotations

from dataclasses import dataclass

from wm_control.errors import check_range

__all__ = ["MppiConfig"]


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
