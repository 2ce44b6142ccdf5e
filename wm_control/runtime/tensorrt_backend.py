"""The native TensorRT backend: engines built from the exported ONNX graphs, run on a CUDA GPU.

Engines are not portable (they hold kernels chosen for one GPU by one TensorRT version), so they are
built on the machine that runs them and cached under a key made of the GPU model, its compute
capability, the TensorRT version and the ONNX file's hash: a cache shared between machines, or kept
across upgrades, never hands out an engine built elsewhere. The first load of an export on a GPU
builds its four engines (tens of seconds to minutes); later loads deserialise them.

Precision follows the ONNX file (TensorRT >= 10 strongly typed networks; TensorRT 11 has no other
kind): the fp32 export gives fp32 engines with TF32 off unless ``TrtConfig.tf32``, the ``fp16=true``
export gives half-precision arithmetic with float32 inputs and outputs.

Device buffers are torch CUDA tensors (``tensorrt`` and a CUDA build of PyTorch are both needed);
``tensorrt`` and ``torch`` are imported when a backend is created, never at module import.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.errors import ConfigError, ModelContractError, check_range
from wm_control.runtime.graph_backend import GRAPH_IO, GraphBackend
from wm_control.runtime.manifest import Export, sha256_file
from wm_control.runtime.onnx_backend import graph_files

__all__ = ["TrtBackend", "TrtConfig", "default_cache", "engine_path", "require_tensorrt"]


def default_cache() -> Path:
    """``$WM_CONTROL_TRT_CACHE``, else ``~/.cache/wm_control/tensorrt``."""
    env = os.environ.get("WM_CONTROL_TRT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wm_control" / "tensorrt"


@dataclass(frozen=True)
class TrtConfig:
    """How the engines are built and run.

    cache: engine cache folder (None: ``default_cache()``).
    fp16: build from the ``*.fp16.onnx`` files of an fp16 export.
    tf32: allow TF32 matmuls in fp32 engines (faster on Ampere and later; about 1e-3 relative error,
        outside the fp32 parity tolerance, so off by default).
    workspace_mib: TensorRT's workspace memory pool limit for tactic selection.
    max_batch: largest batch of the policy graph's dynamic batch dimension.
    device: CUDA device index.
    """

    cache: str | None = None
    fp16: bool = False
    tf32: bool = False
    workspace_mib: int = 1024
    max_batch: int = 64
    device: int = 0

    def __post_init__(self) -> None:
        check_range("TrtConfig.workspace_mib", self.workspace_mib, 16, 1 << 20)
        check_range("TrtConfig.max_batch", self.max_batch, 1, 1 << 16)
        check_range("TrtConfig.device", self.device, 0, 1024)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_path(
    cache: str | Path,
    gpu: str,
    capability: tuple[int, int],
    trt_version: str,
    graph: str,
    onnx_sha256: str,
    config: TrtConfig,
) -> Path:
    """Where the engine of one graph lives in the cache: ``<gpu>-sm<cc>/trt-<version>/`` holds the
    engines of that GPU model and TensorRT version, named by graph, ONNX hash and build options.
    """
    options = f"b{config.max_batch}{'-tf32' if config.tf32 else ''}"
    folder = Path(cache) / f"{_slug(gpu)}-sm{capability[0]}{capability[1]}" / f"trt-{_slug(trt_version)}"
    return folder / f"{graph}-{onnx_sha256[:16]}-{options}.engine"


def _import_tensorrt() -> Any:
    # By name, at call time: the library never imports TensorRT at module level (layering).
    try:
        tensorrt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise ConfigError(
            "backend='tensorrt' needs the TensorRT Python package: pip install wm-control[tensorrt] "
            "(or use backend=onnxruntime provider=tensorrt)"
        ) from exc
    return tensorrt


def _import_cuda_torch(device: int) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("backend='tensorrt' needs a CUDA build of PyTorch for its device buffers") from exc
    if not torch.cuda.is_available():
        raise ConfigError(
            "backend='tensorrt' needs a CUDA GPU; torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})"
        )
    if device >= torch.cuda.device_count():
        raise ConfigError(f"TrtConfig.device={device}; this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch


def require_tensorrt(device: int = 0) -> tuple[Any, Any]:
    """The ``tensorrt`` and ``torch`` modules, or a ``ConfigError`` naming what is missing (the
    package, a CUDA build of torch, the GPU).
    """
    return _import_tensorrt(), _import_cuda_torch(device)


def build_engine(trt: Any, onnx_file: Path, config: TrtConfig, logger: Any) -> bytes:
    """Parse ``onnx_file`` and build a serialised engine (strongly typed where TensorRT has the flag)."""
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = 0 if strongly_typed is None else 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelContractError(f"TensorRT cannot parse {onnx_file.name}: {errors}")
    build = builder.create_builder_config()
    build.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None and not config.tf32:
        build.clear_flag(tf32)
    profile, dynamic = builder.create_optimization_profile(), False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            dynamic = True
            low = tuple(1 if d < 0 else d for d in shape)
            high = tuple(config.max_batch if d < 0 else d for d in shape)
            profile.set_shape(tensor.name, low, low, high)
    if dynamic:
        build.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, build)
    if serialized is None:
        raise ModelContractError(f"TensorRT failed to build an engine from {onnx_file.name} (see its log above)")
    return bytes(serialized)


class TrtBackend(GraphBackend):
    """``Backend`` over TensorRT engines of an export folder (built and cached on first use)."""

    name = "tensorrt"

    def __init__(
        self,
        export: Export,
        config: TrtConfig = TrtConfig(),
        log: Callable[[str], None] = print,
    ) -> None:
        trt, torch = require_tensorrt(config.device)
        super().__init__(export.contract)
        self.folder, self.config = export.folder, config
        files = graph_files(export, config.fp16)
        self._torch, self._device = torch, torch.device("cuda", config.device)
        self.gpu = torch.cuda.get_device_name(config.device)
        capability = torch.cuda.get_device_capability(config.device)
        self.trt_version = str(trt.__version__)
        cache = Path(config.cache) if config.cache else default_cache()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine_files: dict[str, Path] = {}
        self._engines: dict[str, Any] = {}
        self._contexts: dict[str, Any] = {}
        self._outputs: dict[str, list[str]] = {}
        self._inputs: dict[str, set[str]] = {}
        with torch.cuda.device(config.device):
            for graph, onnx_file in files.items():
                path = engine_path(cache, self.gpu, capability, self.trt_version, graph, sha256_file(onnx_file), config)
                if not path.exists():
                    t0 = time.perf_counter()
                    log(
                        f"building the TensorRT engine of {onnx_file.name} for {self.gpu} (TensorRT {self.trt_version})"
                    )
                    data = build_engine(trt, onnx_file, config, logger)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.tmp")
                    tmp.write_bytes(data)
                    tmp.replace(path)
                    log(f"  {path} ({len(data) / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
                engine = runtime.deserialize_cuda_engine(path.read_bytes())
                if engine is None:
                    raise ModelContractError(f"TensorRT could not deserialise {path}; delete it to rebuild")
                names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
                self._inputs[graph] = {n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
                self._outputs[graph] = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
                self._engines[graph] = engine
                self._contexts[graph] = engine.create_execution_context()
                self.engine_files[graph] = path
        self._dtypes = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.INT32: torch.int32,
            trt.DataType.INT64: torch.int64,
            trt.DataType.BOOL: torch.bool,
        }
        self._stream = torch.cuda.Stream(self._device)
        for graph, (_, expected) in GRAPH_IO.items():
            missing = sorted(set(expected) - set(self._outputs[graph]))
            if missing:
                raise ModelContractError(f"TensorRT engine of {graph} lacks output(s) {missing}; re-export the model")
            self._outputs[graph] = list(expected)

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch, engine, context = self._torch, self._engines[graph], self._contexts[graph]
        keep = []
        with torch.cuda.stream(self._stream):
            for name, value in feeds.items():
                if name not in self._inputs[graph]:  # an input TensorRT pruned as unused
                    continue
                tensor = torch.from_numpy(value).to(self._device, non_blocking=False)
                context.set_input_shape(name, tuple(tensor.shape))
                context.set_tensor_address(name, tensor.data_ptr())
                keep.append(tensor)
            outputs = []
            for name in self._outputs[graph]:
                shape = tuple(context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[engine.get_tensor_dtype(name)], device=self._device)
                context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution of {graph} failed")
            host = [o.cpu().numpy() for o in outputs]  # .cpu() waits for the stream
        del keep
        return host

    def describe(self) -> dict[str, Any]:
        """GPU, TensorRT version and engine files, for reports."""
        return {
            "gpu": self.gpu,
            "tensorrt": self.trt_version,
            "fp16": self.config.fp16,
            "tf32": self.config.tf32,
            "engines": {g: str(p) for g, p in self.engine_files.items()},
        }

    def __repr__(self) -> str:
        return f"TrtBackend({json.dumps(self.describe())})"
