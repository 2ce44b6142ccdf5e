"""A backend slowed on purpose: fault injection for the deadline handling.

``SlowedBackend(backend, delay)`` adds ``delay`` seconds (a sleep) to every planner call (``plan``,
``plan_init``, ``plan_step``) and leaves the policy prior as it is. An operator or a test runs the
controller with it (``wm_mpc_controller`` parameter ``fault_planner_delay``) to see what a planner
that no longer fits the control period does on the robot: partial solves and fallbacks, counted and
reported, with commands that stay within the limits.
"""

from __future__ import annotations

import math
import time

import numpy as np

from wm_control.errors import ConfigError
from wm_control.runtime.backend import Backend, PlanNoiseArrays, PlanOutput, StepNoise, StepOutput

__all__ = ["SlowedBackend"]


class SlowedBackend:
    """``backend`` with ``delay`` [s] added to each planner call.

    Raises:
        ConfigError: ``delay`` is negative or not finite.
    """

    def __init__(self, backend: Backend, delay: float) -> None:
        if not (math.isfinite(delay) and delay >= 0.0):
            raise ConfigError(f"SlowedBackend delay={delay} s; must be finite and >= 0")
        self.inner = backend
        self.delay = float(delay)
        self.name = f"{backend.name} (slowed by {delay * 1e3:g} ms per planner call)"
        self.contract = backend.contract
        self.planner = backend.planner
        self.obs_dim = backend.obs_dim
        self.action_dim = backend.action_dim
        self.latent_dim = backend.latent_dim
        self.num_q = backend.num_q

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """The inner backend's policy prior, not slowed (the fallback must stay fast)."""
        return self.inner.policy(obs)

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:
        """The inner full solve after the delay."""
        time.sleep(self.delay)
        return self.inner.plan(obs, mean, noise, explore_scale)

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inner ``plan_init`` after the delay."""
        time.sleep(self.delay)
        return self.inner.plan_init(obs, pi_eps)

    def plan_step(
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        """The inner MPPI iteration after the delay."""
        time.sleep(self.delay)
        return self.inner.plan_step(z, prior, mean, std, noise, explore_scale)
