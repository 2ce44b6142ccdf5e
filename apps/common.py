"""Shared by the entry points: where the hydra configs live, and how a run config (plain data)
becomes an env factory and a TD-MPC2 agent.
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

    def make(render: bool) -> Any:
        return sim.make(
            name,
            env=task_cfg.get("env") or None,
            task=task_cfg.get("task") or None,
            render_mode="rgb_array" if render else None,
        )

    return make


def build_agent(run: dict[str, Any], env: Any) -> Any:
    """The TD-MPC2 agent a run config describes, sized for ``env``."""
    import numpy as np

    from wm_control.config import from_dict
    from wm_control.model.config import model_config
    from wm_control.planning.mppi import MppiConfig
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
