"""Evaluate a trained fr3-reach run over 50 seeded episodes and record it with how it was trained.

    python bench/fr3_reach_eval.py --run runs/fr3-reach/<date> [--episodes 50] [--out fr3_reach_eval.json] [--no-write]

Writes docs/results/<out> with success_rate, episodes, time_to_target_median_s, env_steps,
train_wall_s, preset, planner (and the scripted controller's time to target for comparison) and prints
it; with ``--no-write`` only prints it. Stdout is exactly the JSON.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from _common import RESULTS, machine_info, write_result

from apps.eval import evaluate
from wm_control.training.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder (or checkpoint folder) of an fr3-reach training run")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="fr3_reach_eval.json")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only; leave docs/results alone")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.run)
    if ckpt.config["task"]["name"] != "fr3-reach":
        raise SystemExit(f"{args.run} is a {ckpt.config['task']['name']} run, not fr3-reach")
    res = evaluate(
        {
            "checkpoint": str(ckpt.path),
            "episodes": args.episodes,
            "seed": args.seed,
            "video": True,
            "eval_mode": True,
            "out": None,
            "device": "cpu",
            "threads": args.threads,
            "planner": {},
        }
    )
    scripted_path = RESULTS / "fr3_reach_scripted.json"
    scripted = json.loads(scripted_path.read_text()) if scripted_path.exists() else {}
    trainer = ckpt.state["trainer"]
    payload = {
        "benchmark": "fr3_reach_eval",
        "command": (
            f"python bench/fr3_reach_eval.py --run {args.run} --episodes {args.episodes} --seed {args.seed} "
            f"--threads {args.threads}"
        ),
        "success_rate": res["success_rate"],
        "episodes": res["episodes"],
        "time_to_target_median_s": res["time_to_success_median"],
        "return_mean": res["return_mean"],
        "reflexes": res["reflexes"],
        "env_steps": int(trainer["step"]),
        "train_wall_s": float(trainer["elapsed_s"]),
        "preset": ckpt.config["model"]["preset"],
        "planner": res["planner"],
        "training": {k: ckpt.config["train"][k] for k in ("seed", "steps", "seed_steps")},
        "scripted_time_to_target_median_s": scripted.get("time_to_target_median_s"),
        "seeds": res["seeds"],
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(payload, indent=2))
    else:
        write_result(args.out, payload)


if __name__ == "__main__":
    main()
