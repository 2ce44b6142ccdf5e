"""Simulation speed: the 1 kHz FR3 layer (interpolation + limit monitor + impedance + MuJoCo step)
and fr3-reach env steps, on one core, against raw MuJoCo stepping in the same process.

    python bench/sim_speed.py [--seconds 20] [--no-write]

Writes docs/results/sim_speed.json (physics_steps_per_s, realtime_factor, env_steps_per_s, machine) and
prints it; with ``--no-write`` only prints it. Stdout is exactly the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
from _common import machine_info, stats_ms, write_result

import sim
from sim.physics import FR3Sim
from sim.scene import build_model
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.robot import FR3


def bench_physics(seconds: float, dt: float) -> dict:
    """Wall time per control period ``dt`` of FR3Sim.advance, following smooth generated chunks."""
    fr3 = FR3Sim(build_model(hand=True, scene=True))
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.5), dt, servo_period=fr3.h)
    n_ticks = int(seconds / dt)
    state = gen.rest(FR3.start_q)
    chunks = []
    for k in range(n_ticks):
        res = gen.generate(state, 0.8 * np.sin(np.arange(7) + 0.05 * k))
        chunks.append(res.chunk)
        state = res.next_state
    fr3.reset(FR3.start_q)
    times = []
    for chunk in chunks:
        t0 = time.perf_counter()
        fr3.send(chunk)
        report = fr3.advance(dt)
        times.append(time.perf_counter() - t0)
        assert report.reflex is None, report.reflex
    s = stats_ms(times)
    steps_per_tick = round(dt / fr3.h)
    s["physics_steps_per_s"] = steps_per_tick * len(times) / float(np.sum(times))
    s["physics_steps_per_s_at_median"] = steps_per_tick / (s["median_ms"] / 1e3)
    s["realtime_factor"] = s["physics_steps_per_s"] * fr3.h
    return s


def bench_raw_mujoco(seconds: float) -> dict:
    """Reference: bare mj_step on the same model (no control layer), same process."""
    model = build_model(hand=True, scene=True)
    data = mujoco.MjData(model)
    data.qpos[:7] = FR3.start_q
    n = int(seconds / model.opt.timestep)
    t0 = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(model, data)
    return {"mj_step_per_s": n / (time.perf_counter() - t0)}


def bench_env(steps: int) -> dict:
    """Wall time per fr3-reach env.step (chunk generation + dt of physics ticks + observation + reward)."""
    env = sim.make("fr3-reach")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    times = []
    for _ in range(steps):
        a = rng.uniform(-1, 1, 7).astype(np.float32)
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(a)
        times.append(time.perf_counter() - t0)
        if terminated or truncated:
            env.reset()
    s = stats_ms(times)
    s["env_steps_per_s"] = len(times) / float(np.sum(times))
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per measurement")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only; leave docs/results alone")
    args = parser.parse_args()
    dt = sim.make("fr3-reach").config.dt  # the task's control period
    raw = bench_raw_mujoco(min(args.seconds, 10.0))
    physics = bench_physics(args.seconds, dt)
    env = bench_env(int(args.seconds / dt))
    raw_after = bench_raw_mujoco(min(args.seconds, 10.0))
    ref = 0.5 * (raw["mj_step_per_s"] + raw_after["mj_step_per_s"])
    payload = {
        "benchmark": "sim_speed",
        "command": "python bench/sim_speed.py",
        "physics_steps_per_s": physics["physics_steps_per_s"],
        "realtime_factor": physics["realtime_factor"],
        "env_steps_per_s": env["env_steps_per_s"],
        "control_tick": {k: v for k, v in physics.items() if k.endswith("_ms") or k == "n"},
        "env_step": {k: v for k, v in env.items() if k.endswith("_ms") or k == "n"},
        "reference": {
            "raw_mj_step_per_s_before": raw["mj_step_per_s"],
            "raw_mj_step_per_s_after": raw_after["mj_step_per_s"],
            "control_layer_overhead": ref / physics["physics_steps_per_s"] - 1.0,
        },
        "target": "1 kHz sim >= 20x real time on one core",
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(payload, indent=2))
    else:
        write_result("sim_speed.json", payload)


if __name__ == "__main__":
    main()
