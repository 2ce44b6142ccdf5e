"""The weights hash recorded in the model contract."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["weights_sha256"]


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the model's parameters and buffers (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        arr = t.detach().cpu().contiguous()
        h.update(f"{name}|{arr.dtype}|{tuple(arr.shape)}|".encode())
        if arr.numel():
            h.update(arr.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
