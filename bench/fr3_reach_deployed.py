"""fr3-reach through the exported planner: the deployment path, not the training code.

    make export     # the shipped model at the deployment budget (64 samples x 2 iterations x horizon 3)
    python bench/fr3_reach_deployed.py --export exports/fr3-reach [--backend onnxruntime] [--episodes 50]

Each tick the ROS-free ``ControlLoop`` builds the observation from the simulated joint state, the
goal and its own command state, plans through the backend at the export's planner budget and
returns the action; the sim executes that action. By default the loop runs on simulated time
(planning takes no sim time, so every tick is a full solve: what is measured is the model and the
planner, not this machine's load); ``--realtime`` uses the wall clock, so slow ticks fall back as on
a robot, and the fallback counters say how often. Writes ``docs/results/fr3_reach_deployed.json``
(``success_rate``, ``episodes``, ``backend``, ``preset``, ``num_samples``, ``iterations``, ...). The
episode seeds are those of ``bench/fr3_reach_eval.py`` (``--seed`` + 0 .. episodes - 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _common import machine_info, write_result

import sim
from wm_control.evaluation import run_episode, summarize
from wm_control.runtime import control_loop, load_backend


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="folder written by wm-control-export")
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--realtime", action="store_true", help="plan against the wall clock (fallbacks count)")
    ap.add_argument("--out", default="fr3_reach_deployed.json", help="file name under docs/results/")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    if args.episodes < 1:
        raise SystemExit(f"--episodes={args.episodes} must be >= 1")

    backend = load_backend(args.export, args.backend, threads=args.threads)
    contract = backend.contract
    if contract.task != "fr3-reach":
        raise SystemExit(f"{args.export} holds a {contract.task!r} model, not fr3-reach")
    # The env executes actions exactly as in training: control period, chunk shaping and the dead time
    # (playout delay) of the link from the contract.
    delay = float(contract.action.get("playout_delay", 0.0))
    env = sim.make("fr3-reach", env={"dt": contract.dt, "chunk": contract.action["chunk"], "playout_delay": delay})
    now = [0.0]
    clock = time.monotonic if args.realtime else (lambda: now[0])
    loop = control_loop(backend, servo_period=env.physics.h, clock=clock, seed=args.seed)
    diverged = [0]

    def policy(obs: np.ndarray) -> np.ndarray:
        # The env turns the loop's action into the loop's chunk only while both command states agree.
        ours = loop.command_state
        if ours is not None and not np.allclose(ours.dq, env.command_state.dq, atol=1e-9):
            diverged[0] += 1
        now[0] = env.physics.time
        cmd = loop.step(clock(), env.physics.q, env.physics.dq, env.task.target)
        return cmd.action.astype(np.float32)

    def reset() -> None:
        loop.reset(env.physics.q)

    t0 = time.perf_counter()
    results = [run_episode(env, policy, seed=args.seed + k, reset_policy=reset) for k in range(args.episodes)]
    wall = time.perf_counter() - t0
    env.close()
    summary = summarize(results).to_dict()
    counters = loop.counters
    planner = contract.planner
    payload = {
        "benchmark": "fr3_reach_deployed",
        "command": "python bench/fr3_reach_deployed.py " + " ".join(sys.argv[1:]),
        "success_rate": summary["success_rate"],
        "episodes": summary["episodes"],
        "backend": args.backend,
        "preset": contract.model_preset,
        "num_samples": planner["num_samples"],
        "iterations": planner["iterations"],
        "horizon": planner["horizon"],
        "num_elites": planner["num_elites"],
        "num_pi_trajs": planner["num_pi_trajs"],
        "time_to_target_median_s": summary["time_to_success_median"],
        "return_mean": summary["return_mean"],
        "reflexes": summary["reflexes"],
        "clock": "wall" if args.realtime else "simulated",
        "loop_counters": counters,
        "command_state_diverged_ticks": diverged[0],
        "training_step": contract.training_step,
        "weights_sha256": contract.weights_sha256,
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "wall_s": wall,
        "machine": machine_info(),
    }
    rate = summary["success_rate"]
    print(
        f"{args.backend} {contract.model_preset} {planner['num_samples']}x{planner['iterations']}: success "
        f"{rate:.0%} over {summary['episodes']} episodes"
        if not math.isnan(rate)
        else "no success reported",
        file=sys.stderr,
    )
    if not args.no_write:
        write_result(args.out, payload)
    else:
        print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
