"""Smoke tests of the console entry points at a tiny budget (hydra overrides, outputs, errors)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TINY = [
    "task.env.episode_seconds=0.4",
    "model.overrides.enc_dim=32",
    "model.overrides.mlp_dim=32",
    "model.overrides.latent_dim=16",
    "planner.num_samples=32",
    "planner.num_elites=8",
    "planner.num_pi_trajs=4",
    "planner.iterations=2",
    "agent.batch_size=32",
    "train.steps=60",
    "train.seed_steps=40",
    "train.eval_freq=30",
    "train.eval_episodes=1",
    "train.checkpoint_freq=0",
    "train.progress=false",
    "threads=1",
]


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_train_then_eval(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = _run("apps.train", *TINY, f"run_dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done: 60 steps" in out.stdout
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["task"]["name"] == "fr3-reach" and cfg["planner"]["num_samples"] == 32
    assert (run_dir / "metrics" / "train.csv").exists() and (run_dir / "metrics" / "eval.csv").exists()
    assert (run_dir / "curve.png").exists() and any((run_dir / "tb").iterdir())
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    # evaluations at steps 0, 40 (the first episode boundary past 30) and 60 (the end)
    assert len(videos) == 3 and all(v.stat().st_size > 1000 for v in videos)
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_000000060"

    # The model-only copy (what a repository ships) evaluates like the run, and cannot be resumed.
    model = tmp_path / "model"
    saved = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "scripts" / "save_model.py"), "--run", str(run_dir),
         "--out", str(model)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert not (model / "buffer.npz").exists() and (model / "state.json").exists()
    refused = _run("apps.train", f"resume={model}", "train.steps=80", cwd=tmp_path)
    assert refused.returncode == 2 and "is a model-only checkpoint" in refused.stderr

    ev = _run("apps.eval", f"checkpoint={model}", "episodes=2", "threads=1", f"out={tmp_path / 'ev'}", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert result["episodes"] == 2 and result["task"] == "fr3-reach" and result["step"] == 60
    assert 0.0 <= result["success_rate"] <= 1.0
    assert (tmp_path / "ev" / "episode_0.mp4").stat().st_size > 1000

    # Export: all graphs, the contract and a passing parity report. With num_elites = num_samples the
    # elite set cannot differ between runtimes even though this barely trained model's values tie.
    exp = _run(
        "apps.export", f"checkpoint={run_dir}", f"out={tmp_path / 'exp'}", "planner.num_elites=32", "threads=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-2000:]
    names = {p.name for p in (tmp_path / "exp").iterdir()}
    assert {"policy.onnx", "planner.onnx", "planner_init.onnx", "planner_step.onnx"} <= names
    assert {"model.json", "weights.safetensors", "parity.json"} <= names
    contract = json.loads((tmp_path / "exp" / "model.json").read_text())
    assert contract["robot"] == "fr3" and contract["dt"] == 0.02 and contract["training_step"] == 60
    assert contract["observation"]["name"] == "fr3-reach-v4" and contract["planner"]["num_elites"] == 32
    assert json.loads((tmp_path / "exp" / "parity.json").read_text())["passed"] is True
    # A deployment budget by name (what make export does); a planner value on the command line still wins.
    dep = _run(
        "apps.export", f"checkpoint={run_dir}", f"out={tmp_path / 'dep'}", "deploy=fr3-reach", "planner.num_elites=64",
        "parity_cases=1", "threads=1", cwd=tmp_path,
    )  # fmt: skip
    assert dep.returncode == 0, dep.stderr[-2000:]
    planner = json.loads((tmp_path / "dep" / "model.json").read_text())["planner"]
    assert (planner["num_samples"], planner["iterations"], planner["num_elites"]) == (64, 2, 64)
    unknown = _run("apps.export", f"checkpoint={run_dir}", f"out={tmp_path / 'x'}", "deploy=nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "wm-control-export: error: deploy='nope'" in unknown.stderr
    missing = _run("apps.export", f"checkpoint={tmp_path / 'nowhere'}", f"out={tmp_path / 'x'}", cwd=tmp_path)
    assert missing.returncode == 2 and "wm-control-export: error:" in missing.stderr
    if importlib.util.find_spec("tensorrt") is None:  # CI: the engine build is refused before any export
        trt = _run("apps.export", f"checkpoint={run_dir}", f"out={tmp_path / 'trt'}", "tensorrt=true", cwd=tmp_path)
        assert trt.returncode == 2 and "pip install wm-control[tensorrt]" in trt.stderr
        assert not (tmp_path / "trt").exists()

    # Resuming with a different model is refused, naming the field; the rest of the config (task, model,
    # planner) comes from the checkpoint, so it need not be repeated.
    bad = _run("apps.train", "model.overrides.mlp_dim=48", f"resume={run_dir}", "train.steps=80", cwd=tmp_path)
    assert bad.returncode == 2
    assert "model.overrides.mlp_dim: checkpoint 32 != requested 48" in bad.stderr
    assert "task." not in bad.stderr and "planner." not in bad.stderr


def test_multirun_over_seeds(tmp_path: Path) -> None:
    """docs/howto.md: ``wm-control-train -m train.seed=1,2,3`` gives each seed its own run folder."""
    quick = [*TINY, "train.eval_freq=0", "train.save_video=false"]
    out = _run("apps.train", "-m", "train.seed=1,2", *quick, f"hydra.sweep.dir={tmp_path / 'multi'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for job, seed in ((0, 1), (1, 2)):
        run = tmp_path / "multi" / str(job)
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == seed
        assert (run / "checkpoints" / "latest").read_text().strip() == "step_000000060"
        assert any((run / "tb").iterdir())  # TensorBoard events


def test_sigterm_saves_a_checkpoint_as_ctrl_c_does(tmp_path: Path) -> None:
    """A scheduler's preemption or `kill`: the run ends with a checkpoint to resume from."""
    import signal
    import time

    run_dir = tmp_path / "run"
    quick = [a for a in TINY if not a.startswith("train.steps")] + ["train.steps=100000", "train.eval_freq=0"]
    cmd = [sys.executable, "-m", "apps.train", *quick, f"run_dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rows = run_dir / "metrics" / "train.csv"
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not (rows.exists() and len(rows.read_text().splitlines()) > 2):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted:" in out
    step = int((run_dir / "checkpoints" / "latest").read_text().strip().removeprefix("step_"))
    assert 0 < step < 100000


def test_unknown_task_is_a_clear_error(tmp_path: Path) -> None:
    out = _run("apps.train", "task.name=fr3-fly", f"run_dir={tmp_path / 'x'}", "train.progress=false", cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown task 'fr3-fly'; registered tasks:" in out.stderr


def test_eval_missing_checkpoint(tmp_path: Path) -> None:
    out = _run("apps.eval", f"checkpoint={tmp_path / 'nothing'}", cwd=tmp_path)
    assert out.returncode == 2 and "no checkpoint at" in out.stderr


def test_model_overrides_list_every_model_field() -> None:
    """train.yaml lists each ModelConfig field under model.overrides, so no override needs hydra's '+'."""
    import dataclasses

    from wm_control.model.config import ModelConfig

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "train.yaml").read_text())
    listed = set(cfg["model"]["overrides"])
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"obs_dim", "action_dim", "preset"}
    assert listed == fields


