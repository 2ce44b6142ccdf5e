"""Planner latency per backend x model preset x planner budget (``docs/results/plan_latency.json``).

    python bench/plan_latency.py                       # the README table (CPU, 2 threads)
    python bench/plan_latency.py --configs small:deploy --ticks 200 --no-write
    python bench/plan_latency.py --gpu                 # on a CUDA GPU -> docs/results/plan_latency_gpu.json

For each configuration a model with random weights (latency does not depend on the values) is
exported to ONNX in a temporary folder and planned with every backend for ``--ticks`` ticks, each
tick a full MPPI solve with fresh noise (drawn before timing; a pool of 64 draws is cycled). The
ticks are split into ``--rounds`` interleaved rounds, each giving every backend x configuration its
share in turn, so a slow phase of a shared machine (this VM's latencies move by 50 % from one minute
to the next) falls on all of them alike. The eager-torch planner runs in the same process as the
reference, and an fp32 1024^3 GEMM is measured once per round: efficiency = matmul FLOPs per plan /
p50 time / median GEMM FLOP/s. With ``--gpu`` the
backends are native TensorRT, onnxruntime's CUDA provider, torch on CUDA with its solve replayed as a
CUDA graph (``torch``) and eagerly (``torch-eager``, the reference) (default configs 5M:512x6 and the
deployment config; ``--backends`` picks the ones a machine has), the GEMM reference runs on the GPU
in fp32 (TF32 off), and the result goes to ``plan_latency_gpu.json`` with the GPU model and the CUDA
and TensorRT versions.

A configuration is ``preset:SAMPLESxITERATIONS`` (elites and policy trajectories scaled as in TD-MPC2),
``small:deploy`` (fr3-reach's deployment budget, ``configs/deployment/fr3-reach.yaml``) or ``small:train``
(fr3-reach's training budget, from its task registry entry).
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
from apps.common import deploy_planner
from export.contract import make_contract
from export.onnx_export import export_onnx
from sim.contract import control_contract
from wm_control import native
from wm_control.model.config import model_config
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import plan_flops
from wm_control.runtime.backend import Backend
from wm_control.runtime.manifest import Export, open_export
from wm_control.runtime.noise import draw_noise_np
from wm_control.runtime.onnx_backend import OrtBackend, OrtConfig
from wm_control.runtime.torch_backend import TorchBackend

# The fr3-reach model is deployed at its deployment budget (configs/deployment/fr3-reach.yaml) and trained
# at its training budget (sim task registry); the default table times both, beside the deployment budget
# before 2026-12-06 (128 x 2) and TD-MPC2's 1M budget.
# Small-preset configs time the fr3-reach model, which is episodic (a termination head, evaluated for
# every imagined step); the other presets time the plain TD-MPC2 model.
FR3_REACH = sim.get_task("fr3-reach")
NAMED_BUDGETS = {"deploy": deploy_planner("fr3-reach"), "train": dict(FR3_REACH.planner)}
DEFAULT_CONFIGS = ["small:deploy", "small:128x2", "small:train", "1M:512x6"]
GPU_CONFIGS = ["small:deploy", "5M:512x6"]


def parse_config(text: str) -> tuple[str, MppiConfig, str]:
    """``preset:SAMPLESxITERATIONS`` -> (preset, planner, budget name); elites and prior trajectories
    scale with the samples as in TD-MPC2 (64 and 24 of 512). ``preset:deploy`` / ``preset:train``: the
    fr3-reach deployment / training budget.
    """
    try:
        preset, budget = text.split(":")
        if budget in NAMED_BUDGETS:
            return preset, MppiConfig(**NAMED_BUDGETS[budget]), budget
        samples, iterations = (int(v) for v in budget.lower().split("x"))
    except ValueError:
        raise SystemExit(
            f"--configs entry {text!r}: expected preset:SAMPLESxITERATIONS (e.g. 1M:512x6) or preset:deploy / "
            "preset:train"
        ) from None
    planner = MppiConfig(
        num_samples=samples, iterations=iterations, num_elites=max(samples // 8, 1), num_pi_trajs=samples * 3 // 64
    )
    return preset, planner, budget


class TickTimer:
    """One backend's tick loop (full solves, warm start carried, eval mode), resumable so that every
    backend and configuration can be timed in the same interleaved rounds.
    """

    def __init__(self, backend: Backend, rng: np.random.Generator) -> None:
        self.backend = backend
        cfg = backend.planner
        self.pool = [draw_noise_np(cfg, backend.action_dim, backend.num_q, rng) for _ in range(64)]
        self.obs = rng.standard_normal((64, backend.obs_dim)).astype(np.float32)
        self.mean = np.zeros((cfg.horizon, backend.action_dim), np.float32)
        self.k = 0
        self.times: list[float] = []

    def run(self, ticks: int, skip: int = 0) -> None:
        """Plan ``ticks`` times; keep the wall times of all but the first ``skip``."""
        for i in range(ticks):
            t0 = time.perf_counter()
            out = self.backend.plan(self.obs[self.k % 64], self.mean, self.pool[self.k % 64], 0.0)
            dt = time.perf_counter() - t0
            self.mean = out.mean
            self.k += 1
            if i >= skip:
                self.times.append(dt)


def make_backend(name: str, export: Export, model: WorldModel, planner: MppiConfig, threads: int, gpu: bool) -> Backend:
    """The backend ``name`` on the graphs of ``export``."""
    if name == "onnxruntime":
        return OrtBackend(export, OrtConfig(provider="cuda" if gpu else "cpu", threads=threads))
    if name == "torch":  # on CUDA: the full solve replayed as one CUDA graph (TorchBackend's default)
        return TorchBackend(model, export.contract, planner, device="cuda" if gpu else "cpu")
    if name == "torch-eager":  # on CUDA: every kernel launched from Python (the reference the graph replays)
        return TorchBackend(model, export.contract, planner, device="cuda" if gpu else "cpu", cuda_graph=False)
    if name == "tensorrt":
        from wm_control.runtime.tensorrt_backend import TrtBackend, TrtConfig

        cache = str(export.folder / "engines")
        return TrtBackend(export, TrtConfig(cache=cache), log=lambda m: print(m, file=sys.stderr))
    raise SystemExit(f"--backends: unknown backend {name!r} (onnxruntime, tensorrt, torch, torch-eager)")


def prepare_config(
    preset: str, planner: MppiConfig, budget: str, backends: list[str], folder: str, threads: int, gpu: bool
) -> list[tuple[dict[str, Any], TickTimer]]:
    """Export one random-weight model to ``folder``; a record stub and a timer per backend."""
    torch.manual_seed(0)
    episodic = preset == "small"
    env = sim.make("fr3-reach")
    control = control_contract(env)
    env.close()
    obs_dim, act_dim = control.observation["size"], control.action["size"]
    model = WorldModel(model_config(preset, obs_dim, act_dim, episodic=episodic)).eval()
    run = {"task": {"name": "fr3-reach"}, "bench": "plan_latency"}
    contract = make_contract(run, control, model, planner, 0)
    export_onnx(model, contract, planner, folder)
    export = open_export(folder)
    jobs = []
    for name in backends:
        backend = make_backend(name, export, model, planner, threads, gpu)
        record = {
            "backend": name,
            "preset": preset,
            "num_samples": planner.num_samples,
            "iterations": planner.iterations,
            "horizon": planner.horizon,
            "num_elites": planner.num_elites,
            "num_pi_trajs": planner.num_pi_trajs,
            "gflop_per_plan": plan_flops(planner, model.cfg) / 1e9,
            "budget": budget,
            "deployment": budget == "deploy",
            "episodic": episodic,
            "threads": threads,
            "device": "cuda" if gpu else "cpu",
        }
        jobs.append((record, TickTimer(backend, np.random.default_rng(1))))
    return jobs


def time_interleaved(
    jobs: list[tuple[dict[str, Any], TickTimer]], ticks: int, rounds: int, device: str
) -> tuple[list[dict[str, Any]], list[float]]:
    """Time every job for ``ticks`` ticks in ``rounds`` rounds (each round gives every job its share
    in turn, and measures the GEMM reference once), so that a slow phase of a shared machine falls on
    all of them alike. The first two ticks of each share are not kept: they pay for the switch from
    the previous job's threads and caches, which a deployed process, running one planner, does not.
    """
    warmup = max(ticks // 50, 5)
    for _, timer in jobs:
        timer.run(warmup, skip=warmup)  # not kept
    gemm = []
    for r in range(rounds):
        share = ticks // rounds + (1 if r < ticks % rounds else 0)
        for _, timer in jobs:
            timer.run(share + 2, skip=2)
        gemm.append(gemm_gflops(device=device))
    records = []
    for record, timer in jobs:
        s = stats_ms(timer.times)
        records.append(
            {
                **record,
                "p50_ms": s["median_ms"],
                "p99_ms": s["p99_ms"],
                "max_ms": s["max_ms"],
                "mean_ms": s["mean_ms"],
                "ticks": s["n"],
            }
        )
        print(
            f"{record['backend']:12s} {record['preset']:5s} "
            f"{record['num_samples']}x{record['iterations']}x{record['horizon']}: "
            f"p50 {s['median_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms",
            file=sys.stderr,
        )
    return records, gemm


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=None, help="preset:SAMPLESxITERATIONS ...")
    ap.add_argument(
        "--backends", nargs="+", default=None, help="onnxruntime, tensorrt, torch, torch-eager (CUDA, no graph)"
    )
    ap.add_argument("--gpu", action="store_true", help="time on the CUDA GPU; writes plan_latency_gpu.json")
    ap.add_argument("--ticks", type=int, default=1000, help="timed ticks per backend and configuration")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds the ticks are split into")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    if args.ticks < 1:
        raise SystemExit(f"--ticks={args.ticks}: must be >= 1")
    if args.rounds < 1:
        raise SystemExit(f"--rounds={args.rounds}: must be >= 1")
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: torch.cuda.is_available() is False (no CUDA GPU, or a CPU build of torch)")
    configs = args.configs or (GPU_CONFIGS if args.gpu else DEFAULT_CONFIGS)
    gpu_backends = ["tensorrt", "onnxruntime", "torch", "torch-eager"]
    backends = args.backends or (gpu_backends if args.gpu else ["onnxruntime", "torch"])
    device = "cuda" if args.gpu else "cpu"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    native.tune_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for i, text in enumerate(configs):
            preset, planner, budget = parse_config(text)
            folder = Path(tmp) / str(i)
            folder.mkdir()
            jobs.extend(prepare_config(preset, planner, budget, backends, str(folder), args.threads, args.gpu))
        runs, gemm_rounds = time_interleaved(jobs, args.ticks, min(args.rounds, args.ticks), device)
    gemm = float(np.median(gemm_rounds))
    for r in runs:
        r["efficiency"] = r["gflop_per_plan"] / (r["p50_ms"] / 1e3) / gemm
    payload = {
        "benchmark": "plan_latency",
        "command": "python bench/plan_latency.py " + " ".join(sys.argv[1:]),
        "gemm_gflops": gemm,
        "gemm_gflops_per_round": gemm_rounds,
        "rounds": min(args.rounds, args.ticks),
        "deployment": {
            "preset": "small",
            "planner": NAMED_BUDGETS["deploy"],
            "file": "configs/deployment/fr3-reach.yaml",
        },
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
