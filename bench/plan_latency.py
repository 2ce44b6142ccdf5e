"""Planner latency per backend x model preset x planner budget (``docs/results/plan_latency.json``).

    python bench/plan_latency.py                       # the README table (CPU, 2 threads)
    python bench/plan_latency.py --configs small:128x3 --ticks 200 --no-write
    python bench/plan_latency.py --gpu                 # on a CUDA GPU -> docs/results/plan_latency_gpu.json

For each configuration a model with random weights (latency does not depend on the values) is
exported to ONNX in a temporary folder and planned with every backend for ``--ticks`` ticks, each
tick a full MPPI solve with fresh noise (drawn before timing; a pool of 64 draws is cycled). The
eager-torch planner runs in the same process as the reference, and an fp32 1024^3 GEMM is measured
before and after: efficiency = matmul FLOPs per plan / p50 time / GEMM FLOP/s. With ``--gpu`` the
backends are native TensorRT, onnxruntime's CUDA provider and eager torch on CUDA (default configs
5M:512x6 and the deployment config), the GEMM reference runs on the GPU in fp32 (TF32 off), and the
result goes to ``plan_latency_gpu.json`` with the GPU model and the CUDA and TensorRT versions.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import gemm_gflops, machine_info, stats_ms, write_result

import sim
from export.contract import make_contract
from export.onnx_export import export_onnx
from wm_control import native
from wm_control.model.config import model_config
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import plan_flops
from wm_control.runtime.backend import Backend
from wm_control.runtime.noise import draw_noise_np
from wm_control.runtime.onnx_backend import OrtBackend, OrtConfig
from wm_control.runtime.torch_backend import TorchBackend

OBS, ACT = 40, 7  # fr3-reach
# The fr3-reach deployment config: small preset, 128 samples x 3 iterations x horizon 3 (16 elites,
# 6 policy trajectories): p99 around 10 ms through onnxruntime on this 2-core VM (8.8-14.8 ms over
# eight runs; 256 x 3: 15 ms).
# fr3-reach models are episodic (a termination head, evaluated for every imagined step); the other
# configurations time the plain TD-MPC2 model.
DEPLOYMENT = ("small", MppiConfig(num_samples=128, iterations=3, horizon=3, num_elites=16, num_pi_trajs=6))
DEFAULT_CONFIGS = ["small:128x3", "1M:512x6"]
GPU_CONFIGS = ["small:128x3", "5M:512x6"]


def parse_config(text: str) -> tuple[str, MppiConfig]:
    """``preset:SAMPLESxITERATIONS`` -> (preset, planner); elites and prior trajectories scale with
    the samples as in TD-MPC2 (64 and 24 of 512).
    """
    try:
        preset, budget = text.split(":")
        samples, iterations = (int(v) for v in budget.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--configs entry {text!r}: expected preset:SAMPLESxITERATIONS, e.g. 1M:512x6") from None
    if (preset, samples, iterations) == (DEPLOYMENT[0], DEPLOYMENT[1].num_samples, DEPLOYMENT[1].iterations):
        return DEPLOYMENT
    return preset, MppiConfig(
        num_samples=samples, iterations=iterations, num_elites=max(samples // 8, 1), num_pi_trajs=samples * 3 // 64
    )


def time_backend(backend: Backend, ticks: int, warmup: int, rng: np.random.Generator) -> list[float]:
    """Wall time of ``ticks`` full solves (warm start carried, eval mode)."""
    cfg = backend.planner
    pool = [draw_noise_np(cfg, ACT, backend.num_q, rng) for _ in range(64)]
    obs = rng.standard_normal((64, OBS)).astype(np.float32)
    mean = np.zeros((cfg.horizon, ACT), np.float32)
    times = []
    for k in range(warmup + ticks):
        t0 = time.perf_counter()
        out = backend.plan(obs[k % 64], mean, pool[k % 64], 0.0)
        dt = time.perf_counter() - t0
        mean = out.mean
        if k >= warmup:
            times.append(dt)
    return times


def run_config(
    preset: str, planner: MppiConfig, backends: list[str], ticks: int, threads: int, gpu: bool = False
) -> list[dict[str, Any]]:
    """Export one random-weight model and time it on each backend."""
    torch.manual_seed(0)
    deployment = (preset, planner) == DEPLOYMENT
    model = WorldModel(model_config(preset, OBS, ACT, episodic=deployment)).eval()
    run = {"task": {"name": "fr3-reach"}, "bench": "plan_latency"}
    env = sim.make("fr3-reach")
    contract = make_contract(run, env, model, planner, 0)
    env.close()
    flops = plan_flops(planner, model.cfg)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, contract, planner, tmp)
        for name in backends:
            backend: Backend
            if name == "onnxruntime":
                backend = OrtBackend(tmp, contract, OrtConfig(provider="cuda" if gpu else "cpu", threads=threads))
            elif name == "torch":
                backend = TorchBackend(model, contract, planner, device="cuda" if gpu else "cpu")
            elif name == "tensorrt":
                from wm_control.runtime.tensorrt_backend import TrtBackend, TrtConfig

                cache = str(Path(tmp) / "engines")
                backend = TrtBackend(tmp, contract, TrtConfig(cache=cache), log=lambda m: print(m, file=sys.stderr))
            else:
                raise SystemExit(f"--backends: unknown backend {name!r} (onnxruntime, tensorrt, torch)")
            times = time_backend(backend, ticks, warmup=max(ticks // 50, 5), rng=np.random.default_rng(1))
            s = stats_ms(times)
            records.append(
                {
                    "backend": name,
                    "preset": preset,
                    "num_samples": planner.num_samples,
                    "iterations": planner.iterations,
                    "horizon": planner.horizon,
                    "num_elites": planner.num_elites,
                    "num_pi_trajs": planner.num_pi_trajs,
                    "p50_ms": s["median_ms"],
                    "p99_ms": s["p99_ms"],
                    "max_ms": s["max_ms"],
                    "mean_ms": s["mean_ms"],
                    "ticks": s["n"],
                    "gflop_per_plan": flops / 1e9,
                    "deployment": deployment,
                    "episodic": deployment,
                    "threads": threads,
                    "device": "cuda" if gpu else "cpu",
                }
            )
            print(
                f"{name:12s} {preset:5s} {planner.num_samples}x{planner.iterations}x{planner.horizon}: "
                f"p50 {s['median_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms",
                file=sys.stderr,
            )
    return records


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=None, help="preset:SAMPLESxITERATIONS ...")
    ap.add_argument("--backends", nargs="+", default=None, help="onnxruntime, tensorrt, torch")
    ap.add_argument("--gpu", action="store_true", help="time on the CUDA GPU; writes plan_latency_gpu.json")
    ap.add_argument("--ticks", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    if args.ticks < 1:
        raise SystemExit("--ticks must be >= 1")
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: torch.cuda.is_available() is False (no CUDA GPU, or a CPU build of torch)")
    configs = args.configs or (GPU_CONFIGS if args.gpu else DEFAULT_CONFIGS)
    backends = args.backends or (["tensorrt", "onnxruntime", "torch"] if args.gpu else ["onnxruntime", "torch"])
    device = "cuda" if args.gpu else "cpu"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    native.tune_allocator()
    gemm_before = gemm_gflops(device=device)
    runs = []
    for text in configs:
        preset, planner = parse_config(text)
        runs.extend(run_config(preset, planner, backends, args.ticks, args.threads, gpu=args.gpu))
    gemm_after = gemm_gflops(device=device)
    gemm = float(np.median([gemm_before, gemm_after]))
    for r in runs:
        r["efficiency"] = r["gflop_per_plan"] / (r["p50_ms"] / 1e3) / gemm
    payload = {
        "benchmark": "plan_latency",
        "command": "python bench/plan_latency.py " + " ".join(sys.argv[1:]),
        "gemm_gflops": gemm,
        "gemm_gflops_before_after": [gemm_before, gemm_after],
        "deployment": {"preset": DEPLOYMENT[0], "planner": DEPLOYMENT[1].__dict__},
        "native_kernels": native.status(),
        "runs": runs,
        "machine": machine_info(gpu=args.gpu),
    }
    if args.no_write:
        import json

        print(json.dumps(payload, indent=2))
    else:
        write_result("plan_latency_gpu.json" if args.gpu else "plan_latency.json", payload)


if __name__ == "__main__":
    main()
