"""Running trimmed scale of Q-values for the policy update (TD-MPC2): an exponential moving
average of the 5-95 percentile range of the batch's values, at least 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RunningScale"]


class RunningScale:
    """``scale(x) = x / S`` with ``S <- lerp(S, max(1, p95(x) - p5(x)), tau)`` on ``update``."""

    def __init__(self, tau: float = 0.01, device: torch.device | str = "cpu") -> None:
        self.tau = tau
        self.value = torch.ones((), device=device)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the spread of ``x`` (any shape) into the running scale."""
        flat = x.detach().reshape(-1).float()
        q = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device, dtype=flat.dtype))
        self.value.lerp_(torch.clamp(q[1] - q[0], min=1.0).to(self.value.dtype), self.tau)

    def __call__(self, x: Tensor) -> Tensor:
        """``x`` divided by the current scale."""
        return x / self.value

    def state_dict(self) -> dict[str, float]:
        """Plain-data state (for checkpoints)."""
        return {"value": float(self.value)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore ``state_dict`` output."""
        self.value.fill_(float(state["value"]))
