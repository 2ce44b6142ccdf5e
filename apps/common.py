"""Shared by the entry points: where the hydra configs live, how a run config (plain data) is
resolved against its task and becomes an env factory and a TD-MPC2 agent, and the deployment budgets
(``configs/deployment/<name>.yaml``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

from wm_control.errors import ConfigError  # noqa: E402


def config_dir() -> str:
    """The ``configs`` folder: next to the sources (editable install / checkout) or installed under
    ``share/wm_control/configs`` (colcon / pip install); ``WM_CONTROL_CONFIG_DIR`` overrides.
    """
    candidates = [
        os.environ.get("WM_CONTROL_CONFIG_DIR"),
        str(Path(__file__).resolve().parents[1] / "configs"),
        str(Path(sys.prefix) / "share" / "wm_control" / "configs"),
    ]
    for c in candidates:
        if c and (Path(c) / "train.yaml").exists():
            return c
    raise ConfigError(
        f"cannot find the wm-control configs (looked in {[c for c in candidates if c]}); set WM_CONTROL_CONFIG_DIR"
    )


def register_resolvers() -> None:
    """OmegaConf resolvers used by the YAML (``wm_first``: the first non-null argument)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("wm_first"):
        OmegaConf.register_new_resolver(
            "wm_first", lambda *args: next((a for a in args if a not in (None, "None", "null")), None)
        )


def env_factory(task_cfg: dict[str, Any]) -> Callable[[bool], Any]:
    """``render -> env`` for a task group entry ``{name, env, task}``."""
    import sim

    name = task_cfg["name"]
    sim.get_task(name)  # unknown names fail here, listing the registered tasks
    # null in a task YAML means "the task's value": the factory applies its own defaults.
    env_cfg, task_opts = _set_values(task_cfg.get("env") or {}), _set_values(task_cfg.get("task") or {})

    def make(render: bool) -> Any:
        return sim.make(name, env=env_cfg or None, task=task_opts or None, render_mode="rgb_array" if render else None)

    return make


def _set_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` without its null values (recursively; mappings left empty are dropped)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            value = _set_values(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def planner_budget(requested: dict[str, Any] | None, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a full planner budget) with the non-null values of ``requested`` laid over it."""
    return {**base, **{k: v for k, v in (requested or {}).items() if v is not None}}


def resolve_run(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run config with what its task owns filled in, so the stored config says how it trained.

    ``planner``: TD-MPC2's budget, then the task's training budget (``sim`` task registry), then the
    values the run sets (non-null). ``task.episodic``: the task's unless the run sets it.
    """
    import dataclasses

    import sim
    from wm_control.planning.config import MppiConfig

    entry = sim.get_task(cfg["task"]["name"])
    tdmpc2 = {f.name: getattr(MppiConfig(), f.name) for f in dataclasses.fields(MppiConfig) if f.name != "discount"}
    out = dict(cfg)
    out["planner"] = planner_budget(cfg.get("planner"), {**tdmpc2, **entry.planner})
    task = dict(cfg["task"])
    if task.get("episodic") is None:
        task["episodic"] = entry.episodic
    out["task"] = task
    return out


def deploy_planner(name: str) -> dict[str, Any]:
    """The planner budget of deployment config ``configs/deployment/<name>.yaml`` (its ``planner`` mapping)."""
    import yaml

    folder = Path(config_dir()) / "deployment"
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"deploy={name!r}: no {path}; valid: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    planner = data.get("planner")
    if not isinstance(planner, dict) or not planner:
        raise ConfigError(f"{path}: expected a 'planner' mapping of MppiConfig fields; got {planner!r}")
    return planner


def recorded_contract(ckpt: Any, env: Any) -> Any:
    """The ``ControlContract`` checkpoint ``ckpt`` recorded at training time, after checking that
    ``env`` (built from the checkpoint's config by today's code) still is what the model learned on.

    Raises:
        ModelContractError: the checkpoint records no contract (it predates recording; migrate it
            once with ``scripts/migrate_checkpoint.py``), or today's env differs from it (names the
            first differing field).
    """
    from sim.contract import control_contract
    from wm_control.contract import ControlContract, first_difference, with_added_chunk_fields
    from wm_control.errors import ModelContractError

    if ckpt.contract is None:
        raise ModelContractError(
            f"checkpoint {ckpt.path} records no control contract (written before contracts were recorded at "
            f"training time); add it once with: python scripts/migrate_checkpoint.py {ckpt.path}"
        )
    recorded = ControlContract.from_dict(ckpt.contract)
    # A contract recorded before a chunk-shaping field existed was made with that field's neutral value.
    compared = {**recorded.to_dict(), "action": with_added_chunk_fields(recorded.action)}
    where = first_difference(compared, control_contract(env).to_dict())
    if where is not None:
        raise ModelContractError(
            f"checkpoint {ckpt.path}: its recorded contract field {where!r} differs from what today's "
            f"{ckpt.config['task']['name']!r} env builds; the model was trained on another version of the task"
        )
    return recorded


def build_agent(run: dict[str, Any], env: Any) -> Any:
    """The TD-MPC2 agent a (resolved, ``resolve_run``) run config describes, sized for ``env``."""
    import numpy as np

    from wm_control.config import from_dict
    from wm_control.model.config import model_config
    from wm_control.planning.config import MppiConfig
    from wm_control.training.agent import TDMPC2, AgentConfig

    obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    model = run["model"]
    overrides = {k: v for k, v in (model.get("overrides") or {}).items() if v is not None}
    overrides.setdefault("episodic", bool(run["task"].get("episodic", False)))
    mcfg = model_config(model["preset"], obs_dim, action_dim, **overrides)
    planner = from_dict(MppiConfig, run["planner"], "planner")
    acfg = from_dict(AgentConfig, {**run["agent"], "planner": planner}, "agent")
    return TDMPC2(mcfg, acfg, env.episode_length, seed=int(run["train"]["seed"]), device=run.get("device", "cpu"))


def set_threads(threads: int | None) -> None:
    """Torch CPU threads (``None`` keeps torch's default)."""
    import torch

    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"threads={threads} must be >= 1")
        torch.set_num_threads(int(threads))
