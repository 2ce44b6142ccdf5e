"""Parity of an exported runtime against the eager-torch model on identical inputs and noise.

Every graph is run through both backends on seeded observations, warm starts and planner noise; the
report holds the largest absolute difference of each output, the tolerance, and whether it passed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.runtime.backend import Backend
from wm_control.runtime.noise import draw_noise_np

__all__ = ["FP32_TOLERANCE", "compare_backends", "write_report"]

FP32_TOLERANCE = 1e-4


def compare_backends(
    reference: Backend, candidate: Backend, cases: int = 4, seed: int = 0, obs_scale: float = 1.0
) -> dict[str, float]:
    """Largest difference per output (``graph.output``) over ``cases`` seeded inputs: absolute for
    actions, means, stds and latents (all bounded), relative to ``1 + |value|`` for elite values.
    """
    rng = np.random.default_rng(seed)
    cfg = reference.planner
    A, O = reference.action_dim, reference.obs_dim
    worst: dict[str, float] = {}

    def note(key: str, a: Any, b: Any, relative: bool = False) -> None:
        ref, cand = np.asarray(a, np.float64), np.asarray(b, np.float64)
        diff = np.abs(ref - cand)
        if relative:  # values are unbounded: compare relative to their size (1 + |value|)
            diff = diff / (1.0 + np.abs(ref))
        worst[key] = max(worst.get(key, 0.0), float(np.max(diff)))

    for _ in range(cases):
        obs = (obs_scale * rng.standard_normal(O)).astype(np.float32)
        mean = np.clip(0.5 * rng.standard_normal((cfg.horizon, A)), -1, 1).astype(np.float32)
        noise = draw_noise_np(cfg, A, reference.num_q, rng)
        note("policy.action", reference.policy(obs), candidate.policy(obs))
        for scale in (0.0, 1.0):
            r, c = reference.plan(obs, mean, noise, scale), candidate.plan(obs, mean, noise, scale)
            tag = "eval" if scale == 0.0 else "explore"
            note(f"planner.action[{tag}]", r.action, c.action)
            note(f"planner.next_mean[{tag}]", r.mean, c.mean)
            note(f"planner.elite_value_mean[{tag}] (relative)", r.elite_value_mean, c.elite_value_mean, True)
        rz, rp = reference.plan_init(obs, noise.pi_eps)
        cz, cp = candidate.plan_init(obs, noise.pi_eps)
        note("planner_init.z", rz, cz)
        note("planner_init.prior", rp, cp)
        std = np.full((cfg.horizon, A), cfg.max_std, np.float32)
        rs = reference.plan_step(rz, rp, mean, std, noise.step(0), 0.0)
        cs = candidate.plan_step(rz, rp, mean, std, noise.step(0), 0.0)
        note("planner_step.mean", rs.mean, cs.mean)
        note("planner_step.std", rs.std, cs.std)
        note("planner_step.action", rs.action, cs.action)
    return worst


def write_report(path: str | Path, diffs: dict[str, float], tolerance: float, **info: Any) -> dict[str, Any]:
    """Write ``parity.json``: the differences, the tolerance, ``passed``, plus ``info``."""
    worst = max(diffs.values()) if diffs else 0.0
    report = {**info, "tolerance": tolerance, "max_abs_diff": worst, "passed": worst <= tolerance, "outputs": diffs}
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp.replace(target)
    return report
