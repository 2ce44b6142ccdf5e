"""The closed loop over ROS 2: sim, controller and goal publisher as three processes over DDS (loopback).

    make export
    python bench/ros_loop.py [--export exports/fr3-reach] [--seconds 60] [--goals 40] [--prepare] [--no-write]

Starts ``launch/sim.launch.xml`` through ``wm-control-launch`` (the deployment export, onnxruntime),
lets it run for ``--seconds`` of closed loop after the first command, then stops it and reports:
the controller's tick period and its jitter (p50 / p99), the time from receiving the joint state a
tick used to publishing its command (p50 / p99 / max), the share of ticks that ran the full solve,
deadline misses, fallbacks by level, the safety layer's interventions and late chunks dropped (the
controller's own ``stats_file``), goals reached (the goal publisher's summary), reflexes (the sim's
log), and the CPU each process used over the window (``/proc/<pid>/stat``), with a same-process
GEMM reference for this machine's speed. Prints JSON; writes ``docs/results/ros_loop.json`` unless
``--no-write``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_gflops, machine_info, write_result

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NODES = ("wm_mujoco_sim", "wm_mpc_controller", "wm_goal_publisher")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far [s]."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_pids(parent: int) -> dict[str, int]:
    """The pid of each node the launch runner ``parent`` started."""
    pids = {}
    for name in NODES:
        found = subprocess.run(["pgrep", "-P", str(parent), "-f", name], capture_output=True, text=True)
        if found.stdout.split():
            pids[name] = int(found.stdout.split()[0])
    return pids


def planning_share(ticks: dict) -> float | None:
    """The share of full solves among the ticks that planned: not held at a reached goal, not on the way
    back to the start pose after a stall (``RETREAT``).
    """
    counters = ticks.get("counters", {})
    planning = counters.get("ticks", 0) - counters.get("at the goal", 0) - counters.get("RETREAT", 0)
    return round(counters.get("MPPI", 0) / planning, 4) if planning > 0 else None


def launch_default(name: str) -> str:
    """The default of an argument of ``launch/sim.launch.xml``."""
    root = ElementTree.parse(ROOT / "launch" / "sim.launch.xml").getroot()
    return next(a.get("default", "") for a in root.iter("arg") if a.get("name") == name)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", default="exports/fr3-reach", help="export folder (make export)")
    ap.add_argument("--seconds", type=float, default=60.0, help="closed-loop time measured [s]")
    ap.add_argument("--goals", type=int, default=40, help="random goals offered (more than the time uses)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the goals")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the controller runtime's intra-op threads (default: the launch file's)",
    )
    ap.add_argument(
        "--prepare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the controller prepares each solve between ticks (default: the launch file's)",
    )
    ap.add_argument("--out", default="ros_loop.json", help="file name under docs/results/")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    if not (Path(args.export) / "model.json").is_file():
        sys.exit(f"ros_loop: {args.export}/model.json not found; run `make export` first")
    if args.seconds < 10:
        sys.exit(f"ros_loop: --seconds={args.seconds}; valid: >= 10")
    gemm = gemm_gflops()
    tmp = Path(tempfile.mkdtemp(prefix="ros_loop_"))
    summary, stats, log = tmp / "summary.json", tmp / "stats.json", tmp / "launch.log"
    sim_stats = tmp / "sim_stats.json"
    env = {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", str(100 + os.getpid() % 100)),
        "AMENT_PREFIX_PATH": str(BIN.parent),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }
    cmd = [str(BIN / "wm-control-launch"), "launch/sim.launch.xml", f"export:={args.export}", f"goals:={args.goals}",
           f"seed:={args.seed}", f"summary:={summary}", f"stats:={stats}", f"sim_stats:={sim_stats}"]  # fmt: skip
    if args.threads is not None:
        cmd.append(f"threads:={args.threads}")
    if args.prepare is not None:
        cmd.append(f"prepare:={str(args.prepare).lower()}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120.0
        while b"goal 1/" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"ros_loop: the stack did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        pids = node_pids(proc.pid)
        cpu0, t0 = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        while time.monotonic() - t0 < args.seconds and proc.poll() is None:
            time.sleep(0.5)
        wall = time.monotonic() - t0
        cpu = {n: round(100.0 * (cpu_seconds(p) - cpu0[n]) / wall, 1) for n, p in pids.items()}
    finally:
        nodes = node_pids(proc.pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # the runner stops its nodes (they write their files)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for pid in nodes.values():  # whatever is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    text = log.read_text()
    goals = json.loads(summary.read_text()) if summary.is_file() else {}
    ticks = json.loads(stats.read_text()) if stats.is_file() else {}
    robot = json.loads(sim_stats.read_text()) if sim_stats.is_file() else {}
    model = json.loads((Path(args.export) / "model.json").read_text())
    payload = {
        "benchmark": "ros_loop",
        "command": "python bench/ros_loop.py " + " ".join(sys.argv[1:]),
        "seconds": round(wall, 1),
        "planner": {k: model["planner"][k] for k in ("num_samples", "iterations", "horizon")},
        "playout_delay_s": model["action"].get("playout_delay", 0.0),
        "controller_threads": args.threads if args.threads is not None else int(launch_default("threads")),
        "controller_prepare": args.prepare if args.prepare is not None else launch_default("prepare") == "true",
        **ticks,
        # The ticks that hold a reached goal (goal arrival) plan nothing by design; the others should all
        # run the full solve.
        "full_solve_share_of_planning_ticks": planning_share(ticks),
        "goals_finished": goals.get("finished"),
        "goals_reached": goals.get("reached"),
        "time_to_reach_median_s": goals.get("time_to_reach_median_s"),
        "goals_failed": [r for r in goals.get("results", []) if not r.get("reached")],
        "reflexes": text.count("[wm_mujoco_sim]: reflex:"),
        "sim": robot,
        "cpu_percent_of_one_core": cpu,
        "reference_gemm_gflops": round(gemm, 1),
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(payload, indent=2))
    else:
        write_result(args.out, payload)  # prints it too


if __name__ == "__main__":
    main()
