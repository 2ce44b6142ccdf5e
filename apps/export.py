"""``wm-control-export``: a trained checkpoint -> ONNX graphs (+ TensorRT engines) with their contract.

    wm-control-export checkpoint=runs/fr3-reach/<run> out=exports/fr3-reach deploy=fr3-reach
    wm-control-export checkpoint=<run> out=<dir> planner.num_samples=128 planner.iterations=3 fp16=true

The planner budget baked into the graphs is the checkpoint's (how it was trained), replaced by a
deployment budget ``deploy=<name>`` (``configs/deployment/<name>.yaml``), replaced by ``planner.*``
values. The control contract (robot, ``dt``, observation layout, action scaling) is the one the
checkpoint recorded at training time.

Writes into ``out``: ``policy.onnx``, ``planner.onnx``, ``planner_init.onnx``, ``planner_step.onnx``
(or ``*.fp16.onnx``), ``weights.safetensors`` (for the torch backend), ``model.json`` (the contract)
and ``parity.json`` (onnxruntime against eager torch on the same inputs and noise). With
``tensorrt=true`` (on the target GPU) it also builds the TensorRT engines into the engine cache
(``trt_cache``, default ``~/.cache/wm_control/tensorrt``, keyed by GPU model and TensorRT version)
and writes ``parity_tensorrt.json``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from apps.common import (
    build_agent,
    config_dir,
    deploy_planner,
    env_factory,
    planner_budget,
    recorded_contract,
    set_threads,
)


def export_run(cfg: dict[str, Any], log: Any = print) -> dict[str, Any]:
    """Export ``cfg["checkpoint"]`` into ``cfg["out"]``; returns the parity report."""
    from export.contract import make_contract
    from export.onnx_export import GRAPHS, export_onnx
    from export.parity import FP32_TOLERANCE, compare_backends, write_report
    from wm_control import native
    from wm_control.errors import ConfigError
    from wm_control.runtime.manifest import open_export
    from wm_control.runtime.onnx_backend import OrtBackend, OrtConfig
    from wm_control.runtime.torch_backend import TorchBackend
    from wm_control.training.checkpoint import load_checkpoint

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    set_threads(cfg.get("threads"))
    if not cfg.get("out"):
        raise ConfigError("out=<folder> is required (where the exported files go)")
    trt_config = None
    if cfg.get("tensorrt"):
        from wm_control.runtime.tensorrt_backend import TrtBackend, TrtConfig, require_tensorrt

        trt_config = TrtConfig(
            cache=cfg.get("trt_cache"), fp16=bool(cfg.get("fp16", False)), tf32=bool(cfg.get("tf32"))
        )
        require_tensorrt(trt_config.device)  # fail before exporting, not after
    ckpt = load_checkpoint(cfg["checkpoint"])
    run = dict(ckpt.config)
    budget = planner_budget(deploy_planner(cfg["deploy"]), run["planner"]) if cfg.get("deploy") else run["planner"]
    run["planner"] = planner_budget(cfg.get("planner"), budget)
    env = env_factory(run["task"])(False)
    control = recorded_contract(ckpt, env)
    agent = build_agent(run, env)
    agent.load_state(ckpt.tensors, ckpt.state["agent"])
    model, planner = agent.model.eval(), agent.planner
    step = int(ckpt.state["trainer"]["step"])
    contract = make_contract(run, control, model, planner, step)
    env.close()
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    fp16 = bool(cfg.get("fp16", False))
    t0 = time.perf_counter()
    log(f"exporting {contract.task} step {step} ({contract.model_preset}, planner {planner.num_samples} samples x "
        f"{planner.iterations} iterations x horizon {planner.horizon}) to {out}")  # fmt: skip
    exported = export_onnx(model, contract, planner, out, fp16=fp16, opset=int(cfg.get("opset", 18)))
    export = open_export(out)
    log(f"  wrote {', '.join(sorted(p.name for p in exported.files.values()))} in {time.perf_counter() - t0:.1f} s")
    native.tune_allocator()
    reference = TorchBackend(model, contract, planner)
    candidate = OrtBackend(export, OrtConfig(provider="cpu", fp16=fp16, threads=int(cfg.get("threads") or 0)))
    result = compare_backends(reference, candidate, cases=int(cfg.get("parity_cases", 4)))
    tolerance = float(cfg.get("parity_tolerance") or (FP32_TOLERANCE if not fp16 else 5e-2))
    report = write_report(
        out / "parity.json", result, tolerance, backend="onnxruntime", provider="cpu", fp16=fp16,
        reference="torch eager (cpu)", graphs=list(GRAPHS),
    )  # fmt: skip
    _log_parity(log, "onnxruntime", report, tolerance)
    if trt_config is not None:
        engines = TrtBackend(export, trt_config, log=log)
        trt_result = compare_backends(reference, engines, cases=int(cfg.get("parity_cases", 4)))
        trt_tolerance = float(cfg.get("parity_tolerance") or (5e-2 if fp16 or trt_config.tf32 else FP32_TOLERANCE))
        trt_report = write_report(
            out / "parity_tensorrt.json", trt_result, trt_tolerance, backend="tensorrt", reference="torch eager (cpu)",
            graphs=list(GRAPHS), **engines.describe(),
        )  # fmt: skip
        _log_parity(log, "tensorrt", trt_report, trt_tolerance)
        report = {**report, "passed": report["passed"] and trt_report["passed"], "tensorrt": trt_report}
    return report


def _log_parity(log: Any, backend: str, report: dict[str, Any], tolerance: float) -> None:
    verdict = "passed" if report["passed"] else "FAILED"
    log(
        f"  parity {backend} vs torch: max |diff| {report['max_abs_diff']:.2e}, {report['worst_ratio']:.2f} of its "
        f"tolerance (base {tolerance:g}; {report['tie_cases']} of {report['cases']} solves near an elite tie): "
        f"{verdict}"
    )


def main() -> None:
    """Console entry point."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from wm_control.errors import WmControlError

    @hydra.main(config_path=config_dir(), config_name="export", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(plain, dict)
        try:
            report = export_run(plain)  # type: ignore[arg-type]
        except WmControlError as exc:
            print(f"wm-control-export: error: {exc}", file=sys.stderr)
            sys.exit(2)
        if not report["passed"]:
            print("wm-control-export: error: parity check failed (see parity*.json)", file=sys.stderr)
            sys.exit(1)

    _main()


if __name__ == "__main__":
    main()
