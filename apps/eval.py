"""``wm-control-eval``: run a trained checkpoint for N seeded episodes (hydra; configs/eval.yaml).

    wm-control-eval checkpoint=runs/fr3-reach/2026-11-22_10-00-00 episodes=50

Prints and writes ``eval.json`` (return, success rate, time to success) and a video of the first
episode into ``<run>/eval/step_<N>`` (or ``out=``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from apps.common import build_agent, config_dir, env_factory, planner_budget, recorded_contract, set_threads


def default_out(checkpoint: Path, step: int, model_only: bool) -> Path:
    """Where an evaluation goes without ``out=``: ``<run>/eval/step_<N>`` for a training run's
    checkpoint (``<run>/checkpoints/step_<N>``); ``runs/eval/<name>/step_<N>`` for a model-only copy,
    which may live in a repository (``models/<name>``) that evaluations should not write into.
    """
    if model_only:
        return Path("runs") / "eval" / checkpoint.name / f"step_{step:09d}"
    return checkpoint.parent.parent / "eval" / f"step_{step:09d}"


def evaluate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``cfg["checkpoint"]``; returns the summary written to ``eval.json``."""
    from wm_control import native
    from wm_control.errors import ConfigError
    from wm_control.evaluation import run_episode, summarize
    from wm_control.training.checkpoint import load_checkpoint
    from wm_control.video import write_video

    set_threads(cfg.get("threads"))
    native.tune_allocator()
    if int(cfg["episodes"]) < 1:
        raise ConfigError(f"episodes={cfg['episodes']} must be >= 1")
    ckpt = load_checkpoint(cfg["checkpoint"])
    run = dict(ckpt.config)
    run["planner"] = planner_budget(cfg.get("planner"), run["planner"])
    run["device"] = cfg.get("device", "cpu")
    make_env = env_factory(run["task"])
    env = make_env(bool(cfg["video"]))
    recorded_contract(ckpt, env)
    agent = build_agent(run, env)
    agent.load_state(ckpt.tensors, ckpt.state["agent"])
    step = int(ckpt.state["trainer"]["step"])
    first = [True]

    def policy(obs: Any) -> Any:
        a = agent.act(obs, t0=first[0], eval_mode=bool(cfg["eval_mode"]))
        first[0] = False
        return a

    def reset() -> None:
        first[0] = True

    out = Path(cfg["out"]) if cfg.get("out") else default_out(ckpt.path, step, ckpt.model_only)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    for k in range(int(cfg["episodes"])):
        res = run_episode(
            env, policy, seed=int(cfg["seed"]) + k, render=bool(cfg["video"]) and k == 0, reset_policy=reset
        )
        results.append(res)
        if res.frames:
            write_video(out / "episode_0.mp4", res.frames, env.metadata.get("render_fps", 30))
    summary = summarize(results).to_dict()
    payload = {
        "checkpoint": str(ckpt.path),
        "task": run["task"]["name"],
        "step": step,
        **summary,
        "time_to_target_median_s": summary["time_to_success_median"],
        "planner": run["planner"],
        "eval_mode": bool(cfg["eval_mode"]),
        "seeds": [int(cfg["seed"]), int(cfg["seed"]) + int(cfg["episodes"]) - 1],
        "wall_s": time.perf_counter() - t0,
    }
    (out / "eval.json").write_text(json.dumps(payload, indent=2))
    env.close()
    return payload


def main() -> None:
    """Console entry point."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from wm_control.errors import WmControlError

    @hydra.main(config_path=config_dir(), config_name="eval", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(plain, dict)
        try:
            res = evaluate(plain)  # type: ignore[arg-type]
        except WmControlError as exc:
            print(f"wm-control-eval: error: {exc}", file=sys.stderr)
            sys.exit(2)
        sr = res["success_rate"]
        success = f", success {sr:.0%}" if sr is not None else ""
        ret = f"return {res['return_mean']:.1f} +- {res['return_std']:.1f}"
        print(f"{res['task']} @ step {res['step']}: {ret}{success} over {res['episodes']} episodes")

    _main()


if __name__ == "__main__":
    main()
