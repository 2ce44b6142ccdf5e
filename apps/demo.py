"""``wm-control-demo``: the end-to-end job ``make demo`` runs.

Today it drives the simulated FR3 (1 kHz impedance layer, trajectory chunks, reflex monitor) on
``fr3-reach`` with the scripted resolved-rate controller, records a video and prints what happened.
It says plainly that the controller is scripted: the learned planner and the ROS 2 nodes replace it
as they land.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="wm-control-demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=3, help="episodes to run (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument("--no-video", action="store_true", help="skip rendering (faster, no EGL needed)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes={args.episodes} must be >= 1")

    import numpy as np

    import sim
    from sim.scripted import ResolvedRateController
    from wm_control.evaluation import run_episode, summarize
    from wm_control.video import write_video

    print("wm-control demo: simulated FR3 + Franka Hand in MuJoCo, task fr3-reach")
    print("  controller: scripted resolved-rate IK (a reference baseline, not the learned model;")
    print("  the TD-MPC2 planner and the ROS 2 nodes take over this demo in later releases)")
    env = sim.make("fr3-reach", render_mode=None if args.no_video else "rgb_array")
    controller = ResolvedRateController(env.generator.velocity_scale)
    results, frames = [], []
    t0 = time.perf_counter()
    for k in range(args.episodes):
        res = run_episode(env, controller, seed=args.seed + k, render=not args.no_video)
        results.append(res)
        frames.extend(res.frames)
        reached = f"reached in {res.time_to_success:.2f} s" if res.success else "not reached"
        reflex = f", reflex: {res.reflex}" if res.reflex else ""
        head = f"  episode {k + 1}/{args.episodes} (seed {res.seed})"
        print(f"{head}: return {res.episode_return:7.2f}, target {reached}{reflex}")
    env.close()
    summary = summarize(results)
    wall = time.perf_counter() - t0
    sim_time = sum(r.length for r in results) * env.config.dt
    print(
        f"  success {summary.success_rate:.0%} over {summary.episodes} episodes, "
        f"median time to target {np.nan_to_num(summary.time_to_success_median, nan=-1):.2f} s; "
        f"{sim_time:.1f} s simulated in {wall:.1f} s wall"
    )
    if frames:
        path = write_video(args.out / "fr3_reach_scripted.mp4", frames, fps=env.metadata["render_fps"])
        print(f"  video: {path}")
    return 0 if summary.success_rate > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
