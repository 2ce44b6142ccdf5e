"""Torch -> ONNX: ``policy.onnx``, ``planner.onnx``, ``planner_init.onnx``, ``planner_step.onnx``.

Each file is one of the graph modules of ``export/graphs.py`` (the training-time planner code,
not a re-implementation), exported with the dynamo exporter at opset 18, checked with
``onnx.checker``, and stamped with the model contract (``metadata_props``; also ``model.json``).
The native fused kernels are switched off during tracing so the graph holds standard ONNX ops
(LayerNormalization, Softmax, MatMul, ...) that every runtime fuses in its own way.

Optional ``fp16``: the weights and arithmetic in half precision with float32 inputs and outputs
(``onnxruntime.transformers.float16``), for GPUs; its action parity is measured in the report.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from export.graphs import PlannerGraph, PlannerInitGraph, PlannerStepGraph, PolicyGraph
from wm_control import native
from wm_control.contract import ModelContract
from wm_control.errors import ExportError, check_range
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.solve import draw_noise
from wm_control.runtime.graph_backend import GRAPH_IO, GRAPHS
from wm_control.runtime.manifest import WEIGHTS_FILE, publish, write_model_json

__all__ = ["GRAPHS", "ExportResult", "export_onnx"]

OPSET = 18


@dataclass(frozen=True)
class ExportResult:
    """Paths of the written files, by graph name, plus ``weights`` and ``model.json``."""

    files: dict[str, Path]
    contract: ModelContract


@contextlib.contextmanager
def _pure_torch() -> Iterator[None]:
    """Trace through standard torch ops (no native kernels); restores the previous setting."""
    was = native.available()
    native.set_enabled(False)
    try:
        yield
    finally:
        native.set_enabled(was)


def example_inputs(graph: str, model: WorldModel, cfg: MppiConfig, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and dtypes for tracing (seeded, deterministic)."""
    g = torch.Generator().manual_seed(0)
    mc = model.cfg
    H, P, A = cfg.horizon, cfg.num_pi_trajs, mc.action_dim
    noise = draw_noise(cfg, A, mc.num_q, g)
    obs = torch.randn(mc.obs_dim, generator=g)
    mean = torch.randn(H, A, generator=g).clamp(-1, 1)
    scale = torch.tensor(0.0)
    if graph == "policy":
        return (torch.randn(batch, mc.obs_dim, generator=g),)
    if graph == "planner":
        return (obs, mean, *noise, scale)
    if graph == "planner_init":
        return (obs, noise.pi_eps)
    if graph == "planner_step":
        z = torch.softmax(torch.randn(mc.latent_dim // mc.simnorm_dim, mc.simnorm_dim, generator=g), -1).flatten()
        prior = torch.randn(H, P, A, generator=g).tanh()
        std = torch.full((H, A), cfg.max_std)
        step = (noise.samples[0], noise.value_eps[0], noise.q_heads[0], noise.gumbel, noise.explore)
        return (z, prior, mean, std, *step, scale)
    raise ExportError(f"unknown graph {graph!r}; valid: {list(GRAPHS)}")


def graph_module(graph: str, model: WorldModel, cfg: MppiConfig) -> nn.Module:
    """The ``nn.Module`` that ``graph`` exports."""
    modules: dict[str, Any] = {
        "policy": PolicyGraph,
        "planner": PlannerGraph,
        "planner_init": PlannerInitGraph,
        "planner_step": PlannerStepGraph,
    }
    if graph not in modules:
        raise ExportError(f"unknown graph {graph!r}; valid: {list(GRAPHS)}")
    module = modules[graph](model) if graph == "policy" else modules[graph](model, cfg)
    return module.eval()


def _export_one(module: nn.Module, inputs: tuple[torch.Tensor, ...], graph: str, opset: int) -> Any:
    import onnx

    in_names, out_names = (list(names) for names in GRAPH_IO[graph])
    dynamic = {"obs": {0: torch.export.Dim("batch", min=1, max=4096)}} if graph == "policy" else None
    with _pure_torch(), torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            opset_version=opset,
            input_names=in_names,
            output_names=out_names,
            dynamic_shapes=dynamic,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ExportError(f"torch.onnx.export returned nothing for {graph}")
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _to_fp16(proto: Any) -> Any:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise ExportError("fp16 export needs onnxruntime's transformers tools (pip install onnxruntime)") from exc
    # Softmax / top-k / value decoding stay in float32: elite ranking is sensitive to rounding.
    keep = ["TopK", "Softmax", "LogSoftmax", "ArgMax", "ReduceSum", "ReduceMean", "Exp", "Log"]
    return convert_float_to_float16(proto, keep_io_types=True, op_block_list=keep, disable_shape_infer=False)


def export_onnx(
    model: WorldModel,
    contract: ModelContract,
    planner: MppiConfig,
    out_dir: str | Path,
    *,
    fp16: bool = False,
    opset: int = OPSET,
    graphs: tuple[str, ...] = GRAPHS,
) -> ExportResult:
    """Export ``graphs`` of ``model`` with planner budget ``planner`` into ``out_dir``, with the
    weights (``weights.safetensors``, for the torch backend) and ``model.json`` (the contract and the
    sha256 of every file written, which ``load_backend`` verifies).

    Each file is written to a temporary name and renamed into place, ``model.json`` last, so an
    interrupted export never leaves a truncated model that looks complete. Raises ``ExportError``
    naming the graph that failed.
    """
    import onnx

    check_range("opset", opset, 17, 23)
    unknown = sorted(set(graphs) - set(GRAPHS))
    if unknown:
        raise ExportError(f"unknown graph(s) {unknown}; valid: {list(GRAPHS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    meta = contract.to_metadata()
    files: dict[str, Path] = {}
    for graph in graphs:
        module = graph_module(graph, model, planner)
        inputs = example_inputs(graph, model, planner)
        try:
            proto = _export_one(module, inputs, graph, opset)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"exporting {graph}.onnx failed: {type(exc).__name__}: {exc}") from exc
        if fp16:
            proto = _to_fp16(proto)
        del proto.metadata_props[:]
        for key, value in {**meta, "wm_control.graph": json.dumps(graph), "wm_control.fp16": json.dumps(fp16)}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "wm-control-export"
        name = f"{graph}.fp16.onnx" if fp16 else f"{graph}.onnx"
        target = out / name
        tmp = target.with_suffix(".onnx.tmp")
        onnx.save_model(proto, str(tmp))
        publish(tmp, target)
        files[graph] = target
    weights = out / WEIGHTS_FILE
    tmp_weights = weights.with_name(f".{WEIGHTS_FILE}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp_weights))
    publish(tmp_weights, weights)
    files["weights"] = weights
    files["model.json"] = write_model_json(out, contract, [p.name for p in files.values()])
    return ExportResult(files, contract)
