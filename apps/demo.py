"""``wm-control-demo``: the learned planner drives the simulated FR3 through the ROS 2 nodes.

    make demo                                   # 10 seeded goals, video and plots
    make demo ARGS="goals=3 seed=4 video=false"
    make demo ARGS=controller=scripted          # the scripted IK baseline, in-process, no ROS

Exports the shipped model (``models/fr3-reach``) at the deployment budget if the export is missing,
older than the model or (the default ``exports/fr3-reach``) planned at another budget than
``configs/deployment/fr3-reach.yaml``'s, then starts ``launch/sim.launch.xml`` as ``wm-control-launch`` does: the sim,
the MPC controller and the goal publisher as separate processes over DDS on loopback. While they run
it records the joint states, goals, goal results, commands and ``/diagnostics`` to MCAP and prints
one progress line a second. At the end it prints a summary table and writes, under
``runs/demo/<timestamp>/``: ``summary.json``, ``recording/`` (rosbag2, MCAP), the plots, the video
(rendered from the recording after the run, so that rendering never takes the controller's CPU) and
``logs/`` (each node's output).

Arguments (``name=value``): goals (10), seed (0), backend (onnxruntime | torch | tensorrt), state_rate
(the sim's joint state rate, 250 Hz), goal_timeout (8 s), video (true), controller (learned |
scripted), out (runs/demo), model (models/fr3-reach), export (exports/fr3-reach).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from wm_control.errors import ConfigError, WmControlError  # noqa: E402

GOAL_TOPIC = "/wm_mpc_controller/goal"
RESULT_TOPIC = "/wm_goal_publisher/result"
STATE_TOPIC = "/franka/joint_states"
COMMAND_TOPIC = "/fr3_arm_controller/joint_trajectory"
DIAGNOSTICS_TOPIC = "/diagnostics"
STARTUP_S = 120.0  # the goal publisher's startup_timeout: nodes up, model loaded
DISCOVERY_WAIT = 5.0  # s: a node already in the domain is seen by then, on loaded cores too (Monitor._other_nodes)


@dataclass(frozen=True)
class DemoArgs:
    """What ``make demo ARGS=...`` may set (see the module docstring)."""

    goals: int = 10
    seed: int = 0
    backend: str = "onnxruntime"
    state_rate: float = 250.0
    goal_timeout: float = 8.0
    video: bool = True
    controller: str = "learned"
    out: str = "runs/demo"
    model: str = "models/fr3-reach"
    export: str = "exports/fr3-reach"


_CHOICES = {"backend": ("onnxruntime", "torch", "tensorrt"), "controller": ("learned", "scripted")}
_RANGES = {"goals": (1, 1000), "seed": (0, 2**31 - 1), "state_rate": (10.0, 1000.0), "goal_timeout": (1.0, 600.0)}


def parse_args(argv: list[str]) -> DemoArgs:
    """``name=value`` pairs into ``DemoArgs``; ``ConfigError`` names a wrong name, type or range."""
    fields = DemoArgs.__dataclass_fields__
    values: dict[str, Any] = {}
    for item in argv:
        name, sep, text = item.partition("=")
        name = name.lstrip("-").replace("-", "_")
        if not sep or name not in fields:
            raise ConfigError(f"argument {item!r}: expected name=value with name one of {sorted(fields)}")
        kind = type(getattr(DemoArgs, name))
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1", "yes", "on")
            else:
                value = kind(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected {kind.__name__}") from None
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ConfigError(f"{name}={value!r}: one of {list(_CHOICES[name])}")
        if name in _RANGES and not _RANGES[name][0] <= value <= _RANGES[name][1]:
            raise ConfigError(f"{name}={value}: must be in [{_RANGES[name][0]}, {_RANGES[name][1]}]")
        values[name] = value
    return DemoArgs(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code (0: ran, no reflex; 1: a node failed or a reflex; 2: bad input)."""
    # As wm-control-launch: SIGINT inherited ignored (a background job of a script) would stay ignored in
    # the nodes too, and Ctrl-C or a caller's SIGINT would not stop them cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        args = parse_args(argv)
        if args.controller == "scripted":
            return scripted(args)
        return learned(args)
    except WmControlError as exc:
        print(f"wm-control-demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wm-control-demo: interrupted", file=sys.stderr)
        return 130


