"""Online training: it learns, it is reproducible, and it resumes bit for bit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.toy_env import PointMass
from wm_control.errors import ConfigError
from wm_control.model.config import model_config
from wm_control.planning.mppi import MppiConfig
from wm_control.training.agent import TDMPC2, AgentConfig
from wm_control.training.checkpoint import config_differences, load_checkpoint, save_model_only
from wm_control.training.logger import RunLogger
from wm_control.training.trainer import TrainConfig, Trainer

PLANNER = MppiConfig(horizon=3, iterations=3, num_samples=64, num_elites=8, num_pi_trajs=8)


def _trainer(run_dir: Path, steps: int, seed: int = 0, fail_at: int | None = None, **train_kw) -> Trainer:  # noqa: ANN003
    mc = model_config("small", 3, 1, enc_dim=64, mlp_dim=64, latent_dim=32)
    agent = TDMPC2(mc, AgentConfig(batch_size=64, planner=PLANNER), episode_length=40, seed=seed)
    settings = {"eval_freq": 0, "checkpoint_freq": 0, "save_video": False, "progress": False, **train_kw}
    cfg = TrainConfig(steps=steps, seed=seed, seed_steps=200, **settings)
    run_config = {"task": "point-mass", "train": {"steps": steps}}
    return Trainer(lambda render: PointMass(fail_at_step=fail_at), agent, cfg, run_dir, run_config, title="toy")


def _eval_return(trainer: Trainer, episodes: int = 10) -> float:
    return trainer.evaluate(episodes, video=False).return_mean


@pytest.mark.slow
def test_short_run_beats_random_policy(tmp_path: Path) -> None:
    """Measured: random ~15, after 1500 steps ~30 (of 34 for a good controller)."""
    trainer = _trainer(tmp_path, steps=1500, seed=1)
    env, rng = PointMass(), np.random.default_rng(0)
    random_returns = []
    for k in range(10):
        env.reset(seed=1_000_000 + k)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
            total, done = total + r, term or trunc
        random_returns.append(total)
    result = trainer.train()
    assert not result.interrupted
    learned = _eval_return(trainer)
    assert learned > np.mean(random_returns) + 8.0, (learned, np.mean(random_returns))


def _state(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.agent.model.state_dict().items()}


def test_resume_is_bit_for_bit(tmp_path: Path) -> None:
    straight = _trainer(tmp_path / "a", steps=400)
    straight.train()
    first = _trainer(tmp_path / "b", steps=200)
    first.train()
    ckpt = load_checkpoint(tmp_path / "b")
    assert ckpt.state["trainer"]["step"] == 200
    resumed = _trainer(tmp_path / "b", steps=400, seed=0)
    resumed.restore(ckpt)
    resumed.train()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k
    assert resumed.buffer.episodes_added == straight.buffer.episodes_added


def test_same_seed_same_run(tmp_path: Path) -> None:
    r1 = _trainer(tmp_path / "1", steps=260)
    r1.train()
    r2 = _trainer(tmp_path / "2", steps=260)
    r2.train()
    for (k, v), w in zip(_state(r1).items(), _state(r2).values(), strict=True):
        assert np.array_equal(v.numpy(), w.numpy()), k


def test_ctrl_c_saves_a_checkpoint(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=1000, fail_at=250)
    result = trainer.train()
    assert result.interrupted and result.checkpoint is not None
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["trainer"]["step"] == 249  # the unfinished episode was dropped from the buffer
    assert ckpt.state["trainer"]["episode"] == 6


def test_logs_and_evaluations(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=240, eval_freq=120, eval_episodes=2)
    logger = RunLogger(tmp_path)
    trainer.train(logger)
    logger.close()
    train_rows = (tmp_path / "metrics" / "train.csv").read_text().splitlines()
    eval_rows = (tmp_path / "metrics" / "eval.csv").read_text().splitlines()
    assert len(train_rows) == 1 + 6 and "value_loss" in train_rows[0]
    assert [r.split(",")[0] for r in eval_rows[1:]] == ["0", "120", "240"]
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert any((tmp_path / "tb").iterdir())
    assert math.isnan(trainer.last_eval.success_rate)  # the toy env reports no success


def test_resumed_logger_drops_rows_logged_after_the_checkpoint(tmp_path: Path) -> None:
    # A killed run logged steps 100..500 but its last checkpoint is at step 300: the resumed run
    # rewrites 400 and 500, so the old rows after 300 must go and every step appears once.
    first = RunLogger(tmp_path, tensorboard=False)
    for step in range(100, 600, 100):
        first.log("train", step, {"episode_return": float(step)})
    first.log("eval", 300, {"return_mean": 1.0})
    first.log("eval", 500, {"return_mean": 2.0})
    first.close()
    with open(tmp_path / "metrics" / "train.csv", "a") as f:
        f.write("6")  # the kill interrupted a write
    resumed = RunLogger(tmp_path, tensorboard=False, resume_step=300)
    assert resumed.dropped_rows == {"eval": 1, "train": 3}
    resumed.log("train", 400, {"episode_return": -1.0})
    resumed.close()
    train = (tmp_path / "metrics" / "train.csv").read_text().splitlines()
    assert train == ["step,episode_return", "100,100", "200,200", "300,300", "400,-1"]
    assert (tmp_path / "metrics" / "eval.csv").read_text().splitlines() == ["step,return_mean", "300,1"]
    again = RunLogger(tmp_path, tensorboard=False, resume_step=400)  # nothing after 400: untouched
    assert again.dropped_rows == {}


def test_checkpoint_config_mismatch_is_named(tmp_path: Path) -> None:
    diffs = config_differences({"task": "a", "model": {"preset": "1M"}}, {"task": "a", "model": {"preset": "5M"}})
    assert diffs == ["model.preset: checkpoint '1M' != requested '5M'"]
    with pytest.raises(ConfigError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing")


def test_model_only_copy_loads_the_same_model_and_is_small(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", steps=260)
    trainer.train()
    full = load_checkpoint(tmp_path / "run")
    slim_path = save_model_only(full, tmp_path / "model")
    slim = load_checkpoint(slim_path)
    assert slim.model_only and not full.model_only
    assert not (slim_path / "buffer.npz").exists()
    assert not any(k.startswith("optim") for k in slim.tensors)
    assert slim.state["trainer"]["step"] == 260 and slim.config == full.config
    weights = lambda p: (p / "weights.safetensors").stat().st_size  # noqa: E731
    assert weights(slim_path) < weights(full.path) / 2  # Adam's two moments per weight are gone
    fresh = _trainer(tmp_path / "other", steps=10, seed=5)  # a different initialisation
    fresh.agent.load_state(slim.tensors, slim.state["agent"])
    for (k, v), w in zip(_state(fresh).items(), _state(trainer).values(), strict=True):
        assert np.array_equal(v.numpy(), w.numpy()), k
    obs = np.zeros(3, np.float32)
    a_fresh = fresh.agent.act(obs, t0=True, eval_mode=True)
    assert np.array_equal(a_fresh, trainer.agent.act(obs, t0=True, eval_mode=True))
