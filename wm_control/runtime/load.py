"""Open an export folder with the runtime of your choice, after checking its contract."""

from __future__ import annotations

from pathlib import Path

from wm_control.errors import ConfigError
from wm_control.planning.config import MppiConfig
from wm_control.runtime.backend import Backend

__all__ = ["BACKENDS", "load_backend"]

BACKENDS = ("onnxruntime", "torch")


def load_backend(
    folder: str | Path,
    backend: str = "onnxruntime",
    *,
    provider: str = "cpu",
    threads: int = 0,
    fp16: bool = False,
    device: str = "cpu",
) -> Backend:
    """A ``Backend`` over the export in ``folder`` (written by ``wm-control-export``).

    backend: ``"onnxruntime"`` (``provider`` cpu / cuda / tensorrt, ``threads``, ``fp16`` files) or
    ``"torch"`` (eager, ``device``; needs torch). The contract comes from ``model.json``; each ONNX
    file's embedded copy must agree with it.
    """
    from wm_control.runtime.onnx_backend import read_model_json

    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}; valid: {list(BACKENDS)}")
    contract = read_model_json(folder)
    if backend == "torch":
        try:
            import torch

            if threads:
                torch.set_num_threads(threads)
            from wm_control.runtime.torch_backend import load_torch_backend
        except ImportError as exc:
            raise ConfigError("backend='torch' needs PyTorch: pip install torch") from exc
        return load_torch_backend(folder, contract, MppiConfig(**contract.planner), device)
    from wm_control.runtime.onnx_backend import OrtBackend, OrtConfig

    return OrtBackend(folder, contract, OrtConfig(provider=provider, threads=threads, fp16=fp16))