# --- the learned planner over ROS 2 ------------------------------------------------------------------
def learned(args: DemoArgs) -> int:
    """The main demo (see the module docstring)."""
    from apps.launch import command, parse, share_dir, stop_processes
    from wm_control.runtime.manifest import read_export

    export = ensure_export(Path(args.model), Path(args.export))
    budget_ms = 1e3 * float(read_export(export).contract.dt)
    if args.video:
        check_rendering()
    run_dir = Path(args.out) / time.strftime("%Y-%m-%d_%H-%M-%S")
    logs = run_dir / "logs"
    domain = os.environ.get("ROS_DOMAIN_ID", "0")
    print(
        f"wm-control demo: the learned planner ({export}, backend {args.backend}) drives the simulated FR3 "
        f"through ROS 2 (ROS_DOMAIN_ID={domain}, discovery {os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']})"
    )
    print(f"  {args.goals} goals from seed {args.seed}; output in {run_dir}")
    files = {
        "summary": run_dir / "goals.json",
        "stats": run_dir / "controller_stats.json",
        "sim_stats": run_dir / "sim_stats.json",
    }
    given = {
        "export": str(export.resolve()),
        "backend": args.backend,
        "goals": str(args.goals),
        "seed": str(args.seed),
        "state_rate": repr(float(args.state_rate)),
        "goal_timeout": repr(float(args.goal_timeout)),
        **{k: str(v.resolve()) for k, v in files.items()},
    }
    nodes = parse(share_dir() / "launch" / "sim.launch.xml", given)
    monitor = Monitor(run_dir / "recording", args.goals)
    procs: list[subprocess.Popen[Any]] = []
    t0 = time.monotonic()
    try:
        monitor.start()  # refuses a domain in use before anything is written
        logs.mkdir(parents=True)
        for node in nodes:
            log = open(logs / f"{node.name}.log", "w")  # noqa: SIM115 (kept open for the process' life)
            procs.append(subprocess.Popen(command(node), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        deadline = t0 + STARTUP_S + args.goals * (args.goal_timeout + 2.0) + 30.0
        names = {p.pid: n.name for n, p in zip(nodes, procs, strict=True)}
        failed = ""
        while True:
            time.sleep(1.0)
            print(monitor.progress(time.monotonic() - t0), flush=True)
            ended = [p for p in procs if p.poll() is not None]
            if any(names[p.pid] == "wm_goal_publisher" for p in ended):
                break
            if ended:
                failed = ", ".join(f"{names[p.pid]} (exit code {p.returncode})" for p in ended)
                break
            if time.monotonic() > deadline:
                failed = f"the scenario did not end within {deadline - t0:.0f} s"
                break
    finally:
        stop_processes(procs)
        monitor.stop()
    wall = time.monotonic() - t0
    if failed:
        print(f"wm-control-demo: error: {failed}; see {logs}", file=sys.stderr)
        for p in procs:
            tail = (logs / f"{names[p.pid]}.log").read_text().strip().splitlines()[-5:]
            print(f"--- {names[p.pid]}:\n" + "\n".join(tail), file=sys.stderr)
        return 1
    summary = summarize(args, files, wall, monitor.recording, budget_ms)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary)
    print(f"  summary: {run_dir / 'summary.json'}\n  recording (MCAP, ros2 bag / Foxglove): {monitor.recording}")
    report(args, run_dir, summary)
    return 1 if summary["reflexes"] else 0


def ensure_export(model: Path, export: Path) -> Path:
    """``export``, written from ``model`` first if it is missing or older than the model, or, when it is
    the default export (``make export``'s), planned at another budget than the deployment config's
    (``configs/deployment/fr3-reach.yaml`` changed since it was written). An export elsewhere is the
    user's: its budget is left as it is.
    """
    weights = model / "weights.safetensors"
    if not weights.is_file():
        raise ConfigError(
            f"model={model}: no trained model there ({weights} missing); the repository ships models/fr3-reach"
        )
    manifest = export / "model.json"
    why: str | None
    if not manifest.is_file():
        why = "missing"
    elif manifest.stat().st_mtime < weights.stat().st_mtime:
        why = "older than the model"
    else:
        why = stale_budget(manifest) if export.resolve() == Path(DemoArgs.export).resolve() else None
        if why is None:
            return export
    print(f"exporting {model} to {export} at the deployment budget (the export is {why})", flush=True)
    cmd = [sys.executable, "-m", "apps.export", f"checkpoint={model}", f"out={export}", "deploy=fr3-reach"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"exporting {model} failed: {last}")
    return export


def stale_budget(manifest: Path) -> str | None:
    """Why the export of ``manifest`` (its ``model.json``) is not at fr3-reach's deployment budget;
    ``None`` when it is (or when the file cannot say: opening the export reports that).
    """
    from apps.common import deploy_planner

    try:
        planned = json.loads(manifest.read_text()).get("planner")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(planned, dict):
        return None
    budget = deploy_planner("fr3-reach")
    changed = [k for k in sorted(budget) if planned.get(k) != budget[k]]
    if not changed:
        return None
    was = ", ".join(f"{k} {planned.get(k)}" for k in changed)
    now = ", ".join(f"{k} {budget[k]}" for k in changed)
    return f"planned at {was}; configs/deployment/fr3-reach.yaml says {now}"


def check_rendering() -> None:
    """Fail now, not after the run, when MuJoCo cannot render offscreen."""
    import mujoco

    try:
        ctx = mujoco.GLContext(64, 64)
        ctx.make_current()
        ctx.free()
    except Exception as exc:  # noqa: BLE001 (any GL failure means the same to the user)
        raise ConfigError(
            f"cannot render the video with MUJOCO_GL={os.environ.get('MUJOCO_GL')} ({exc}); install EGL "
            "(apt-get install libegl1), try MUJOCO_GL=osmesa, or run with video=false"
        ) from None


class Monitor:
    """The demo's own ROS node: records the run (``ros_nodes.recorder``) and tracks the progress."""

    def __init__(self, recording: Path, goals: int) -> None:
        self.recording = recording
        self.goals = goals
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Join the ROS graph (refusing a domain other nodes use), start recording and spinning."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from ros_nodes.recorder import Recorder, Topic

        rclpy.init()
        self._node = rclpy.create_node("wm_demo_monitor")
        others = self._other_nodes()
        if others:
            self._shutdown()
            domain = os.environ.get("ROS_DOMAIN_ID", "0")
            raise ConfigError(
                f"ROS_DOMAIN_ID={domain} is in use (nodes {others[:5]}); set ROS_DOMAIN_ID to a free domain "
                "(0-101), e.g. ROS_DOMAIN_ID=37 make demo"
            )
        topics = [
            Topic(STATE_TOPIC, "sensor_msgs/msg/JointState"),
            Topic(GOAL_TOPIC, "geometry_msgs/msg/PointStamped", latched=True),
            Topic(RESULT_TOPIC, "std_msgs/msg/String", latched=True),
            Topic(COMMAND_TOPIC, "trajectory_msgs/msg/JointTrajectory"),
            Topic(DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray"),
        ]
        self._recorder = Recorder(self._node, self.recording, topics)
        self._results: list[dict[str, Any]] = []
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _other_nodes(self) -> list[str]:
        """Names of the nodes already in this domain, polled until one shows or ``DISCOVERY_WAIT`` s pass.

        DDS discovery runs in its own threads: a participant that is already up answers a new one's
        announcement at once when the machine is idle, but on 2 cores under 4 busy processes it took up
        to 2.4 s (a fixed 1.5 s wait missed the node in CI and in 3 of 5 such runs here), and its own
        periodic announcement comes every 3 s (Fast DDS default).
        """
        deadline = time.monotonic() + DISCOVERY_WAIT
        while True:
            names = {n for n, _ in self._node.get_node_names_and_namespaces()} - {"wm_demo_monitor"}
            if names or time.monotonic() > deadline:
                return sorted(names)
            time.sleep(0.1)

    def _spin(self) -> None:
        import rclpy

        try:
            while rclpy.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except Exception:  # noqa: BLE001 (the context shut down under the executor)
            pass

    def progress(self, elapsed: float) -> str:
        """One line: goal k/N, the TCP's distance to it, the planner's latency and fallback level."""
        import numpy as np
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from ros_nodes.conversions import joint_state_arrays
        from wm_control.kinematics import tcp_position
        from wm_control.robot import FR3

        latest = dict(self._recorder.latest)
        counts = dict(self._recorder.counts)
        if STATE_TOPIC not in latest:
            return f"  [{elapsed:5.0f} s] waiting for the nodes (sim, controller, goals) to start"
        parts = [f"  [{elapsed:5.0f} s]"]
        n_goals = counts.get(GOAL_TOPIC, 0)
        reached = done = 0
        if RESULT_TOPIC in latest:
            last = json.loads(deserialize_message(latest[RESULT_TOPIC], String).data)
            reached, done = self._tally(last)
        parts.append(f"goal {max(min(n_goals, self.goals), 1)}/{self.goals} ({reached} reached of {done})")
        if GOAL_TOPIC in latest:
            g = deserialize_message(latest[GOAL_TOPIC], PointStamped).point
            _, q, _ = joint_state_arrays(deserialize_message(latest[STATE_TOPIC], JointState), FR3.joint_names)
            parts.append(f"distance {np.linalg.norm(tcp_position(FR3, q) - [g.x, g.y, g.z]) * 100:5.1f} cm")
        if DIAGNOSTICS_TOPIC in latest:
            status = deserialize_message(latest[DIAGNOSTICS_TOPIC], DiagnosticArray).status
            ours = [s for s in status if s.name.startswith("wm_mpc_controller")]
            if ours:
                kv = {v.key: v.value for v in ours[0].values}
                levels = {k[len("ticks ") :]: int(v) for k, v in kv.items() if k.startswith("ticks ")}
                level = max(levels, key=lambda k: levels[k]) if levels else "-"
                parts.append(
                    f"planner p50 {kv.get('latency p50 [ms]', '-')} ms, p99 {kv.get('latency p99 [ms]', '-')} ms"
                )
                parts.append(f"mostly {level}")
                parts.append(f"[{['OK', 'WARN', 'ERROR', 'STALE'][min(ours[0].level[0], 3)]}] {ours[0].message}")
        return "  ".join(parts)

    def _tally(self, last: dict[str, Any]) -> tuple[int, int]:
        if not self._results or self._results[-1]["index"] != last["index"]:
            self._results.append(last)
        return sum(r["reached"] for r in self._results), int(last["index"])

    def stop(self) -> None:
        """Finish the recording and leave the graph."""
        if self._thread is None:
            return
        self._recorder.close()
        self._shutdown()
        self._thread.join(timeout=5.0)
        self._thread = None

    def _shutdown(self) -> None:
        import rclpy

        self._node.destroy_node()
        rclpy.try_shutdown()


def summarize(
    args: DemoArgs, files: dict[str, Path], wall_s: float, recording: Path, budget_ms: float
) -> dict[str, Any]:
    """The run in numbers, from the goal publisher's, controller's and sim's files."""

    def read(key: str) -> dict[str, Any]:
        try:
            return dict(json.loads(files[key].read_text()))
        except (OSError, ValueError):
            return {}

    goals, ctrl, sim = read("summary"), read("stats"), read("sim_stats")
    counters = ctrl.get("counters", {})
    return {
        "goals": goals.get("goals", args.goals),
        "goals_reached": goals.get("reached", 0),
        "time_to_reach_median_s": goals.get("time_to_reach_median_s"),
        "time_to_reach_p90_s": goals.get("time_to_reach_p90_s"),
        "planner_latency_p50_ms": ctrl.get("planner_latency_p50_ms"),
        "planner_latency_p99_ms": ctrl.get("planner_latency_p99_ms"),
        "state_to_command_p99_ms": ctrl.get("state_to_command_p99_ms"),
        "ticks": ctrl.get("ticks"),
        "full_solve_share": ctrl.get("full_solve_share"),
        "deadline_misses": ctrl.get("deadline_misses"),
        "ticks_by_level": ctrl.get("ticks_by_level", {}),
        "safety_interventions": counters.get("safety interventions", 0),
        "safety_by_check": {k[len("safety: ") :]: v for k, v in counters.items() if k.startswith("safety: ")},
        "reflexes": sim.get("reflexes", 0),
        "sim_real_time_factor": sim.get("real_time_factor"),
        "wall_s": round(wall_s, 1),
        "args": args.__dict__,
        "results": goals.get("results", []),
        "planner_latency_hist_ms": ctrl.get("planner_latency_hist_ms"),
        "budget_ms": budget_ms,
        "recording": str(recording),
    }


def print_table(s: dict[str, Any]) -> None:
    """The summary as a table a person reads."""

    def fmt(v: Any, unit: str = "", digits: int = 2) -> str:
        return "-" if v is None else f"{v:.{digits}f}{unit}" if isinstance(v, float) else f"{v}{unit}"

    reach = f"{fmt(s['time_to_reach_median_s'], ' s')} / {fmt(s['time_to_reach_p90_s'], ' s')}"
    latency = f"{fmt(s['planner_latency_p50_ms'], ' ms')} / {fmt(s['planner_latency_p99_ms'], ' ms')}"
    rows = [
        ("goals reached", f"{s['goals_reached']} / {s['goals']}"),
        ("time to reach, median / p90", reach),
        ("planner latency p50 / p99", latency),
        ("joint state to command p99", fmt(s["state_to_command_p99_ms"], " ms")),
        ("deadline misses", f"{fmt(s['deadline_misses'])} of {fmt(s['ticks'])} ticks"),
        ("ticks by fallback level", ", ".join(f"{k} {v}" for k, v in s["ticks_by_level"].items()) or "-"),
        ("safety-layer interventions", f"{s['safety_interventions']} {s['safety_by_check'] or ''}".strip()),
        ("reflexes", f"{s['reflexes']}" + (" (expected 0)" if s["reflexes"] else "")),
        ("sim real-time factor", fmt(s["sim_real_time_factor"])),
        ("wall time", fmt(s["wall_s"], " s", 0)),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print("\n  " + "-" * (width + 40))
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("  " + "-" * (width + 40))


def report(args: DemoArgs, run_dir: Path, summary: dict[str, Any]) -> None:
    """Plots and the video from the recording (after the run: rendering takes no controller CPU)."""
    from apps import demo_report

    rec = demo_report.read_recording(summary["recording"])
    paths = [demo_report.plot_distance(rec, run_dir / "distance.png")]
    hist = summary.get("planner_latency_hist_ms")
    if hist:
        budget = float(summary["budget_ms"])
        paths.append(demo_report.plot_latency(hist["edges"], hist["counts"], budget, run_dir / "planner_latency.png"))
    paths.append(demo_report.plot_velocities(rec, run_dir / "joint_velocities.png"))
    print("  plots: " + ", ".join(str(p) for p in paths))
    if args.video:
        print("  rendering the video from the recording ...", flush=True)
        video = demo_report.render_video(rec, run_dir / "demo.mp4")
        print(f"  video: {video}")


# --- the scripted baseline ----------------------------------------------------------------------------
def scripted(args: DemoArgs) -> int:
    """The scripted resolved-rate IK controller on ``fr3-reach``, in-process (a baseline; no ROS)."""
    import numpy as np

    import sim
    from sim.scripted import ResolvedRateController
    from wm_control.evaluation import run_episode
    from wm_control.evaluation import summarize as summarize_episodes
    from wm_control.video import write_video

    print("wm-control demo: the scripted resolved-rate IK baseline on fr3-reach (in-process, no ROS, no model)")
    env = sim.make("fr3-reach", render_mode="rgb_array" if args.video else None)
    controller = ResolvedRateController(env.generator.velocity_scale)
    results, frames = [], []
    t0 = time.perf_counter()
    for k in range(args.goals):
        res = run_episode(env, controller, seed=args.seed + k, render=args.video)
        results.append(res)
        frames.extend(res.frames)
        reached = f"reached in {res.time_to_success:.2f} s" if res.success else "not reached"
        reflex = f", reflex: {res.reflex}" if res.reflex else ""
        print(f"  goal {k + 1}/{args.goals} (seed {res.seed}): {reached}{reflex}", flush=True)
    env.close()
    summary = summarize_episodes(results)
    print(
        f"  reached {summary.success_rate:.0%} of {summary.episodes} goals, median time "
        f"{np.nan_to_num(summary.time_to_success_median, nan=-1):.2f} s; {time.perf_counter() - t0:.1f} s wall"
    )
    if frames:
        run_dir = Path(args.out) / time.strftime("%Y-%m-%d_%H-%M-%S")
        path = write_video(run_dir / "scripted.mp4", frames, fps=env.metadata["render_fps"])
        print(f"  video: {path}")
    return 0 if summary.success_rate > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
