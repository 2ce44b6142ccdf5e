"""TD-MPC2 speed on this CPU: act() (one MPPI solve at the default budget) and update() (batch 256)
for the 1M, 5M and small presets, as matmul FLOP/s over the fp32 GEMM throughput measured in the
same process, plus env steps/s of the training loop.

    python bench/train_speed.py [--threads 2] [--repeats 15] [--no-write]

Writes docs/results/train_speed.json: per preset act/update medians (ms), efficiencies and
env_steps_per_s; top-level gemm_gflops and machine; and the ablations (what each optimisation gave);
and prints it. With ``--no-write`` it only prints it. Stdout is exactly the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch
from _common import gemm_gflops, machine_info, stats_ms, write_result

import sim
from wm_control import native
from wm_control.model.config import model_config
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import plan_flops
from wm_control.training.agent import TDMPC2, AgentConfig, update_flops
from wm_control.training.buffer import EpisodeBuffer

OBS, ACT, EP = 40, 7, 150  # fr3-reach


def random_buffer(obs_dim: int, act_dim: int, rng: np.random.Generator) -> EpisodeBuffer:
    buf = EpisodeBuffer(100_000, obs_dim, act_dim)
    for _ in range(8):
        buf.add(rng.normal(size=(EP + 1, obs_dim)), rng.uniform(-1, 1, (EP, act_dim)), rng.normal(size=EP))
    return buf


def time_calls(fn, repeats: int, warmup: int = 3) -> list[float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_preset(preset: str, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    mc = model_config(preset, OBS, ACT)
    agent = TDMPC2(mc, AgentConfig(), EP, seed=0)
    buf = random_buffer(OBS, ACT, rng)
    obs = rng.normal(size=OBS).astype(np.float32)
    act = time_calls(lambda: agent.act(obs), repeats)
    upd = time_calls(lambda: agent.update(buf.sample(256, 3, rng)), repeats)
    return {
        "params_m": agent.model.num_parameters() / 1e6,
        "act": stats_ms(act),
        "update": stats_ms(upd),
        "act_gflop": plan_flops(agent.planner, mc) / 1e9,
        "update_gflop": update_flops(mc, 256, 3) / 1e9,
    }


# How fr3-reach is trained: the small preset with the termination head, planning at the training budget
# of its task registry entry (sim/tasks/reach.py).
FR3_REACH = sim.get_task("fr3-reach")
FR3_REACH_PLANNER = MppiConfig(**FR3_REACH.planner)


def training_loop_steps_per_s(
    preset: str, steps: int, planner: MppiConfig | None = None, episodic: bool = False
) -> float:
    """Steady-state training throughput on fr3-reach: act + env step + one update per step."""
    rng = np.random.default_rng(1)
    env = sim.make("fr3-reach")
    mc = model_config(preset, OBS, ACT, episodic=episodic)
    agent = TDMPC2(mc, AgentConfig(planner=planner or MppiConfig()), env.episode_length, seed=0)
    buf = random_buffer(OBS, ACT, rng)
    obs, _ = env.reset(seed=0)
    t_first = True
    t0 = time.perf_counter()
    for _ in range(steps):
        action = agent.act(obs, t0=t_first)
        t_first = False
        obs, _, terminated, truncated, _ = env.step(action)
        agent.update(buf.sample(256, 3, rng))
        if terminated or truncated:
            obs, _ = env.reset()
            t_first = True
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--loop-steps", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="print the JSON only; leave docs/results alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # Ablation first: the eager-PyTorch path with glibc's default allocator (nothing tuned).
    native.set_enabled(False)
    g0 = gemm_gflops()
    eager = bench_preset("1M", max(5, args.repeats // 2))
    native.set_enabled(True)
    with_kernels = bench_preset("1M", max(5, args.repeats // 2))
    native.tune_allocator()  # process-wide and irreversible: everything below runs with it

    gemm_before = gemm_gflops()
    presets = {p: bench_preset(p, args.repeats) for p in ("small", "1M", "5M")}
    for p in ("small", "1M"):
        presets[p]["env_steps_per_s"] = training_loop_steps_per_s(p, args.loop_steps)
    fr3_reach_sps = training_loop_steps_per_s("small", args.loop_steps, FR3_REACH_PLANNER, episodic=FR3_REACH.episodic)
    gemm_after = gemm_gflops()
    gemm = float(np.median([gemm_before, gemm_after]))

    def eff(gflop: float, ms: float, ref: float = gemm) -> float:
        return gflop / (ms / 1e3) / ref

    out = {
        "benchmark": "train_speed",
        "command": f"python bench/train_speed.py --threads {args.threads} --repeats {args.repeats}",
        "threads": args.threads,
        "native_kernels": native.status(),
        "gemm_gflops": gemm,
        "gemm_gflops_before_after": [gemm_before, gemm_after],
    }
    for p, r in presets.items():
        out[p] = {
            "params_m": r["params_m"],
            "act_ms_median": r["act"]["median_ms"],
            "act_ms_p99": r["act"]["p99_ms"],
            "update_ms_median": r["update"]["median_ms"],
            "update_ms_p99": r["update"]["p99_ms"],
            "act_gflop": r["act_gflop"],
            "update_gflop": r["update_gflop"],
            "act_efficiency": eff(r["act_gflop"], r["act"]["median_ms"]),
            "update_efficiency": eff(r["update_gflop"], r["update"]["median_ms"]),
            "env_steps_per_s": r.get("env_steps_per_s"),
            "planner": MppiConfig().__dict__,
            "batch_size": 256,
        }
    out["fr3_reach_training"] = {
        "note": "training loop as fr3-reach is trained: small preset, termination head, planner 128 x 3",
        "preset": "small",
        "planner": FR3_REACH_PLANNER.__dict__,
        "env_steps_per_s": fr3_reach_sps,
    }
    out["ablation_1M"] = {
        "note": "same process, 1M preset, default planner budget, batch 256; each row adds one change",
        "gemm_gflops": g0,
        "eager_pytorch": {
            "act_ms_median": eager["act"]["median_ms"],
            "update_ms_median": eager["update"]["median_ms"],
            "act_efficiency": eff(eager["act_gflop"], eager["act"]["median_ms"], g0),
            "update_efficiency": eff(eager["update_gflop"], eager["update"]["median_ms"], g0),
        },
        "fused_native_kernels": {
            "act_ms_median": with_kernels["act"]["median_ms"],
            "update_ms_median": with_kernels["update"]["median_ms"],
            "act_efficiency": eff(with_kernels["act_gflop"], with_kernels["act"]["median_ms"], g0),
            "update_efficiency": eff(with_kernels["update_gflop"], with_kernels["update"]["median_ms"], g0),
        },
        "plus_allocator_tuning": {
            "act_ms_median": presets["1M"]["act"]["median_ms"],
            "update_ms_median": presets["1M"]["update"]["median_ms"],
            "act_efficiency": out["1M"]["act_efficiency"],
            "update_efficiency": out["1M"]["update_efficiency"],
        },
    }
    out["reference_implementation"] = {
        "note": (
            "nicklashansen/tdmpc2 on this machine, 1M preset, 2 threads, default budget "
            "(numbers quoted in issue 3, not re-measured here)"
        ),
        "act_ms": 235,
        "update_ms": 210,
    }
    out["machine"] = machine_info()
    if args.no_write:
        print(json.dumps(out, indent=2))
    else:
        write_result("train_speed.json", out)


if __name__ == "__main__":
    main()
