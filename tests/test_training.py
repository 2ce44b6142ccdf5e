"""Online training: it learns, it is reproducible, it resumes bit for bit, and its checkpoints refuse
corruption with one clear error naming the file.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.toy_env import PointMass
from wm_control.errors import CheckpointError, ConfigError
from wm_control.model.config import model_config
from wm_control.planning.config import MppiConfig
from wm_control.training.agent import TDMPC2, AgentConfig
from wm_control.training.buffer import EpisodeBuffer
from wm_control.training.checkpoint import CHECKPOINT_FORMAT, config_differences, load_checkpoint, save_model_only
from wm_control.training.collect import collect_episode
from wm_control.training.logger import RunLogger
from wm_control.training.trainer import TrainConfig, Trainer

PLANNER = MppiConfig(horizon=3, iterations=3, num_samples=64, num_elites=8, num_pi_trajs=8)
REPO = Path(__file__).resolve().parents[1]


def _trainer(
    run_dir: Path,
    steps: int,
    seed: int = 0,
    fail_at: int | None = None,
    contract: dict | None = None,
    **train_kw,  # noqa: ANN003
) -> Trainer:
    mc = model_config("small", 3, 1, enc_dim=64, mlp_dim=64, latent_dim=32)
    agent = TDMPC2(mc, AgentConfig(batch_size=64, planner=PLANNER), episode_length=40, seed=seed)
    settings = {"eval_freq": 0, "checkpoint_freq": 0, "save_video": False, "progress": False, **train_kw}
    cfg = TrainConfig(steps=steps, seed=seed, seed_steps=200, **settings)
    run_config = {"task": "point-mass", "train": {"steps": steps}}
    env = lambda render: PointMass(fail_at_step=fail_at)  # noqa: E731
    return Trainer(env, agent, cfg, run_dir, run_config, title="toy", contract=contract)


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


def test_fine_tune_starts_from_the_model_plans_from_the_start_and_skips_the_burst(tmp_path: Path) -> None:
    trained = _trainer(tmp_path / "run", steps=260)
    trained.train()
    slim = load_checkpoint(save_model_only(load_checkpoint(tmp_path / "run"), tmp_path / "model"))
    tuned = _trainer(tmp_path / "tune", steps=300, seed=5)  # seed_steps 200
    tuned.initialize(slim)
    for (k, v), w in zip(_state(tuned).items(), _state(trained).values(), strict=True):
        assert np.array_equal(v.numpy(), w.numpy()), k
    assert tuned.agent.updates == 0 and not tuned.agent.optim.state_dict()["state"]  # a fresh optimiser
    plans = []
    act = tuned.agent.act
    tuned.agent.act = lambda obs, t0=False, eval_mode=False: plans.append(1) or act(obs, t0, eval_mode)
    tuned.train()
    assert len(plans) == 300  # the model's plans collected the seed steps too, not random actions
    assert tuned.agent.updates == 100  # one per step from step 200, no burst of 200 (a fresh run makes 299)
    assert load_checkpoint(tmp_path / "tune").state["trainer"]["step"] == 300
    other = {"robot": "toy", "dt": 0.02, "joint_names": ["x"]}
    recorded = load_checkpoint(save_model_only(_small_contract_run(tmp_path), tmp_path / "m2"))
    with pytest.raises(CheckpointError, match=r"different control contract: dt.*init_contract_change=true"):
        _trainer(tmp_path / "b", steps=60, contract=other).initialize(recorded)
    moved = _trainer(tmp_path / "moved", steps=210, contract=other)  # into a new contract, on purpose
    assert moved.initialize(recorded, contract_change=True) == ["dt: checkpoint 0.05 != requested 0.02"]
    moved.train()
    assert load_checkpoint(tmp_path / "moved").contract == other  # the fine-tuned model records the new one
    assert tuned.initialize(slim, contract_change=True) == []
    wide = _trainer(tmp_path / "wide", steps=10)
    wide.agent = TDMPC2(
        model_config("small", 3, 1, enc_dim=96, mlp_dim=64, latent_dim=32), AgentConfig(planner=PLANNER), 40
    )
    shapes = r"weights do not match the model: encoder.* has shape \(64,.*the model's \(96"
    with pytest.raises(CheckpointError, match=shapes):
        wide.initialize(slim)


def _small_contract_run(tmp_path: Path):  # noqa: ANN202
    _trainer(tmp_path / "c", steps=20, contract={"robot": "toy", "dt": 0.05, "joint_names": ("x",)}).train()
    return load_checkpoint(tmp_path / "c")


def test_collect_episode_shapes_budget_and_step_callback() -> None:
    seen: list[int] = []
    acts = lambda obs, t: np.full(1, 0.5 if t else -0.5, np.float32)  # noqa: E731
    full = collect_episode(PointMass(), acts, seed=3, on_step=seen.append)
    assert (full.obs.shape, full.actions.shape, full.rewards.shape, full.terminated.shape) == (
        (41, 3),
        (40, 1),
        (40,),
        (40,),
    )
    assert seen == list(range(40)) and full.length == 40 and not full.terminated.any()
    assert full.actions[0, 0] == -0.5 and full.actions[1, 0] == 0.5
    assert full.episode_return == pytest.approx(float(np.sum(full.rewards)))
    again = collect_episode(PointMass(), acts, seed=3)
    assert np.array_equal(again.obs, full.obs)  # the seed fixes the episode
    cut = collect_episode(PointMass(), acts, seed=3, max_steps=7)
    assert cut.length == 7 and np.array_equal(cut.obs, full.obs[:8])


# --- checkpoint integrity --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 50-step run (random actions only, no updates): a complete format-2 checkpoint in about a second."""
    run = tmp_path_factory.mktemp("small") / "run"
    _trainer(run, steps=50, contract={"robot": "toy", "dt": 0.05, "joint_names": ("x",)}).train()
    return run


