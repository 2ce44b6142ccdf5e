"""Collect the evaluation curves of DMC training runs into one CSV and plot.

    python bench/dmc_curve.py --task cartpole-swingup --runs runs/dmc/cartpole-swingup/<a> [...] [--no-write]

Writes docs/results/dmc_<task>.csv (columns step,return,seed; ``step`` in agent steps, each action
repeated twice as in TD-MPC2) and docs/results/dmc_<task>.png, with the TD-MPC2 paper's 100k-step
result for reference when known. Stdout is exactly a JSON summary (task, runs, the curve's rows and
the files written); with ``--no-write`` nothing is written and the JSON is the only output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import yaml
from _common import RESULTS

# TD-MPC2 paper (5M model), episode return at 100k steps (its env steps, each of which repeats the
# action twice: our agent steps): mean and range over 3 seeds.
PAPER_100K = {"cartpole-swingup": (839.0, 790.0, 868.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="DMC task name without the dmc/ prefix")
    parser.add_argument("--runs", nargs="+", required=True, help="run folders")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only; leave docs/results alone")
    args = parser.parse_args()
    rows = []
    notes = []
    labels: dict[int, str] = {}
    repeats: set[int] = set()
    for run in args.runs:
        run = Path(run)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        if cfg["task"]["name"] != f"dmc/{args.task}":
            raise SystemExit(f"{run} trains {cfg['task']['name']}, not dmc/{args.task}")
        seed = int(cfg["train"]["seed"])
        pl = cfg["planner"]
        repeats.add(int(cfg["task"]["env"]["action_repeat"]))
        labels[seed] = f"{cfg['model']['preset']}, {pl['num_samples']} x {pl['iterations']} x {pl['horizon']}"
        notes.append(f"seed {seed}: model {cfg['model']['preset']}, planner {pl}")
        with open(run / "metrics" / "eval.csv", newline="") as f:
            for r in csv.DictReader(f):
                # Agent steps, as TD-MPC2 counts them: its DMC wrapper repeats each action twice
                # inside one env step and its trainer counts env steps, so its "100k" is ours.
                rows.append(
                    {
                        "step": int(r["step"]),
                        "return": float(r["return_mean"]),
                        "seed": seed,
                    }
                )
    rows.sort(key=lambda r: (r["seed"], r["step"]))
    out_csv, out_png = RESULTS / f"dmc_{args.task}.csv", RESULTS / f"dmc_{args.task}.png"
    payload = {
        "benchmark": "dmc_curve",
        "task": f"dmc/{args.task}",
        "runs": notes,
        "paper_100k": PAPER_100K.get(args.task),
        "files": [] if args.no_write else [str(out_csv), str(out_png)],
        "rows": rows,
    }
    if args.no_write:
        print(json.dumps(payload, indent=2))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "return", "seed"])
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for seed in sorted({r["seed"] for r in rows}):
        pts = [(r["step"], r["return"]) for r in rows if r["seed"] == seed]
        ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=f"wm-control {labels[seed]}, seed {seed}")
    if args.task in PAPER_100K:
        mean, lo, hi = PAPER_100K[args.task]
        ax.errorbar(
            [100_000], [mean], yerr=[[mean - lo], [hi - mean]], fmt="k*", ms=10, label="TD-MPC2 paper (5M), 100k"
        )
    repeat = ", ".join(str(r) for r in sorted(repeats))
    ax.set_xlabel(f"agent steps (action repeat {repeat})")
    ax.set_ylabel("episode return")
    ax.set_title(f"dmc/{args.task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    # Progress on stderr: stdout is exactly the JSON.
    print(f"wrote {out_csv} ({len(rows)} rows) and {out_png.name}; " + "; ".join(notes), file=sys.stderr)
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
