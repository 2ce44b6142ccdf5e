"""``wm-control-train``: TD-MPC2 online training (hydra; see configs/train.yaml).

    wm-control-train task=fr3-reach model=small train.steps=30000
    wm-control-train task=dmc/cartpole-swingup model=5M train.seed=2
    wm-control-train resume=runs/fr3-reach/2026-11-22_10-00-00 train.steps=60000
    wm-control-train init=models/fr3-reach train.steps=10000   # fine-tune a trained model
    wm-control-train init=models/fr3-reach init_contract_change=true task.env.chunk.posture_gain=0.5
    wm-control-train -m train.seed=1,2,3          # hydra multirun

Each run folder holds config.yaml, metrics/{train,eval}.csv, tb/ (TensorBoard), videos/,
curve.png and checkpoints/. Ctrl-C saves a checkpoint before exiting.
"""

from __future__ import annotations

import copy
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apps.common import build_agent, config_dir, env_factory, register_resolvers, resolve_run, set_threads

# Keys a resumed run may change: the schedule and logging, and where episodes start (the replay
# buffer's transitions stay valid: the dynamics and the reward are the same), not what is learned.
RESUMABLE_CHANGES = (
    "task.task.chain_probability",
    "train.steps",
    "train.eval_freq",
    "train.eval_episodes",
    "train.checkpoint_freq",
    "train.keep_checkpoints",
    "train.save_video",
    "train.progress",
    "threads",
    "resume",
    "run_dir",
)


def run(cfg: dict[str, Any], run_dir: Path, overridden: Sequence[str] = ()) -> int:
    """Train as ``cfg`` says into ``run_dir``; returns the exit code (130 after Ctrl-C).

    ``overridden``: the dotted keys the user set on the command line. When resuming, the
    checkpoint's config is the base and only those keys are taken from ``cfg``: schedule and
    logging keys (``RESUMABLE_CHANGES``) may change, any other one must match the checkpoint.
    """
    import yaml

    from sim.contract import control_contract
    from wm_control import native
    from wm_control.config import from_dict
    from wm_control.errors import ConfigError
    from wm_control.training.checkpoint import config_differences, load_checkpoint
    from wm_control.training.logger import RunLogger
    from wm_control.training.trainer import TrainConfig, Trainer

    ckpt = None
    if cfg.get("resume"):
        ckpt = load_checkpoint(cfg["resume"])
        if ckpt.model_only:
            raise ConfigError(
                f"resume={cfg['resume']}: {ckpt.path} is a model-only checkpoint (no optimiser state, no replay "
                f"buffer); it can be evaluated and exported but not resumed. Resume from the training run "
                f"({ckpt.state.get('source', 'its run folder')}) instead"
            )
        cfg = resumed_config(ckpt.config, cfg, overridden, str(ckpt.path))
    else:
        cfg = resolve_run(cfg)
    init = None
    if cfg.get("init") and ckpt is None:
        init = load_checkpoint(cfg["init"])
        diffs = config_differences(init.config["model"], cfg["model"], "model.")
        if diffs:
            raise ConfigError(f"init={cfg['init']}: the model differs from the checkpoint's: {'; '.join(diffs)}")
    set_threads(cfg.get("threads"))
    native.tune_allocator()
    make_env = env_factory(cfg["task"])
    probe = make_env(False)
    agent = build_agent(cfg, probe)
    contract = control_contract(probe).to_dict()  # what the model learns to control, recorded with it
    probe.close()
    train_cfg = from_dict(TrainConfig, cfg["train"], "train")
    fine_tune = bool(cfg.get("init"))  # a resumed fine-tuning run stays one
    trainer = Trainer(
        make_env, agent, train_cfg, run_dir, cfg, title=cfg["task"]["name"], contract=contract, fine_tune=fine_tune
    )
    if init is not None:
        changed = trainer.initialize(init, contract_change=bool(cfg.get("init_contract_change")))
        print(f"fine-tuning the model of {init.path} (fresh optimiser and replay buffer)")
        for diff in changed:
            print(f"  into a changed control contract: {diff}")
    if ckpt is not None:
        trainer.restore(ckpt)
        print(f"resuming {ckpt.path} at step {trainer.step}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(
        f"training {cfg['task']['name']}: model {cfg['model']['preset']} "
        f"({agent.model.num_parameters() / 1e6:.2f} M params), "
        f"{train_cfg.steps} steps, discount {agent.discount:.4f}, seed steps {trainer.seed_steps}, "
        f"kernels: {native.status()}; run folder {run_dir}"
    )
    logger = RunLogger(run_dir, resume_step=trainer.step if ckpt is not None else None)
    for kind, n in logger.dropped_rows.items():
        print(f"metrics/{kind}.csv: dropped {n} rows logged after step {trainer.step} (written again by this run)")
    # SIGTERM (a scheduler's preemption, `kill`, a container stop) ends the run as Ctrl-C does: with a
    # checkpoint to resume from. A background job started from a script ignores SIGINT; this it gets.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = trainer.train(logger)
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.close()
    ev = result.last_eval
    summary = f"{result.steps} steps, {result.episodes} episodes in {result.wall_s / 60:.1f} min"
    if ev is not None:
        summary += f"; last eval return {ev.return_mean:.1f}"
        if ev.success_rate == ev.success_rate:
            summary += f", success {ev.success_rate:.0%}"
    print(("interrupted: " if result.interrupted else "done: ") + summary + f"; checkpoint {result.checkpoint}")
    return 130 if result.interrupted else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def resumed_config(
    stored: dict[str, Any], requested: dict[str, Any], overridden: Sequence[str], where: str
) -> dict[str, Any]:
    """The config a resumed run continues with: the checkpoint's, plus the allowed overrides.

    Raises ``ConfigError`` naming every overridden key that would change what is learned.
    """
    from wm_control.errors import ConfigError
    from wm_control.training.checkpoint import config_differences

    merged = copy.deepcopy(stored)
    diffs: list[str] = []
    for key in sorted(set(overridden) | {"resume", "run_dir"}):
        want, have = _get(requested, key), _get(stored, key)
        if key.startswith(RESUMABLE_CHANGES):
            _set(merged, key, want)
        elif isinstance(want, dict) and isinstance(have, dict):
            diffs += config_differences(have, want, key + ".")
        elif want != have:
            diffs.append(f"{key}: checkpoint {have!r} != requested {want!r}")
    if diffs:
        raise ConfigError(f"cannot resume {where}: the config differs from the checkpoint's: {'; '.join(diffs)}")
    return merged


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<missing>"
        node = node[part]
    return node


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def override_keys(overrides: Sequence[str]) -> list[str]:
    """Dotted keys of hydra command-line overrides (``a.b=1``, ``+a=1``, ``~a``, ``task=dmc/x``)."""
    keys = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key and not key.startswith("hydra"):
            keys.append(key)
    return keys


def main() -> None:
    """Console entry point."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    from wm_control.errors import WmControlError

    register_resolvers()

    @hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> int:
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(plain, dict)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        plain["run_dir"] = str(run_dir)
        try:
            overridden = override_keys(HydraConfig.get().overrides.task)
            code = run(plain, run_dir, overridden)  # type: ignore[arg-type]
        except WmControlError as exc:
            print(f"wm-control-train: error: {exc}", file=sys.stderr)
            sys.exit(2)
        if code:  # hydra.main drops the function's return value: exit here (130 after an interrupt)
            sys.exit(code)
        return code

    sys.exit(_main())


if __name__ == "__main__":
    main()