def _copy_checkpoint(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(load_checkpoint(run).path, dest / "ckpt"))


def _edit_state(path: Path, edit: Callable[[dict], None]) -> None:
    state = json.loads((path / "state.json").read_text())
    edit(state)
    (path / "state.json").write_text(json.dumps(state, indent=1))


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _flip_middle_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


def _bump_step(state: dict) -> None:
    state["trainer"]["step"] += 1


def _bump_rng(state: dict) -> None:
    state["trainer"]["rng"]["state"]["state"] += 1


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated state": ("state.json", lambda p: _truncate(p / "state.json"), "is not valid JSON"),
    "binary state": ("state.json", lambda p: (p / "state.json").write_bytes(bytes(range(256)) * 8), "not UTF-8"),
    "edited step": ("state.json", lambda p: _edit_state(p, _bump_step), "modified after it was written"),
    "edited rng": ("state.json", lambda p: _edit_state(p, _bump_rng), "modified after it was written"),
    "relabelled format 1": ("state.json", lambda p: _edit_state(p, lambda s: s.update(format=1)), "format-2 hashes"),
    "truncated weights": ("weights.safetensors", lambda p: _truncate(p / "weights.safetensors"), "sha256"),
    "flipped weights byte": ("weights.safetensors", lambda p: _flip_middle_byte(p / "weights.safetensors"), "sha256"),
    "missing buffer": ("buffer.npz", lambda p: (p / "buffer.npz").unlink(), "is missing"),
    "truncated buffer": ("buffer.npz", lambda p: _truncate(p / "buffer.npz"), "sha256"),
    "missing state": ("state.json", lambda p: (p / "state.json").unlink(), "is missing"),
}


def test_checkpoint_is_format_2_with_hashes_and_contract(small_run: Path) -> None:
    ckpt = load_checkpoint(small_run)
    assert ckpt.state["format"] == CHECKPOINT_FORMAT == 2
    assert set(ckpt.state["files"]) == {"weights.safetensors", "buffer.npz"}
    assert len(ckpt.state["state_sha256"]) == 64 and "config_hash" in ckpt.state
    assert ckpt.contract == {"robot": "toy", "dt": 0.05, "joint_names": ["x"]}
    assert ckpt.trainer_state.step == 50


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_checkpoint_is_refused_naming_the_file(small_run: Path, tmp_path: Path, case: str) -> None:
    name, corrupt, why = CORRUPTIONS[case]
    path = _copy_checkpoint(small_run, tmp_path)
    load_checkpoint(path)  # intact before the corruption
    corrupt(path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path / name) in message and why in message and "\n" not in message, message


