"""Reference result for fr3-reach: the scripted resolved-rate controller over 50 seeded episodes.

    python bench/fr3_reach_scripted.py [--episodes 50] [--no-write]

Writes docs/results/fr3_reach_scripted.json (success_rate, episodes, time_to_target_median_s, ...) and
prints it; with ``--no-write`` only prints it. Stdout is exactly the JSON (NaN statistics as null).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from _common import machine_info, write_result

import sim
from sim.scripted import ResolvedRateController
from wm_control.config import to_dict
from wm_control.evaluation import run_episode, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only; leave docs/results alone")
    args = parser.parse_args()
    env = sim.make("fr3-reach")
    controller = ResolvedRateController(env.generator.velocity_scale)
    t0 = time.perf_counter()
    results = [run_episode(env, controller, seed=args.seed + k) for k in range(args.episodes)]
    wall = time.perf_counter() - t0
    # to_dict: NaN statistics (no successful episode) become null, which JSON can carry.
    summary = summarize(results).to_dict()
    times = np.array([r.time_to_success for r in results if r.success])
    payload = {
        "benchmark": "fr3_reach_scripted",
        "command": f"python bench/fr3_reach_scripted.py --episodes {args.episodes} --seed {args.seed}",
        "controller": "resolved-rate IK (sim/scripted.py)",
        "controller_config": dataclasses.asdict(controller.config),
        "success_rate": summary["success_rate"],
        "episodes": summary["episodes"],
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "time_to_target_median_s": summary["time_to_success_median"],
        "time_to_target_p90_s": float(np.percentile(times, 90)) if len(times) else None,
        "return_mean": summary["return_mean"],
        "return_std": summary["return_std"],
        "reflexes": summary["reflexes"],
        "env_config": to_dict(env.config),
        "task_config": to_dict(env.task.config),
        "wall_s": wall,
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(payload, indent=2))
    else:
        write_result("fr3_reach_scripted.json", payload)


if __name__ == "__main__":
    main()
