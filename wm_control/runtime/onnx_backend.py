"""The ONNX Runtime backend: the four exported graphs, on CPU, CUDA or TensorRT execution providers.

``onnxruntime`` is imported when a backend is created, never at module import. On a CUDA provider
the per-call inputs are bound with IO binding and the outputs copied back once per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.errors import ConfigError, check_range
from wm_control.runtime.graph_backend import GRAPHS, GraphBackend
from wm_control.runtime.manifest import Export, export_file

__all__ = ["GRAPH_FILES", "OrtBackend", "OrtConfig", "graph_files"]

GRAPH_FILES = {g: f"{g}.onnx" for g in GRAPHS}
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


@dataclass(frozen=True)
class OrtConfig:
    """How ONNX Runtime runs the graphs.

    provider: ``"cpu"``, ``"cuda"`` or ``"tensorrt"`` (execution provider chain, CPU last).
    threads: intra-op threads on CPU (0: onnxruntime's default, all cores).
    fp16: load the ``*.fp16.onnx`` files of an fp16 export.
    trt_cache: folder for TensorRT execution-provider engines (provider ``"tensorrt"``).
    spin: the graphs whose idle intra-op threads spin-wait for work (faster hand-over, about 30 %
        on the fr3-reach planner at 128 x 3). Each graph has its own session and thread pool, and spinning
        pools of graphs that are not running compete with the one that is: with all four spinning,
        the control loop's per-iteration graph measured 7 ms instead of 2.5 ms on 2 cores and the
        loop fell back to partial solves. Default: only the full solve, the hot path.
    """

    provider: str = "cpu"
    threads: int = 0
    fp16: bool = False
    trt_cache: str | None = None
    spin: tuple[str, ...] = ("planner",)

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(f"OrtConfig.provider={self.provider!r}; valid: {sorted(PROVIDERS)}")
        check_range("OrtConfig.threads", self.threads, 0, 1024)
        unknown = sorted(set(self.spin) - set(GRAPH_FILES))
        if unknown:
            raise ConfigError(f"OrtConfig.spin names unknown graph(s) {unknown}; valid: {sorted(GRAPH_FILES)}")


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            "the onnxruntime backend needs onnxruntime: pip install onnxruntime (CPU) or wm-control[gpu] (CUDA)"
        ) from exc
    return onnxruntime


def graph_files(export: Export, fp16: bool = False) -> dict[str, Path]:
    """The export's ONNX file per graph (``*.fp16.onnx`` when ``fp16``), each listed in ``model.json``
    (``open_export`` verified their hashes and embedded contracts).
    """
    return {
        graph: export_file(export, file.replace(".onnx", ".fp16.onnx") if fp16 else file)
        for graph, file in GRAPH_FILES.items()
    }


class OrtBackend(GraphBackend):
    """``Backend`` over ONNX Runtime sessions of an export folder."""

    name = "onnxruntime"

    def __init__(self, export: Export, config: OrtConfig = OrtConfig()) -> None:
        ort = _import_ort()
        super().__init__(export.contract)
        self.folder = export.folder
        self.config = config
        available = set(ort.get_available_providers())
        providers: list[Any] = [p for p in PROVIDERS[config.provider] if p in available]
        if PROVIDERS[config.provider][0] not in available:
            raise ConfigError(
                f"OrtConfig.provider={config.provider!r} needs {PROVIDERS[config.provider][0]}, which this "
                f"onnxruntime build lacks (has {sorted(available)}); install wm-control[gpu] on a CUDA machine"
            )
        if config.provider == "tensorrt" and config.trt_cache:
            Path(config.trt_cache).mkdir(parents=True, exist_ok=True)
            opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": config.trt_cache, "trt_fp16_enable": True}
            providers = [("TensorrtExecutionProvider", opts), *providers[1:]]

        def options(graph: str) -> Any:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.inter_op_num_threads = 1
            if config.threads:
                so.intra_op_num_threads = config.threads
            so.log_severity_level = 3
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if graph in config.spin else "0")
            return so

        self._sessions: dict[str, Any] = {}
        for graph, path in graph_files(export, config.fp16).items():
            self._sessions[graph] = ort.InferenceSession(str(path), options(graph), providers=providers)
        self._gpu = config.provider != "cpu"
        self._ort = ort

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        sess = self._sessions[graph]
        if not self._gpu:
            return sess.run(None, feeds)
        binding = sess.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cuda")
        sess.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