@pytest.mark.parametrize("name", ["eval.yaml", "export.yaml"])
def test_planner_overrides_list_every_planner_field(name: str) -> None:
    """eval.yaml / export.yaml list each MppiConfig field (but the discount, set from the episode length)."""
    import dataclasses

    from wm_control.planning.config import MppiConfig

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / name).read_text())
    assert set(cfg["planner"]) == {f.name for f in dataclasses.fields(MppiConfig)} - {"discount"}


def test_resumed_config_keeps_the_checkpoint_and_applies_schedule_overrides() -> None:
    from apps.train import override_keys, resumed_config
    from wm_control.errors import ConfigError

    stored = {"task": {"name": "dmc/cartpole-swingup"}, "train": {"steps": 100, "seed": 1}, "resume": None}
    requested = {"task": {"name": "fr3-reach"}, "train": {"steps": 500, "seed": 1}, "resume": "/r", "run_dir": "/r"}
    keys = override_keys(["resume=/r", "train.steps=500", "hydra.run.dir=/x"])
    assert keys == ["resume", "train.steps"]
    merged = resumed_config(stored, requested, keys, "ckpt")
    assert merged["task"]["name"] == "dmc/cartpole-swingup" and merged["train"]["steps"] == 500
    assert merged["resume"] == "/r" and merged["run_dir"] == "/r"
    with pytest.raises(ConfigError, match="task.name: checkpoint 'dmc/cartpole-swingup' != requested 'fr3-reach'"):
        resumed_config(stored, requested, override_keys(["task=fr3-reach"]), "ckpt")
    with pytest.raises(ConfigError, match="train.seed: checkpoint 1 != requested 2"):
        resumed_config(stored, {**requested, "train": {"steps": 100, "seed": 2}}, ["train.seed"], "ckpt")


