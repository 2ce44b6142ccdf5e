"""The ROS controller path without DDS, on simulated time: what ``wm_mpc_controller`` and
``wm_mujoco_sim`` do to each other, with the timing of the link chosen instead of suffered.

    make export
    python bench/ros_link.py [--export exports/fr3-reach] [--goals 10] [--seed 0] [--planner-seed S]
                             [--latency-ms 12] [--jitter-ms 4] [--state-rate 250] [--prepare]
                             [--retreat-stall-time 1.5] [--no-write]

Each control period (the contract's ``dt``) a ``Commander`` (the control loop behind the safety layer,
built as the controller node builds it) ticks on the newest joint state the sim published at
``--state-rate`` (plus ``--transport-ms``); the stamped chunk reaches ``FR3Sim.send_stamped`` (the
sim node's 1 kHz layer, ``playout_delay`` from the contract) ``--latency-ms`` + uniform[0,
``--jitter-ms``] after its tick. The goals are the goal publisher's (random in the model's goal box
from ``--seed``, one after another from wherever the arm is, 2 cm / 0.05 m/s / 0.2 s / 8 s timeout).
The commander has the controller node's goal arrival and stall retreat (``--retreat-stall-time 0``: off).
Planning takes no simulated time (every tick is a full solve), so this measures the path's semantics
(stamps, playout, lateness, resyncs, the safety layer) and the model on that goal sequence, not this
machine's load; ``bench/ros_loop.py`` measures the same path over DDS in real time.

Prints JSON; writes ``docs/results/ros_link.json`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _common import machine_info, write_result

import sim.scene
from sim.physics import FR3Sim
from wm_control.errors import WmControlError
from wm_control.goals import GoalSequence, GoalSettings, random_goals
from wm_control.kinematics import tcp_jacobian, tcp_position
from wm_control.robot import FR3
from wm_control.runtime import control_loop, load_backend
from wm_control.runtime.arrival import ArrivalConfig, GoalArrival
from wm_control.runtime.commander import Commander
from wm_control.runtime.retreat import Retreat, RetreatConfig
from wm_control.safety import SafetyConfig, SafetyLayer


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", default="exports/fr3-reach", help="export folder (make export)")
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--goals", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="seed of the goals (the goal publisher's)")
    ap.add_argument("--planner-seed", type=int, default=None, help="seed of the planner's noise (default: --seed)")
    ap.add_argument("--state-rate", type=float, default=250.0, help="joint state rate [Hz]")
    ap.add_argument("--transport-ms", type=float, default=1.0, help="joint state delivery delay [ms]")
    ap.add_argument("--latency-ms", type=float, default=12.0, help="tick start to chunk arrival [ms]")
    ap.add_argument("--jitter-ms", type=float, default=4.0, help="uniform extra arrival delay [ms]")
    ap.add_argument("--timeout", type=float, default=8.0, help="time allowed per goal [s]")
    ap.add_argument(
        "--arrival-radius", type=float, default=ArrivalConfig().radius, help="controller's arrival_radius [m]; 0: off"
    )
    ap.add_argument("--arrival-lead", type=float, default=0.12, help="controller's arrival_lead [s]")
    ap.add_argument(
        "--arrival-rest-speed", type=float, default=0.0, help="controller's arrival_rest_speed [m/s]; 0: off"
    )
    ap.add_argument(
        "--retreat-stall-time",
        type=float,
        default=RetreatConfig().stall_time,
        help="controller's retreat_stall_time [s]: back to the start pose after this long without progress; 0: off",
    )
    ap.add_argument("--no-floor", action="store_true", help="the safety layer's floor check off")
    ap.add_argument("--no-base", action="store_true", help="the safety layer's base column check off")
    ap.add_argument("--no-self", action="store_true", help="the safety layer's self-collision check off")
    ap.add_argument(
        "--prepare",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="prepare each solve between ticks (wm_mpc_controller's parameter prepare, off by default)",
    )
    ap.add_argument("--out", default="ros_link.json", help="file name under docs/results/")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    for name in ("state_rate", "latency_ms", "jitter_ms", "transport_ms", "timeout"):
        if not getattr(args, name) >= 0 or (name == "state_rate" and args.state_rate <= 0):
            raise SystemExit(f"--{name.replace('_', '-')}={getattr(args, name)} must be > 0 (>= 0 for delays)")

    backend = load_backend(args.export, args.backend, threads=2)
    contract = backend.contract
    delay = float(contract.action.get("playout_delay", 0.0))
    physics = FR3Sim(sim.scene.build_model(hand=True, scene=True), FR3, playout_delay=delay)
    now = [0.0]
    loop = control_loop(
        backend,
        servo_period=physics.h,
        clock=lambda: now[0],
        seed=args.seed if args.planner_seed is None else args.planner_seed,
        prepare=args.prepare,
    )
    shaping = loop.generator.config
    safety = SafetyLayer(
        FR3,
        SafetyConfig(
            acceleration_fraction=shaping.acceleration_fraction,
            jerk_fraction=shaping.jerk_fraction,
            floor_height=None if args.no_floor else 0.0,  # the sim's table top is the base frame's z = 0
            base_clearance=None if args.no_base else 0.02,
            self_clearance=None if args.no_self else 0.02,
        ),
        loop.generator.dt,
        loop.generator.servo_period,
    )
    try:
        arrival = GoalArrival(
            FR3, ArrivalConfig(radius=args.arrival_radius, lead=args.arrival_lead, rest_speed=args.arrival_rest_speed)
        )
    except WmControlError as exc:
        raise SystemExit(f"--arrival-radius / --arrival-lead / --arrival-rest-speed: {exc}") from None
    try:
        retreat = Retreat(FR3, loop.generator.velocity_scale, RetreatConfig(stall_time=args.retreat_stall_time))
    except WmControlError as exc:
        raise SystemExit(f"--retreat-stall-time: {exc}") from None
    commander = Commander(loop, safety, lambda: now[0], max_lateness=0.02, arrival=arrival, retreat=retreat)
    space = contract.goal
    goals = GoalSequence(
        random_goals(args.goals, space["low"], space["high"], args.seed), GoalSettings(timeout=args.timeout)
    )
    rng = np.random.default_rng(args.seed)
    dt, h = loop.generator.dt, physics.h
    state_period = max(round(1.0 / args.state_rate / h), 1) * h
    states: list[tuple[float, np.ndarray, np.ndarray]] = [(0.0, physics.q.copy(), physics.dq.copy())]
    pending: list[tuple[float, object]] = []  # (arrival time, stamped chunk)
    levels: Counter[str] = Counter()
    reflex = ""
    goals.start(0.0)
    wall0 = time.perf_counter()
    t_tick = 0.5 * dt
    distances: list[float] = []

    def run_until(t: float) -> None:
        """Advance the sim to ``t``, publishing states and delivering chunks on the way."""
        nonlocal reflex
        while physics.time < t - 1e-9 and not reflex:
            nxt = min([states[-1][0] + state_period, t] + [a for a, _ in pending if a > physics.time])
            n = int(round((nxt - physics.time) / h))
            if n > 0:
                report = physics.advance(n * h)
                if report.reflex is not None:
                    reflex = report.reflex.message
                    return
            for item in [p for p in pending if p[0] <= physics.time + 1e-9]:
                pending.remove(item)
                physics.send_stamped(item[1])  # type: ignore[arg-type]
            if physics.time >= states[-1][0] + state_period - 1e-9:
                states.append((physics.time, physics.q.copy(), physics.dq.copy()))
                q, dq = states[-1][1], states[-1][2]
                result = goals.update(
                    physics.time, tcp_position(FR3, q), float(np.linalg.norm(tcp_jacobian(FR3, q)[:3] @ dq))
                )
                distances.append(goals.distance)
                if result is not None and not goals.done:
                    goals.start(physics.time)

    while not goals.done and not reflex:
        run_until(t_tick)
        now[0] = t_tick
        t_state, q, dq = next(s for s in reversed(states) if s[0] <= t_tick - args.transport_ms * 1e-3)
        out = commander.tick(t_state, q, dq, goals.current)
        levels[out.command.level.name] += 1
        if out.chunk is not None:
            # The sim node takes messages between its whole 1 ms physics ticks.
            arrival = np.ceil((t_tick + (args.latency_ms + rng.uniform(0.0, args.jitter_ms)) * 1e-3) / h - 1e-6) * h
            pending.append((arrival, out.chunk))
        commander.prepare()
        t_tick += dt
    summary = goals.summary()
    result = {
        "benchmark": "ros_link",
        "command": "python " + " ".join(["bench/ros_link.py", *sys.argv[1:]]),
        "export": args.export,
        "seed": args.seed,
        "planner_seed": args.seed if args.planner_seed is None else args.planner_seed,
        "prepare": args.prepare,
        "playout_delay_s": delay,
        "state_rate_hz": 1.0 / state_period,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "arrival_radius_m": args.arrival_radius,
        "arrival_lead_s": args.arrival_lead,
        "arrival_rest_speed_m_s": args.arrival_rest_speed,
        "retreat_stall_time_s": args.retreat_stall_time,
        "floor_check": not args.no_floor,
        "base_check": not args.no_base,
        "self_check": not args.no_self,
        "goals": summary["goals"],
        "goals_reached": summary["reached"],
        "time_to_reach_median_s": summary["time_to_reach_median_s"],
        "time_to_reach_p90_s": summary["time_to_reach_p90_s"],
        "reflex": reflex or None,
        "ticks_by_level": dict(levels),
        "counters": commander.counters,
        "refused_by_reason": physics.refused_chunks,
        "simulated_s": round(physics.time, 3),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "results": summary["results"],
        "machine": machine_info(),
    }
    if args.no_write:
        print(json.dumps(result, indent=2))
    else:
        write_result(args.out, result)  # prints it too


if __name__ == "__main__":
    main()
