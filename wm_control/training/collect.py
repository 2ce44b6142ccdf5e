"""Rollouts of a policy in a gymnasium env: training episodes as arrays, evaluation episodes as a summary.

``collect_episode`` runs one training episode with a given action rule. The trainer interleaves its
gradient updates with the env steps through ``on_step``, which runs after each ``env.step`` and before
the next action is chosen, so learning happens mid-episode exactly as in TD-MPC2 while this module
stays ignorant of buffers and schedules. ``evaluate_agent`` runs the fixed evaluation episodes (no
exploration noise) and optionally records the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wm_control.errors import check_range
from wm_control.evaluation import EvalSummary, run_episode, summarize
from wm_control.training.agent import TDMPC2

__all__ = ["EVAL_SEED", "ActFn", "Episode", "collect_episode", "evaluate_agent"]

EVAL_SEED = 1_000_000  # evaluation episode k resets with EVAL_SEED + k: comparable across evaluations and runs

# (obs (O,), step index within the episode) -> action (A,)
ActFn = Callable[[np.ndarray, int], np.ndarray]


class Episode(NamedTuple):
    """One collected episode, laid out as ``EpisodeBuffer.add`` takes it (``T`` env steps).

    Attributes:
        obs: observations ``(T + 1, O)``; ``obs[0]`` is the reset observation.
        actions: actions ``(T, A)``; ``actions[t]`` was taken at ``obs[t]``.
        rewards: rewards ``(T,)``; ``rewards[t]`` followed ``actions[t]``.
        terminated: ``(T,)`` bool, True where the env terminated (not truncated) at that step.
        info: the ``info`` dict of the last ``env.step`` (an episode has at least one step).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    info: dict[str, Any]

    @property
    def length(self) -> int:
        """Number of env steps ``T``."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Sum of the rewards (float64 accumulation)."""
        return float(np.sum(self.rewards))


def collect_episode(
    env: Any,
    act: ActFn,
    seed: int,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Episode:
    """Reset ``env`` with ``seed`` and step it with ``act`` until it terminates, truncates or the budget ends.

    Args:
        env: a gymnasium env (``reset(seed=...)``, ``step(action)``).
        act: ``(obs, t) -> action``; ``t`` is the step index within this episode (0 right after reset).
        seed: the reset seed.
        max_steps: step budget for this episode (None: until the env ends it); an episode cut by the
            budget ends like a truncated one (its ``terminated`` flags are the env's).
        on_step: called with ``t`` after step ``t`` has been taken and recorded, before the next action
            is chosen (the trainer's updates run here, so their RNG draws interleave with ``act``'s).

    Returns:
        The episode. An exception raised by ``act``, ``env.step`` or ``on_step`` (e.g. ``KeyboardInterrupt``)
        propagates and the unfinished episode is lost.
    """
    if max_steps is not None:
        check_range("max_steps", max_steps, 1, None)
    obs, _ = env.reset(seed=seed)
    ep_obs: list[np.ndarray] = [obs]
    ep_act: list[np.ndarray] = []
    ep_rew: list[float] = []
    ep_term: list[bool] = []
    info: dict[str, Any] = {}
    done = False
    while not done:
        t = len(ep_act)
        action = act(obs, t)
        obs, reward, terminated, truncated, info = env.step(action)
        ep_obs.append(obs)
        ep_act.append(action)
        ep_rew.append(reward)
        ep_term.append(terminated)
        done = bool(terminated or truncated) or (max_steps is not None and t + 1 >= max_steps)
        if on_step is not None:
            on_step(t)
    return Episode(np.array(ep_obs), np.array(ep_act), np.array(ep_rew), np.array(ep_term, dtype=bool), info)


def evaluate_agent(env: Any, agent: TDMPC2, episodes: int, video_path: Path | None = None) -> EvalSummary:
    """Run ``episodes`` evaluation episodes of ``agent`` (no exploration noise) from seeds ``EVAL_SEED + k``.

    Args:
        env: a gymnasium env; it must render ``rgb_array`` frames when ``video_path`` is given.
        agent: the agent; its planner's warm start is cleared at each reset.
        episodes: number of episodes.
        video_path: where to write the first episode as a video (None: no recording).
    """
    first = [True]

    def policy(obs: np.ndarray) -> np.ndarray:
        a = agent.act(obs, t0=first[0], eval_mode=True)
        first[0] = False
        return a

    def reset() -> None:
        first[0] = True

    results = []
    for k in range(episodes):
        render = video_path is not None and k == 0
        results.append(run_episode(env, policy, seed=EVAL_SEED + k, render=render, reset_policy=reset))
    if video_path is not None and results[0].frames:
        from wm_control.video import write_video

        write_video(video_path, results[0].frames, env.metadata.get("render_fps", 30))
    return summarize(results)
