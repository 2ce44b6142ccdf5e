"""Run a policy for seeded episodes on any gymnasium env and summarise return, success and
time-to-success. Used for scripted baselines, training-time evaluation and ``wm-control-eval``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpisodeResult", "EvalSummary", "run_episode", "summarize"]


@dataclass(frozen=True)
class EpisodeResult:
    """One episode: total reward, length, success (``info["is_success"]`` at the end; None when the
    env does not report success), time to success [s] (NaN if never), the reflex reason if one ended
    it, and optional frames.
    """

    seed: int
    episode_return: float
    length: int
    success: bool | None
    time_to_success: float
    reflex: str | None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class EvalSummary:
    """Aggregate of several episodes."""

    episodes: int
    return_mean: float
    return_std: float
    success_rate: float
    time_to_success_median: float
    reflexes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


Policy = Callable[[np.ndarray], np.ndarray]


def run_episode(
    env: Any, policy: Policy, seed: int, render: bool = False, reset_policy: Callable[[], None] | None = None
) -> EpisodeResult:
    """Run one episode of ``policy`` (observation -> action) on ``env`` from ``env.reset(seed=seed)``.

    ``reset_policy`` is called after the env reset (e.g. to clear a planner's warm start). With
    ``render`` the frames of ``env.render()`` are collected (first frame after reset included).
    """
    obs, info = env.reset(seed=seed)
    if reset_policy is not None:
        reset_policy()
    frames = [env.render()] if render else []
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += float(reward)
        steps += 1
        if render:
            frames.append(env.render())
        if terminated or truncated:
            break
    return EpisodeResult(
        seed=seed,
        episode_return=total,
        length=steps,
        success=bool(info["is_success"]) if "is_success" in info else None,
        time_to_success=float(info.get("time_to_target", float("nan"))),
        reflex=info.get("reflex"),
        frames=frames,
    )


def summarize(results: list[EpisodeResult]) -> EvalSummary:
    """Mean/std return, success rate (NaN if the env reports none), median time to success over
    successful episodes, reflex count.
    """
    returns = np.array([r.episode_return for r in results], dtype=np.float64)
    times = np.array([r.time_to_success for r in results if r.success and not math.isnan(r.time_to_success)])
    reported = results and all(r.success is not None for r in results)
    return EvalSummary(
        episodes=len(results),
        return_mean=float(returns.mean()) if len(returns) else float("nan"),
        return_std=float(returns.std()) if len(returns) else float("nan"),
        success_rate=float(np.mean([bool(r.success) for r in results])) if reported else float("nan"),
        time_to_success_median=float(np.median(times)) if len(times) else float("nan"),
        reflexes=sum(r.reflex is not None for r in results),
    )
