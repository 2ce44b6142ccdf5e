"""Random draws of one MPPI solve with numpy (no torch needed on a robot PC).

Same shapes (``wm_control.planning.config.noise_shapes``) and distributions as
``wm_control.planning.solve.draw_noise``; the streams differ (numpy vs torch generators), which is
why every backend takes the noise as an input: parity is checked on identical draws, and a
controller seeds its own ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from wm_control.errors import InputError
from wm_control.planning.config import MppiConfig, noise_shapes
from wm_control.runtime.backend import PlanNoiseArrays

__all__ = ["check_noise", "draw_noise_np"]


def draw_noise_np(cfg: MppiConfig, action_dim: int, num_q: int, rng: np.random.Generator) -> PlanNoiseArrays:
    """Draw the noise of one solve: standard normals, two distinct Q heads per iteration, and
    standard Gumbel variates for the elite pick.
    """
    if num_q < 2:
        raise InputError(f"num_q={num_q}: the planner averages two distinct Q heads, so it needs >= 2")
    shapes = noise_shapes(cfg, action_dim)
    heads = np.stack([rng.permutation(num_q)[:2] for _ in range(cfg.iterations)]).astype(np.int64)
    uniform = np.clip(rng.random(shapes["gumbel"]), 1e-20, 1.0 - 1e-7)
    return PlanNoiseArrays(
        pi_eps=rng.standard_normal(shapes["pi_eps"], dtype=np.float32),
        samples=rng.standard_normal(shapes["samples"], dtype=np.float32),
        value_eps=rng.standard_normal(shapes["value_eps"], dtype=np.float32),
        q_heads=heads,
        gumbel=(-np.log(-np.log(uniform))).astype(np.float32),
        explore=rng.standard_normal(shapes["explore"], dtype=np.float32),
    )


def check_noise(noise: PlanNoiseArrays, cfg: MppiConfig, action_dim: int, num_q: int) -> None:
    """Raise ``InputError`` naming the first array whose shape or values do not fit ``cfg``."""
    for name, shape in noise_shapes(cfg, action_dim).items():
        arr = getattr(noise, name)
        if tuple(arr.shape) != shape:
            raise InputError(f"noise.{name} has shape {tuple(arr.shape)}; expected {shape}")
    if noise.q_heads.size and (noise.q_heads.min() < 0 or noise.q_heads.max() >= num_q):
        raise InputError(f"noise.q_heads must lie in [0, {num_q - 1}]; got {noise.q_heads.tolist()}")
