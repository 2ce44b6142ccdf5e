"""``bench/ros_link.py`` over many goal sequences, for several values of the controller's
``retreat_stall_time`` side by side: how many goals the shipped model reaches on the ROS controller's
path (simulated time, every tick a full solve), and what the stall retreat changes.

    make export
    python bench/ros_link_seeds.py [--export exports/fr3-reach] [--seeds 0-47] [--stall-times 1.5,0]
                                   [--jobs 2] [--no-write]

Each (seed, stall time) pair is one ``bench/ros_link.py --seed S --retreat-stall-time T --no-write``
run in its own process, ``--jobs`` at a time; the runs are deterministic, so running them in parallel
changes nothing but the wall time. Prints JSON (per setting: goals reached of all, sequences with
fewer than 9 of 10, reflexes, retreats; per seed: goals reached and the misses with their reasons);
writes ``docs/results/ros_link_seeds.json`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_result

HERE = Path(__file__).resolve().parent


def seed_range(text: str) -> list[int]:
    """``"0-47"`` or ``"0,3,5-7"`` -> the seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            a, b = int(low), int(high or low)
        except ValueError:
            raise SystemExit(f"--seeds {text!r}: expected numbers and ranges like 0-47 or 0,3,5-7") from None
        if a < 0 or b < a:
            raise SystemExit(f"--seeds {text!r}: a range must go up from 0 or more ({part!r})")
        seeds.extend(range(a, b + 1))
    return seeds


def run_one(export: str, goals: int, seed: int, stall: float) -> dict:
    """One ``bench/ros_link.py`` run; its JSON, or the error it ended with."""
    cmd = [sys.executable, str(HERE / "ros_link.py"), "--export", export, "--goals", str(goals)]
    cmd += ["--seed", str(seed), "--retreat-stall-time", str(stall), "--no-write"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}, stall time {stall}: bench/ros_link.py failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", default="exports/fr3-reach", help="export folder (make export)")
    ap.add_argument("--seeds", default="0-47", help="goal sequences (and planner seeds): e.g. 0-47 or 0,3,5-7")
    ap.add_argument("--goals", type=int, default=10, help="goals per sequence")
    ap.add_argument(
        "--stall-times", default="1.5,0", help="retreat_stall_time values to compare [s], comma-separated; 0: off"
    )
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--out", default="ros_link_seeds.json", help="file name under docs/results/")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    seeds = seed_range(args.seeds)
    try:
        stalls = [float(s) for s in args.stall_times.split(",")]
    except ValueError:
        raise SystemExit(f"--stall-times {args.stall_times!r}: expected numbers like 1.5,0") from None
    if any(not 0.0 <= s <= 60.0 for s in stalls):
        raise SystemExit(f"--stall-times {args.stall_times!r}: each in [0, 60] s")
    if not 1 <= args.jobs <= 64 or not 1 <= args.goals <= 1000:
        raise SystemExit("--jobs must be in [1, 64] and --goals in [1, 1000]")
    if not (Path(args.export) / "model.json").is_file():
        raise SystemExit(f"--export {args.export}: no model.json there (make export)")

    wall0 = time.perf_counter()
    pairs = [(seed, stall) for stall in stalls for seed in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda p: run_one(args.export, args.goals, *p), pairs))
    settings = []
    for stall in stalls:
        mine = [r for (_, s), r in zip(pairs, runs, strict=True) if s == stall]
        per_seed = []
        for r in mine:
            misses = [
                {"goal": i, "at": [round(v, 3) for v in g["goal"]], "reason": g["reason"]}
                for i, g in enumerate(r["results"])
                if not g["reached"]
            ]
            counters = r["counters"]
            per_seed.append({
                "seed": r["seed"], "reached": r["goals_reached"], "goals": r["goals"], "reflex": r["reflex"],
                "retreats": counters.get("retreats", 0), "retreats_given_up": counters.get("retreats given up", 0),
                "safety_interventions": counters.get("safety interventions", 0), "misses": misses,
            })  # fmt: skip
        settings.append({
            "retreat_stall_time_s": stall,
            "goals_reached": sum(s["reached"] for s in per_seed),
            "goals": sum(s["goals"] for s in per_seed),
            "sequences_below_9": [s["seed"] for s in per_seed if s["reached"] < 0.9 * s["goals"]],
            "reflexes": sum(s["reflex"] is not None for s in per_seed),
            "retreats": sum(s["retreats"] for s in per_seed),
            "per_seed": per_seed,
        })  # fmt: skip
    result = {
        "benchmark": "ros_link_seeds",
        "command": "python " + " ".join(["bench/ros_link_seeds.py", *sys.argv[1:]]),
        "export": args.export,
        "seeds": args.seeds,
        "goals_per_sequence": args.goals,
        "settings": settings,
        "wall_s": round(time.perf_counter() - wall0, 1),
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(result, indent=2))
    else:
        write_result(args.out, result)


if __name__ == "__main__":
    main()
