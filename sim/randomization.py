"""Domain randomisation as data: ranges sampled once per episode. Every range defaults to the
identity, so randomisation is off unless a config turns it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mujoco
import numpy as np

from wm_control.errors import ConfigError, check_range

__all__ = ["EpisodeRandomization", "ModelRandomizer", "RandomizationConfig"]


def _check_interval(name: str, lo_hi: tuple[float, float], low: float, high: float) -> None:
    if len(lo_hi) != 2:
        raise ConfigError(f"{name} must be a (low, high) pair; got {lo_hi!r}")
    check_range(f"{name}[0]", lo_hi[0], low, high)
    check_range(f"{name}[1]", lo_hi[1], low, high)
    if lo_hi[0] > lo_hi[1]:
        raise ConfigError(f"{name}={lo_hi!r}: low must not exceed high")


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode randomisation ranges.

    mass_scale: (low, high) factor on each arm link's mass and inertia. Gravity compensation keeps
        using the nominal masses, as a real controller's model would.
    damping_scale: (low, high) factor on each arm joint's viscous damping.
    action_latency_ticks: (low, high) whole control ticks between an action and its execution.
    obs_noise_q: std of Gaussian noise on observed joint positions [rad].
    obs_noise_dq: std of Gaussian noise on observed joint velocities [rad/s].
    """

    mass_scale: tuple[float, float] = (1.0, 1.0)
    damping_scale: tuple[float, float] = (1.0, 1.0)
    action_latency_ticks: tuple[int, int] = (0, 0)
    obs_noise_q: float = 0.0
    obs_noise_dq: float = 0.0

    def __post_init__(self) -> None:
        _check_interval("randomization.mass_scale", self.mass_scale, 0.1, 10.0)
        _check_interval("randomization.damping_scale", self.damping_scale, 0.0, 10.0)
        _check_interval("randomization.action_latency_ticks", self.action_latency_ticks, 0, 2)
        if any(int(v) != v for v in self.action_latency_ticks):
            raise ConfigError(f"randomization.action_latency_ticks={self.action_latency_ticks!r} must be whole ticks")
        check_range("randomization.obs_noise_q", self.obs_noise_q, 0.0, 0.5)
        check_range("randomization.obs_noise_dq", self.obs_noise_dq, 0.0, 5.0)


class EpisodeRandomization(NamedTuple):
    """What was drawn for one episode (reported in ``info``)."""

    mass_scale: np.ndarray
    damping_scale: np.ndarray
    action_latency_ticks: int


class ModelRandomizer:
    """Applies ``RandomizationConfig`` draws to a model in place, keeping the nominal values."""

    def __init__(self, model: mujoco.MjModel, config: RandomizationConfig, arm_bodies: list[int], arm_dofs: int = 7):
        self.model = model
        self.config = config
        self.bodies = np.asarray(arm_bodies)
        self.dofs = np.arange(arm_dofs)
        self._mass = model.body_mass[self.bodies].copy()
        self._inertia = model.body_inertia[self.bodies].copy()
        self._gravcomp = model.body_gravcomp[self.bodies].copy()
        self._damping = model.dof_damping[self.dofs].copy()

    def sample(self, rng: np.random.Generator) -> EpisodeRandomization:
        """Draw this episode's parameters and write them into the model."""
        c = self.config
        mass = rng.uniform(*c.mass_scale, size=len(self.bodies))
        damping = rng.uniform(*c.damping_scale, size=len(self.dofs))
        latency = int(rng.integers(c.action_latency_ticks[0], c.action_latency_ticks[1] + 1))
        m = self.model
        m.body_mass[self.bodies] = self._mass * mass
        m.body_inertia[self.bodies] = self._inertia * mass[:, None]
        # gravcomp is a fraction of the body's weight: 1/scale compensates exactly the nominal weight.
        m.body_gravcomp[self.bodies] = self._gravcomp / mass
        m.dof_damping[self.dofs] = self._damping * damping
        return EpisodeRandomization(mass, damping, latency)

    def observe(self, rng: np.random.Generator, q: np.ndarray, dq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add observation noise to measured joint state (returns new arrays)."""
        c = self.config
        if c.obs_noise_q > 0:
            q = q + rng.normal(0.0, c.obs_noise_q, size=q.shape)
        if c.obs_noise_dq > 0:
            dq = dq + rng.normal(0.0, c.obs_noise_dq, size=dq.shape)
        return q, dq
