"""Online TD-MPC2 training on any gymnasium env: the schedule that ties collection, updates,
evaluation and checkpoints together.

The loop follows the reference: ``seed_steps`` random actions (default ``max(1000, 5 L)``), then one
pass of ``seed_steps`` updates, then plan-and-act with one update per env step (a fine-tuning run,
``Trainer.initialize``, plans from the start and skips the burst). Episodes are run by
``collect.collect_episode``, whose per-step callback runs the updates; what a checkpoint holds is
assembled by ``checkpoint.training_state``. Evaluations (no exploration noise) and checkpoints happen
at episode boundaries once their interval has passed, so a run resumed from a checkpoint continues
exactly as if it had never stopped. ``Ctrl-C`` saves a checkpoint (the unfinished episode is dropped)
before returning.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_control.errors import CheckpointError, WmControlError, check_range
from wm_control.evaluation import EvalSummary
from wm_control.training.agent import TDMPC2, UPDATE_METRICS
from wm_control.training.buffer import EpisodeBuffer
from wm_control.training.checkpoint import (
    Checkpoint,
    TrainerState,
    config_differences,
    plain_json,
    save_checkpoint,
    training_state,
)
from wm_control.training.collect import collect_episode, evaluate_agent
from wm_control.training.logger import RunLogger, plot_learning_curve

__all__ = ["TrainConfig", "TrainResult", "Trainer", "default_seed_steps"]

EnvFactory = Callable[[bool], Any]  # render -> gymnasium env


@dataclass(frozen=True)
class TrainConfig:
    """Online training schedule.

    steps: env steps in total. seed: seeds the env episodes, the replay sampling and (via the agent)
    the model. seed_steps: random-action steps before learning (None: max(1000, 5 x episode length)).
    buffer_size: replay capacity [transitions]. eval_freq / eval_episodes: evaluate every
    ``eval_freq`` env steps (0 disables). checkpoint_freq: env steps between checkpoints (0: only
    at the end). keep_checkpoints: how many to keep. save_video: record the first eval episode.
    progress: show a progress bar.
    """

    steps: int = 100_000
    seed: int = 1
    seed_steps: int | None = None
    buffer_size: int = 1_000_000
    eval_freq: int = 10_000
    eval_episodes: int = 10
    checkpoint_freq: int = 50_000
    keep_checkpoints: int = 2
    save_video: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_range("train.steps", self.steps, 1, 1 << 40)
        check_range("train.seed", self.seed, 0, (1 << 31) - 1)
        if self.seed_steps is not None:
            check_range("train.seed_steps", self.seed_steps, 1, 1 << 40)
        check_range("train.buffer_size", self.buffer_size, 1, 1 << 40)
        check_range("train.eval_freq", self.eval_freq, 0, 1 << 40)
        check_range("train.eval_episodes", self.eval_episodes, 1, 100_000)
        check_range("train.checkpoint_freq", self.checkpoint_freq, 0, 1 << 40)
        check_range("train.keep_checkpoints", self.keep_checkpoints, 1, 1000)


def default_seed_steps(episode_length: int) -> int:
    """TD-MPC2's default number of random-action steps."""
    return max(1000, 5 * episode_length)


@dataclass(frozen=True)
class TrainResult:
    """How a ``train`` call ended."""

    steps: int
    episodes: int
    wall_s: float
    interrupted: bool
    last_eval: EvalSummary | None
    checkpoint: Path | None