def _compose(config: str, overrides: list[str]) -> dict:
    """A hydra config as the entry point receives it (plain data, resolved)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from apps.common import config_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name=config, overrides=overrides)
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)
    return plain


def test_a_plain_fr3_reach_run_trains_as_the_shipped_model_was_trained() -> None:
    """No planner argument: the task's own training budget, the one models/fr3-reach recorded; DMC tasks
    get TD-MPC2's. A planner value on the command line still wins.
    """
    from apps.common import resolve_run
    from wm_control.training.checkpoint import load_checkpoint

    shipped = load_checkpoint(Path(__file__).parents[1] / "models" / "fr3-reach").config
    reach = resolve_run(_compose("train", ["task=fr3-reach"]))
    assert reach["planner"] == shipped["planner"] and reach["task"]["episodic"] is True
    dmc = resolve_run(_compose("train", ["task=dmc/cartpole-swingup"]))
    assert (dmc["planner"]["num_samples"], dmc["planner"]["iterations"], dmc["task"]["episodic"]) == (512, 6, False)
    assert resolve_run(_compose("train", ["planner.num_samples=64"]))["planner"]["num_samples"] == 64


def test_the_deployment_budget_is_one_file() -> None:
    from apps.common import deploy_planner, planner_budget
    from wm_control.errors import ConfigError
    from wm_control.planning.config import MppiConfig

    budget = MppiConfig(**deploy_planner("fr3-reach"))
    assert (budget.num_samples, budget.iterations, budget.horizon) == (64, 2, 3)
    assert planner_budget({"iterations": 3, "num_samples": None}, deploy_planner("fr3-reach"))["iterations"] == 3
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "deploy=fr3-reach" in makefile and "planner.num_samples" not in makefile
    with pytest.raises(ConfigError, match=r"deploy='nope': no .*deployment/nope.yaml; valid: \['fr3-reach'\]"):
        deploy_planner("nope")


def test_a_checkpoint_without_a_recorded_contract_is_refused_until_migrated(tmp_path: Path) -> None:
    from apps.common import env_factory, recorded_contract
    from scripts.migrate_checkpoint import migrate
    from wm_control.errors import ModelContractError
    from wm_control.training.checkpoint import load_checkpoint, save_checkpoint

    shipped = load_checkpoint(Path(__file__).parents[1] / "models" / "fr3-reach")
    old = {k: v for k, v in shipped.state.items() if k not in ("contract", "contract_migrated")}
    path = save_checkpoint(tmp_path, "old", shipped.tensors, old, None, update_latest=False)
    env = env_factory(shipped.config["task"])(False)
    with pytest.raises(ModelContractError, match="records no control contract.*migrate_checkpoint.py"):
        recorded_contract(load_checkpoint(path), env)
    with pytest.raises(ModelContractError, match="--layout fr3-reach-v3: today's 'fr3-reach' task builds"):
        migrate(path, "fr3-reach-v3")
    assert "recorded the fr3-reach-v4 contract" in migrate(path, "fr3-reach-v4")
    migrated = load_checkpoint(path)
    assert recorded_contract(migrated, env).to_dict() == shipped.contract
    assert "already records" in migrate(path, "fr3-reach-v4")
