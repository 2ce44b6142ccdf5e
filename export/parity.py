"""Parity of an exported runtime against the eager-torch model on identical inputs and noise.

Every graph is run through both backends on seeded observations, warm starts and planner noise; the
report holds the largest difference of each output, the tolerances, and whether it passed.

Two properties of MPPI decide what "the same" can mean in float32:

- **Value resolution.** Values are decoded as ``symexp`` of a two-hot average in symlog space, so
  one rounding step of that average moves a value of ``v`` by about ``(1 + |v|) log(1 + |v|)``
  float32 epsilons. The softmax weights see value differences times ``temperature``, so to first
  order a weighted mean of actions in [-1, 1] moves by ``temperature dv``. Outputs downstream of the
  weights (action, warm start, std) get ``tolerance + temperature dv(v)``, with ``dv`` 8 epsilons of
  the decode at the largest elite value (``decode_resolution``; 3.7e-4 at ``v = 87``, the trained
  fr3-reach model, which differs by 1.5e-4 against a tolerance of 2.9e-4). Everything else (policy,
  latent, prior, relative elite values) is held to ``tolerance``.
- **Ties.** MPPI keeps the top ``num_elites`` samples, a step function of the values: where the
  last elite and the best rejected sample are closer than rounding, either runtime may keep other
  elites, and their actions then differ by more than rounding although both solved the same problem
  correctly. When the reference can tell (``TorchBackend.elite_margins``), a solve whose smallest
  elite margin is below ``TIE_MARGIN`` is a *tie case*: its top-k-dependent outputs are reported
  under ``[tie]`` keys and do not decide the verdict, and at least one solve must be tie-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.planning.config import MppiConfig
from wm_control.runtime.backend import Backend
from wm_control.runtime.noise import draw_noise_np

__all__ = ["FP32_TOLERANCE", "TIE_MARGIN", "ParityResult", "compare_backends", "decode_resolution", "write_report"]

FP32_TOLERANCE = 1e-4
# Relative elite margin below which a solve counts as a tie case: 5x the largest relative value
# difference measured between onnxruntime and torch on the trained fr3-reach model (2e-6).
TIE_MARGIN = 1e-5
TIE_SUFFIX = "[tie]"
# Outputs computed from the MPPI weights (the rest is compared at the base tolerance).
_WEIGHTED = ("planner.action", "planner.next_mean", "planner_step.mean", "planner_step.std", "planner_step.action")


def decode_resolution(value: float) -> float:
    """How far 8 float32 rounding steps of the symlog-space average move a decoded value ``value``."""
    v = abs(value)
    return (1.0 + v) * max(math.log1p(v), 1.0) * 8.0 * float(np.finfo(np.float32).eps)


@dataclass
class ParityResult:
    """Largest difference per output (``graph.output``) and what the verdict needs."""

    planner: MppiConfig
    cases: int
    diffs: dict[str, float] = field(default_factory=dict)
    tie_cases: int = 0
    min_elite_margin: float | None = None  # relative, from the reference; None if it cannot tell
    value_scale: float = 0.0  # largest |elite value mean| of the reference

    def note(self, key: str, a: Any, b: Any, relative: bool = False) -> None:
        """Record ``max |a - b|`` (relative to ``1 + |a|`` for unbounded values) under ``key``."""
        ref, cand = np.asarray(a, np.float64), np.asarray(b, np.float64)
        diff = np.abs(ref - cand)
        if relative:
            diff = diff / (1.0 + np.abs(ref))
        self.diffs[key] = max(self.diffs.get(key, 0.0), float(np.max(diff)))

    def tolerance_for(self, key: str, tolerance: float) -> float:
        """The tolerance of output ``key`` (see the module docstring)."""
        if not key.startswith(_WEIGHTED):
            return tolerance
        return tolerance + self.planner.temperature * decode_resolution(self.value_scale)

    def verdict(self, tolerance: float) -> tuple[float, bool]:
        """The largest deciding difference relative to its tolerance (<= 1 passes), and the verdict."""
        ratios = [v / self.tolerance_for(k, tolerance) for k, v in self.diffs.items() if not k.endswith(TIE_SUFFIX)]
        worst = max(ratios) if ratios else 0.0
        return worst, worst <= 1.0 and self.tie_cases < self.cases


def compare_backends(
    reference: Backend, candidate: Backend, cases: int = 4, seed: int = 0, obs_scale: float = 1.0
) -> ParityResult:
    """Run both backends on ``cases`` seeded inputs and record their largest differences."""
    rng = np.random.default_rng(seed)
    cfg = reference.planner
    A, O = reference.action_dim, reference.obs_dim
    res = ParityResult(cfg, cases)
    margins_of = getattr(reference, "elite_margins", None)
    for _ in range(cases):
        obs = (obs_scale * rng.standard_normal(O)).astype(np.float32)
        mean = np.clip(0.5 * rng.standard_normal((cfg.horizon, A)), -1, 1).astype(np.float32)
        noise = draw_noise_np(cfg, A, reference.num_q, rng)
        margins = margins_of(obs, mean, noise) if margins_of is not None else np.full(cfg.iterations, np.inf)
        smallest = float(np.min(margins))
        if np.isfinite(smallest):
            res.min_elite_margin = smallest if res.min_elite_margin is None else min(res.min_elite_margin, smallest)
        tie = TIE_SUFFIX if smallest < TIE_MARGIN else ""
        first_tie = TIE_SUFFIX if float(margins[0]) < TIE_MARGIN else ""
        res.tie_cases += bool(tie)
        res.note("policy.action", reference.policy(obs), candidate.policy(obs))
        for scale in (0.0, 1.0):
            r, c = reference.plan(obs, mean, noise, scale), candidate.plan(obs, mean, noise, scale)
            tag = "eval" if scale == 0.0 else "explore"
            res.value_scale = max(res.value_scale, abs(r.elite_value_mean))
            res.note(f"planner.action[{tag}]{tie}", r.action, c.action)
            res.note(f"planner.next_mean[{tag}]{tie}", r.mean, c.mean)
            res.note(f"planner.elite_value_mean[{tag}] (relative)", r.elite_value_mean, c.elite_value_mean, True)
        rz, rp = reference.plan_init(obs, noise.pi_eps)
        cz, cp = candidate.plan_init(obs, noise.pi_eps)
        res.note("planner_init.z", rz, cz)
        res.note("planner_init.prior", rp, cp)
        std = np.full((cfg.horizon, A), cfg.max_std, np.float32)
        rs = reference.plan_step(rz, rp, mean, std, noise.step(0), 0.0)
        cs = candidate.plan_step(rz, rp, mean, std, noise.step(0), 0.0)
        res.note(f"planner_step.mean{first_tie}", rs.mean, cs.mean)
        res.note(f"planner_step.std{first_tie}", rs.std, cs.std)
        res.note(f"planner_step.action{first_tie}", rs.action, cs.action)
    return res


def write_report(path: str | Path, result: ParityResult, tolerance: float, **info: Any) -> dict[str, Any]:
    """Write ``parity.json``: per output its largest difference and tolerance, the tie bookkeeping,
    ``worst_ratio`` (largest difference over its tolerance) and ``passed``, plus ``info``.
    """
    worst, passed = result.verdict(tolerance)
    report = {
        **info,
        "cases": result.cases,
        "tolerance": tolerance,
        "tie_margin": TIE_MARGIN,
        "tie_cases": result.tie_cases,
        "min_elite_margin": result.min_elite_margin,
        "value_scale": result.value_scale,
        "worst_ratio": worst,
        "max_abs_diff": max((v for k, v in result.diffs.items() if not k.endswith(TIE_SUFFIX)), default=0.0),
        "passed": passed,
        "outputs": {
            k: {"diff": v, "tolerance": None if k.endswith(TIE_SUFFIX) else result.tolerance_for(k, tolerance)}
            for k, v in sorted(result.diffs.items())
        },
    }
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp.replace(target)
    return report
