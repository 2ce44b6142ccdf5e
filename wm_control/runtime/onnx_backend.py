"""The ONNX Runtime backend: the four exported graphs, on CPU, CUDA or TensorRT execution providers.

``onnxruntime`` is imported when a backend is created, never at module import. On a CUDA provider
the per-call inputs are bound with IO binding and the outputs copied back once per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.contract import ModelContract
from wm_control.errors import ConfigError, ModelContractError, check_range
from wm_control.planning.config import MppiConfig
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput

__all__ = ["GRAPH_FILES", "OrtBackend", "OrtConfig", "load_onnx_contract"]

GRAPH_FILES = {g: f"{g}.onnx" for g in ("policy", "planner", "planner_init", "planner_step")}
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
        on the deployment planner). Each graph has its own session and thread pool, and spinning
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


def load_onnx_contract(path: str | Path) -> ModelContract:
    """The contract stored in an ONNX file's ``metadata_props``."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return ModelContract.from_metadata({p.key: p.value for p in proto.metadata_props})


class OrtBackend:
    """``Backend`` over ONNX Runtime sessions of an export folder."""

    name = "onnxruntime"

    def __init__(self, folder: str | Path, contract: ModelContract, config: OrtConfig = OrtConfig()) -> None:
        ort = _import_ort()
        self.folder = Path(folder)
        self.config = config
        self.contract = contract
        self.planner = MppiConfig(**{k: v for k, v in contract.planner.items()})
        model = contract.model
        self.obs_dim, self.action_dim = int(model["obs_dim"]), int(model["action_dim"])
        self.latent_dim, self.num_q = int(model["latent_dim"]), int(model["num_q"])
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
        for graph, file in GRAPH_FILES.items():
            path = self.folder / (file.replace(".onnx", ".fp16.onnx") if config.fp16 else file)
            if not path.exists():
                raise ModelContractError(f"{path} not found; export the model with wm-control-export first")
            stored = load_onnx_contract(path)
            if stored.weights_sha256 != contract.weights_sha256 or stored.config_hash != contract.config_hash:
                raise ModelContractError(
                    f"{path.name}: model contract field 'weights_sha256' differs from model.json "
                    "(files from different exports in one folder)"
                )
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

    @staticmethod
    def _f(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def policy(self, obs: np.ndarray) -> np.ndarray:  # noqa: D102
        return self._run("policy", {"obs": self._f(obs).reshape(1, -1)})[0][0]

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:  # noqa: D102
        f = self._f
        action, nxt, vmean, vstd, std = self._run(
            "planner",
            {
                "obs": f(obs), "mean": f(mean), "pi_eps": f(noise.pi_eps), "samples": f(noise.samples),
                "value_eps": f(noise.value_eps), "q_heads": np.ascontiguousarray(noise.q_heads, dtype=np.int64),
                "gumbel": f(noise.gumbel), "explore": f(noise.explore),
                "explore_scale": np.asarray(explore_scale, dtype=np.float32),
            },
        )  # fmt: skip
        return PlanOutput(action, nxt, float(vmean), float(vstd), std)

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: D102
        z, prior = self._run("planner_init", {"obs": self._f(obs), "pi_eps": self._f(pi_eps)})
        return z, prior

    def plan_step(  # noqa: D102
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        f = self._f
        m, s, action, vmean, vstd = self._run(
            "planner_step",
            {
                "z": f(z), "prior": f(prior), "mean": f(mean), "std": f(std), "samples": f(noise.samples),
                "value_eps": f(noise.value_eps), "q_heads": np.ascontiguousarray(noise.q_heads, dtype=np.int64),
                "gumbel": f(noise.gumbel), "explore": f(noise.explore),
                "explore_scale": np.asarray(explore_scale, dtype=np.float32),
            },
        )  # fmt: skip
        return StepOutput(m, s, action, float(vmean), float(vstd))


def read_model_json(folder: str | Path) -> ModelContract:
    """The contract in an export folder's ``model.json``."""
    path = Path(folder) / "model.json"
    if not path.exists():
        raise ModelContractError(f"{path} not found; is {folder} a wm-control-export folder?")
    return ModelContract.from_dict(json.loads(path.read_text()))
