"""The world-model vocabulary the planner speaks. Torch, ONNX Runtime and TensorRT backends all
implement it, so the planner cannot tell them apart.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

__all__ = ["LatentModel"]


class LatentModel(Protocol):
    """A latent world model. ``B...`` are leading batch dimensions, ``dz`` the latent size, ``A`` the
    action size; rewards and values are in the environment's reward units.
    """

    def encode(self, obs: Tensor) -> Tensor:
        """``(B..., obs_dim) -> (B..., dz)``."""
        ...

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        """``(B..., dz), (B..., A) -> (B..., dz)``: the latent after taking ``a``."""
        ...

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """``(B..., dz), (B..., A) -> (B...)``: predicted reward of taking ``a`` in ``z``."""
        ...

    def value(self, z: Tensor, a: Tensor, heads: Tensor | None = None, reduce: str = "avg") -> Tensor:
        """``(B..., dz), (B..., A) -> (B...)``: Q-value, averaged (or min) over the chosen heads."""
        ...

    @property
    def episodic(self) -> bool:
        """Whether ``termination`` is available (the planner ignores terminations otherwise)."""
        ...

    def termination(self, z: Tensor) -> Tensor:
        """``(B..., dz) -> (B...)``: probability that the step into ``z`` ended the episode."""
        ...

    def policy(self, z: Tensor, eps: Tensor) -> Tensor:
        """``(B..., dz), (B..., A) -> (B..., A)``: policy-prior action ``tanh(mu + std * eps)`` in
        [-1, 1] for standard-normal draws ``eps`` (zeros give the mean action).
        """
        ...