def test_a_run_whose_latest_checkpoint_lost_its_state_is_refused(small_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    state = load_checkpoint(run).path / "state.json"
    state.unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {state} (named by ") + ".*latest\\) is missing"):
        load_checkpoint(run)


def _as_old_model_copy(state: dict) -> None:
    """A model-only state as format 1 wrote it: no recorded contract (nor a migration marker)."""
    _as_format_1(state)
    del state["contract"]
    state.pop("contract_migrated", None)


def test_format_1_checkpoints_load_and_refuse_decode_errors(tmp_path: Path) -> None:
    shipped = Path(shutil.copytree(REPO / "models" / "fr3-reach", tmp_path / "format_1"))
    _edit_state(shipped, _as_old_model_copy)
    ref = load_checkpoint(shipped)
    assert ref.state["format"] == 1 and ref.model_only and ref.contract is None
    copies = {}
    for case in ("intact", "state", "weights", "garbage", "resumable"):
        copies[case] = Path(shutil.copytree(shipped, tmp_path / case))
    same = load_checkpoint(copies["intact"])
    assert same.state == ref.state and all(torch.equal(same.tensors[k], v) for k, v in ref.tensors.items())
    _truncate(copies["state"] / "state.json")
    _truncate(copies["weights"] / "weights.safetensors")
    (copies["garbage"] / "weights.safetensors").write_bytes(b"\xff" * 64)
    _edit_state(copies["resumable"], lambda s: s.pop("model_only"))  # claims to be resumable, has no buffer
    for case, name in (("state", "state.json"), ("weights", "weights.safetensors"), ("garbage", "weights.safetensors"),
                       ("resumable", "buffer.npz")):  # fmt: skip
        with pytest.raises(CheckpointError, match="checkpoint .*" + name):
            load_checkpoint(copies[case])


def _as_format_1(state: dict) -> None:
    del state["files"], state["state_sha256"]
    state["format"] = 1


def test_format_1_buffer_errors_are_refused_at_restore(small_run: Path, tmp_path: Path) -> None:
    # Format 1 has no hashes: a truncated buffer loads and is caught when restore decodes it.
    path = _copy_checkpoint(small_run, tmp_path)
    _edit_state(path, _as_format_1)
    _truncate(path / "buffer.npz")
    ckpt = load_checkpoint(path)
    trainer = _trainer(tmp_path / "resumed", steps=60)
    with pytest.raises(CheckpointError, match="buffer.npz cannot be read"):
        trainer.restore(ckpt)
    with pytest.raises(CheckpointError, match="buffer.npz is missing"):
        EpisodeBuffer.load(tmp_path / "nowhere" / "buffer.npz")
    lengths, meta = np.array([3, 2]), np.array([100, 3, 1, 2])  # 5 steps of 2 episodes need 7 observations
    arrays = {"obs": np.zeros((6, 3)), "action": np.zeros((5, 1)), "reward": np.zeros(5), "terminated": np.zeros(5)}
    np.savez(tmp_path / "odd.npz", lengths=lengths, meta=meta, **arrays)
    with pytest.raises(CheckpointError, match=r"odd.npz is inconsistent: obs has shape \(6, 3\)"):
        EpisodeBuffer.load(tmp_path / "odd.npz")


def test_contract_is_kept_and_a_different_one_is_refused(small_run: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(small_run)
    slim = load_checkpoint(save_model_only(ckpt, tmp_path / "model"))
    assert slim.state["format"] == 2 and slim.contract == ckpt.contract
    with pytest.raises(CheckpointError, match="model-only"):
        _trainer(tmp_path / "a", steps=60).restore(slim)
    other = {"robot": "toy", "dt": 0.02, "joint_names": ["x"]}
    with pytest.raises(CheckpointError, match=r"different control contract: dt: checkpoint 0.05 != requested 0.02"):
        _trainer(tmp_path / "b", steps=60, contract=other).restore(ckpt)
    adopted = _trainer(tmp_path / "c", steps=60)  # no contract given: the run keeps the checkpoint's
    adopted.restore(ckpt)
    assert adopted.step == 50 and load_checkpoint(adopted.checkpoint()).contract == ckpt.contract
    plain = _trainer(tmp_path / "e", steps=1)
    plain.train()
    assert load_checkpoint(tmp_path / "e").contract is None


def test_train_resume_from_a_corrupted_run_is_one_error_line(small_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    ckpt = load_checkpoint(run).path
    _edit_state(ckpt, _bump_step)
    out = subprocess.run(
        [sys.executable, "-m", "apps.train", f"resume={run}", "train.steps=80", "train.progress=false"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    errors = [line for line in out.stderr.splitlines() if line.startswith("wm-control-train: error:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(errors) == 1 and str(ckpt / "state.json") in errors[0] and "modified after it was written" in errors[0]