class Trainer:
    """Runs TD-MPC2 online training for one agent and env into ``run_dir``.

    Args:
        env_factory: ``render -> env``; called once for training and once for evaluation.
        agent: the agent to train.
        cfg: schedule.
        run_dir: output folder (metrics, tb, videos, checkpoints, curve.png).
        run_config: plain-data config of the whole run, stored in checkpoints.
        title: plot title (e.g. the task name).
        contract: the control contract the model is trained under (robot, joint names, dt, observation
            layout, action meaning and scaling; plain JSON data), stored in every checkpoint. ``restore``
            refuses a checkpoint with a different one, and adopts the checkpoint's when this is None.
        fine_tune: the agent starts from a trained model (``initialize``): its plans, not random
            actions, collect the first ``seed_steps``, and learning starts after them with one update
            per step, without the burst of ``seed_steps`` updates a fresh model takes.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        agent: TDMPC2,
        cfg: TrainConfig,
        run_dir: str | Path,
        run_config: dict[str, Any],
        title: str = "",
        contract: dict[str, Any] | None = None,
        fine_tune: bool = False,
    ) -> None:
        self.cfg = cfg
        self.fine_tune = fine_tune
        self.agent = agent
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.title = title
        # As it reads back from state.json, so restore compares like with like (tuples vs lists).
        self.contract: dict[str, Any] | None = None if contract is None else plain_json(contract)
        self.env = env_factory(False)
        self._env_factory = env_factory
        self._eval_env: Any = None
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        self.action_dim = int(np.prod(self.env.action_space.shape))
        self.buffer = EpisodeBuffer(min(cfg.buffer_size, cfg.steps), self.obs_dim, self.action_dim)
        self.rng = np.random.default_rng(cfg.seed)
        self.seed_steps = cfg.seed_steps if cfg.seed_steps is not None else default_seed_steps(agent.episode_length)
        self.step = 0
        self.episode = 0
        self.next_eval = 0 if cfg.eval_freq else math.inf
        self.next_checkpoint = cfg.checkpoint_freq if cfg.checkpoint_freq else math.inf
        self.elapsed_s = 0.0
        self.last_eval: EvalSummary | None = None

    # --- state -----------------------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Save agent, buffer, counters and RNG states to ``run_dir/checkpoints/step_<N>``."""
        tensors = self.agent.state_tensors()
        tensors["torch_rng"] = torch.get_rng_state()
        rng_state = dict(self.rng.bit_generator.state)
        counters = TrainerState(
            self.step, self.episode, self.next_eval, self.next_checkpoint, self.elapsed_s, rng_state
        )
        state = training_state(self.run_config, self.agent.state_meta(), counters, self.contract)
        root = self.run_dir / "checkpoints"
        path = save_checkpoint(root, f"step_{self.step:09d}", tensors, state, self.buffer.save)
        kept = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in kept[: -self.cfg.keep_checkpoints]:
            _rmtree(old)
        return path

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint of this run (same config).

        The counters, the numpy RNG state and the buffer are read and checked before anything changes.

        Raises:
            CheckpointError: ``ckpt`` is model-only, was trained under a different contract, or its
                counters, RNG states or buffer are malformed or do not fit this trainer.
        """
        if ckpt.model_only:
            raise CheckpointError(f"checkpoint {ckpt.path} is a model-only copy (no optimiser state, no replay buffer)")
        if self.contract is not None and ckpt.contract is not None and ckpt.contract != self.contract:
            diffs = "; ".join(config_differences(ckpt.contract, self.contract))
            raise CheckpointError(
                f"checkpoint {ckpt.path / 'state.json'} was trained under a different control contract: {diffs}"
            )
        counters = ckpt.trainer_state
        buffer = EpisodeBuffer.load(ckpt.buffer_path)
        if (buffer.obs_dim, buffer.action_dim) != (self.obs_dim, self.action_dim):
            raise CheckpointError(
                f"checkpoint {ckpt.buffer_path} holds (obs, action) sizes {(buffer.obs_dim, buffer.action_dim)}; "
                f"this env has {(self.obs_dim, self.action_dim)}"
            )
        rng = np.random.default_rng(0)  # validates the stored state before the trainer's generator takes it
        try:
            rng.bit_generator.state = counters.rng
            torch_rng = ckpt.tensors["torch_rng"]
            self.agent.load_state(ckpt.tensors, ckpt.state["agent"])
            torch.set_rng_state(torch_rng)
        except WmControlError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())
            raise CheckpointError(
                f"checkpoint {ckpt.path} does not fit this trainer ({type(exc).__name__}: {detail})"
            ) from None
        self.step, self.episode, self.elapsed_s = counters.step, counters.episode, counters.elapsed_s
        self.next_eval = counters.next_eval if self.cfg.eval_freq else math.inf
        self.next_checkpoint = counters.next_checkpoint
        self.rng.bit_generator.state = rng.bit_generator.state
        self.buffer = buffer
        self.buffer.capacity = min(self.cfg.buffer_size, self.cfg.steps)  # train.steps may have grown
        if self.contract is None:
            self.contract = ckpt.contract  # later checkpoints of the run keep the contract it was trained under

    def initialize(self, ckpt: Checkpoint, *, contract_change: bool = False) -> list[str]:
        """Start a fine-tuning run from ``ckpt``'s model (a run's checkpoint or a model-only copy).

        ``contract_change``: the run may change the control contract the model was trained under
        (e.g. a new chunk-shaping value); the fine-tuned model learns the new one and its checkpoints
        record it. The observation and action sizes must still fit the weights.

        Returns:
            The contract fields that differ from ``ckpt``'s (empty when none), each as
            ``"field: checkpoint X != requested Y"``.

        Raises:
            CheckpointError: ``ckpt`` was trained under a different control contract (and
                ``contract_change`` is off), or its weights do not fit this agent.
        """
        diffs: list[str] = []
        if self.contract is not None and ckpt.contract is not None and ckpt.contract != self.contract:
            diffs = config_differences(ckpt.contract, self.contract)
            if not contract_change:
                raise CheckpointError(
                    f"checkpoint {ckpt.path / 'state.json'} was trained under a different control contract: "
                    f"{'; '.join(diffs)} (fine-tune into the new contract on purpose with init_contract_change=true)"
                )
        try:
            self.agent.load_weights(ckpt.tensors, ckpt.state["agent"])
        except WmControlError as exc:
            raise CheckpointError(f"checkpoint {ckpt.path}: {exc}") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())
            raise CheckpointError(
                f"checkpoint {ckpt.path} does not fit this agent ({type(exc).__name__}: {detail})"
            ) from None
        self.fine_tune = True
        return diffs

    # --- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, episodes: int, video: bool) -> EvalSummary:
        """Evaluation episodes (no exploration noise); the first is recorded when ``video``."""
        if self._eval_env is None:
            self._eval_env = self._env_factory(self.cfg.save_video)
        path = self.run_dir / "videos" / f"eval_step_{self.step:09d}.mp4" if video else None
        return evaluate_agent(self._eval_env, self.agent, episodes, path)

    # --- training loop -------------------------------------------------------------------------------
    def train(self, logger: RunLogger | None = None) -> TrainResult:
        """Train until ``cfg.steps`` env steps (or Ctrl-C); returns how it ended."""
        cfg, agent = self.cfg, self.agent
        bar = _progress(cfg.steps, self.step, cfg.progress, self.title)
        t_start = time.perf_counter() - self.elapsed_s
        t_window, steps_window = time.perf_counter(), self.step
        metrics: dict[str, float] = dict.fromkeys(UPDATE_METRICS, float("nan"))
        ckpt_path: Path | None = None
        interrupted = False

        def on_step(t: int) -> None:
            # After env step ``self.step``: the seed_steps updates once, then one per step. The replay
            # draws interleave with the random actions' draws from the same generator (reproducibility).
            nonlocal metrics
            if self.step >= self.seed_steps and self.buffer.num_episodes:
                burst = self.step == self.seed_steps and not self.fine_tune
                for _ in range(self.seed_steps if burst else 1):
                    batch = self.buffer.sample(agent.cfg.batch_size, agent.horizon, self.rng, agent.device)
                    metrics = agent.update(batch)
            self.step += 1
            if bar is not None:
                bar.update(1)

        try:
            while self.step < cfg.steps:
                if self._maybe_evaluate(logger, t_start):
                    t_window, steps_window = time.perf_counter(), self.step  # steps/s excludes evaluation
                if self.step >= self.next_checkpoint:
                    self.elapsed_s = time.perf_counter() - t_start
                    ckpt_path = self.checkpoint()
                    self.next_checkpoint += cfg.checkpoint_freq
                seed = int(self.rng.integers(0, 2**31 - 1))
                episode = collect_episode(self.env, self._act, seed, cfg.steps - self.step, on_step)
                self.buffer.add(episode.obs, episode.actions, episode.rewards, episode.terminated)
                self.episode += 1
                now = time.perf_counter()
                sps = (self.step - steps_window) / max(now - t_window, 1e-9)
                t_window, steps_window = now, self.step
                row = {
                    "episode": self.episode,
                    "episode_return": episode.episode_return,
                    "episode_length": episode.length,
                    "episode_success": float(bool(episode.info.get("is_success", False))),
                    "steps_per_s": sps,
                    "elapsed_s": now - t_start,
                    **metrics,
                }
                if logger is not None:
                    logger.log("train", self.step, row)
                if bar is not None:
                    bar.set_postfix(_postfix(row, self.last_eval), refresh=False)
            self._maybe_evaluate(logger, t_start, final=True)
        except KeyboardInterrupt:
            interrupted = True
            if bar is not None:
                bar.write(f"interrupted at step {self.step}: saving a checkpoint (the unfinished episode is dropped)")
        finally:
            if bar is not None:
                bar.close()
        self.elapsed_s = time.perf_counter() - t_start
        ckpt_path = self.checkpoint()
        return TrainResult(self.step, self.episode, self.elapsed_s, interrupted, self.last_eval, ckpt_path)

    def _act(self, obs: np.ndarray, t: int) -> np.ndarray:
        """Random actions up to and including step ``seed_steps``, then the plan (fine-tuning: always)."""
        if self.step > self.seed_steps or self.fine_tune:
            return self.agent.act(obs, t0=t == 0)
        return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def _maybe_evaluate(self, logger: RunLogger | None, t_start: float, final: bool = False) -> bool:
        if not (self.step >= self.next_eval or (final and self.cfg.eval_freq)):
            return False
        if final and self.last_eval is not None and self._last_eval_step == self.step:
            return False
        summary = self.evaluate(self.cfg.eval_episodes, video=self.cfg.save_video)
        self.last_eval, self._last_eval_step = summary, self.step
        while self.next_eval <= self.step:
            self.next_eval += self.cfg.eval_freq
        if logger is not None:
            logger.log("eval", self.step, {**summary.to_dict(), "elapsed_s": time.perf_counter() - t_start})
            plot_learning_curve(self.run_dir / "metrics" / "eval.csv", self.run_dir / "curve.png", self.title)
        return True

    _last_eval_step = -1


def _progress(total: int, initial: int, enabled: bool, title: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=title or "train", unit="step", dynamic_ncols=True, mininterval=1.0)


def _postfix(row: dict[str, Any], last_eval: EvalSummary | None) -> dict[str, str]:
    out = {"ep_ret": f"{row['episode_return']:.1f}", "sps": f"{row['steps_per_s']:.1f}"}
    if last_eval is not None:
        out["eval_ret"] = f"{last_eval.return_mean:.1f}"
        if not math.isnan(last_eval.success_rate):
            out["eval_succ"] = f"{last_eval.success_rate:.0%}"
    return out


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
