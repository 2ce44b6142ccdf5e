"""Open an export folder with the runtime of your choice, after checking its contract."""

from __future__ import annotations

from pathlib import Path

from wm_control.errors import ConfigError
from wm_control.runtime.backend import Backend
from wm_control.runtime.manifest import open_export

__all__ = ["BACKENDS", "load_backend"]

BACKENDS = ("onnxruntime", "tensorrt", "torch")


def load_backend(
    folder: str | Path,
    backend: str = "onnxruntime",
    *,
    provider: str = "cpu",
    threads: int = 0,
    fp16: bool = False,
    device: str = "cpu",
    trt_cache: str | None = None,
) -> Backend:
    """A ``Backend`` over the export in ``folder`` (written by ``wm-control-export``).

    backend: ``"onnxruntime"`` (``provider`` cpu / cuda / tensorrt, ``threads``, ``fp16`` files) or
    ``"tensorrt"`` (native engines on a CUDA GPU, built on first use and cached in ``trt_cache``;
    ``fp16`` files; ``device`` ``"cuda:N"``) or ``"torch"`` (eager, ``device``; needs torch).

    The whole export is verified first (``wm_control.runtime.manifest.open_export``): every file has
    the sha256 that ``model.json`` lists and every ONNX file embeds ``model.json``'s contract, so a
    modified, truncated or mixed-in file is refused, by name, before any inference.

    Raises:
        ConfigError: an unknown backend or option, or a runtime this machine lacks.
        ModelContractError, ExportError: the export is incomplete, modified or inconsistent.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}; valid: {list(BACKENDS)}")
    export = open_export(folder)
    if backend == "torch":
        try:
            import torch

            if threads:
                torch.set_num_threads(threads)
            from wm_control.runtime.torch_backend import load_torch_backend
        except ImportError as exc:
            raise ConfigError("backend='torch' needs PyTorch: pip install torch") from exc
        return load_torch_backend(export, device)
    if backend == "tensorrt":
        from wm_control.runtime.tensorrt_backend import TrtBackend, TrtConfig

        index = _cuda_index(device)
        return TrtBackend(export, TrtConfig(cache=trt_cache, fp16=fp16, device=index))
    from wm_control.runtime.onnx_backend import OrtBackend, OrtConfig

    return OrtBackend(export, OrtConfig(provider=provider, threads=threads, fp16=fp16))


def _cuda_index(device: str) -> int:
    """``"cpu"`` (the default: first GPU), ``"cuda"`` or ``"cuda:N"`` -> N."""
    if device in ("cpu", "cuda"):
        return 0
    head, _, index = device.partition(":")
    if head != "cuda" or not index.isdigit():
        raise ConfigError(f"device={device!r}; valid for backend='tensorrt': 'cuda' or 'cuda:N'")
    return int(index)
