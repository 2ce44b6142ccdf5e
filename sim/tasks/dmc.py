"""DeepMind Control Suite tasks as gymnasium envs, with TD-MPC2's conventions.

Actions in [-1, 1] (rescaled in float64 if a domain's bounds differ, exactly as dm_control's
``suite.wrappers.action_scale`` does; passed through unchanged where they do not), action repeat 2,
500 agent steps per episode, observations flattened to float32 in the suite's key order. Registered as
``dmc/<domain>-<task>`` with TD-MPC2's task names (``dmc/cup-catch`` is ball_in_cup/catch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sim.tasks.registry import TaskEntry, add
from wm_control.config import from_dict
from wm_control.errors import ConfigError, InputError, WmControlError, check_finite, check_range

__all__ = ["DMC_TASKS", "DMCConfig", "DMCEnv", "make_dmc"]

# TD-MPC2 name -> (dm_control domain, task)
DMC_TASKS: dict[str, tuple[str, str]] = {
    "acrobot-swingup": ("acrobot", "swingup"),
    "cartpole-balance": ("cartpole", "balance"),
    "cartpole-balance_sparse": ("cartpole", "balance_sparse"),
    "cartpole-swingup": ("cartpole", "swingup"),
    "cartpole-swingup_sparse": ("cartpole", "swingup_sparse"),
    "cheetah-run": ("cheetah", "run"),
    "cup-catch": ("ball_in_cup", "catch"),
    "finger-spin": ("finger", "spin"),
    "finger-turn_easy": ("finger", "turn_easy"),
    "finger-turn_hard": ("finger", "turn_hard"),
    "hopper-hop": ("hopper", "hop"),
    "hopper-stand": ("hopper", "stand"),
    "pendulum-swingup": ("pendulum", "swingup"),
    "quadruped-run": ("quadruped", "run"),
    "quadruped-walk": ("quadruped", "walk"),
    "reacher-easy": ("reacher", "easy"),
    "reacher-hard": ("reacher", "hard"),
    "walker-run": ("walker", "run"),
    "walker-stand": ("walker", "stand"),
    "walker-walk": ("walker", "walk"),
}


@dataclass(frozen=True)
class DMCConfig:
    """Adapter settings: action_repeat (>= 1), episode_steps (agent steps), render size and camera id."""

    action_repeat: int = 2
    episode_steps: int = 500
    render_width: int = 320
    render_height: int = 240
    camera_id: int = 0

    def __post_init__(self) -> None:
        check_range("dmc.action_repeat", self.action_repeat, 1, 100)
        check_range("dmc.episode_steps", self.episode_steps, 1, 1_000_000)
        check_range("dmc.render_width", self.render_width, 16, 4096)
        check_range("dmc.render_height", self.render_height, 16, 4096)
        check_range("dmc.camera_id", self.camera_id, 0, 16)


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """One dm_control suite task behind the gymnasium API."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, name: str, config: DMCConfig = DMCConfig(), render_mode: str | None = None) -> None:
        if name not in DMC_TASKS:
            raise ConfigError(f"unknown DMC task {name!r}; valid: {', '.join(sorted(DMC_TASKS))}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r}; valid: None, 'rgb_array'")
        domain, task = DMC_TASKS[name]
        self.name = name
        self.config = config
        self.render_mode = render_mode
        # Imported here, not at module level: the suite takes about half a second to import, and every
        # `import sim` (the FR3 nodes and CLIs included) would pay for it.
        from dm_control import suite

        self._env = suite.load(domain, task, task_kwargs={"time_limit": float("inf")})
        spec = self._env.action_spec()
        self._act_low = np.broadcast_to(np.asarray(spec.minimum, dtype=np.float64), spec.shape)
        self._act_high = np.broadcast_to(np.asarray(spec.maximum, dtype=np.float64), spec.shape)
        self._act_scale = (self._act_high - self._act_low) / 2.0
        # Where the suite's bounds are already [-1, 1] the action goes through untouched: the affine
        # map would round it (-1 + (a + 1) drops a's low bits), and the suite steps the action it gets.
        self._rescale = bool(np.any(self._act_low != -1.0) or np.any(self._act_high != 1.0))
        n_obs = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)
        control_dt = float(self._env.control_timestep()) * config.action_repeat
        self.dt = control_dt  # agent step [s]
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / control_dt))}
        self._steps = 0
        self._done = True

    @property
    def episode_length(self) -> int:
        """Agent steps per episode."""
        return self.config.episode_steps

    @staticmethod
    def _flatten(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in obs.values()])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the task's random state (same seed, same episode)."""
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        ts = self._env.reset()
        self._steps = 0
        self._done = False
        return self._flatten(ts.observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (in [-1, 1]) for ``action_repeat`` suite steps; rewards are summed."""
        if self._done:
            raise WmControlError("episode is over (or never started): call reset() before step()")
        a = np.asarray(action)
        if a.shape != self.action_space.shape:
            raise InputError(f"action has shape {a.shape}; expected {self.action_space.shape}")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise InputError(f"action has dtype {a.dtype}; expected a float array in [-1, 1]")
        # float64 before any arithmetic, as the suite computes: float32 arithmetic would move half of
        # all actions by an ulp and the physics away from the suite's.
        a = a.astype(np.float64)
        check_finite("action", a)
        bad = np.flatnonzero(np.abs(a) > 1.0 + 1e-6)
        if bad.size:
            i = int(bad[0])
            raise InputError(f"action[{i}] = {float(a[i])!r} is outside [-1, 1]")
        a = np.clip(a, -1.0, 1.0)
        # action_scale.Wrapper(minimum=-1, maximum=1): minimum' + scale * (a - minimum).
        scaled = self._act_low + self._act_scale * (a + 1.0) if self._rescale else a
        reward = 0.0
        for _ in range(self.config.action_repeat):
            ts = self._env.step(scaled)
            reward += float(ts.reward or 0.0)
        self._steps += 1
        truncated = self._steps >= self.config.episode_steps
        self._done = truncated
        return self._flatten(ts.observation), reward, False, truncated, {}

    def render(self) -> np.ndarray | None:
        """RGB frame ``(H, W, 3)`` uint8 (``MUJOCO_GL=egl`` headless)."""
        if self.render_mode != "rgb_array":
            return None
        c = self.config
        return self._env.physics.render(c.render_height, c.render_width, camera_id=c.camera_id)

    def close(self) -> None:
        """Release the suite environment."""
        self._env.close()


def make_dmc(name: str, config: DMCConfig | dict[str, Any] | None = None, render_mode: str | None = None) -> DMCEnv:
    """Build a DMC env by TD-MPC2 name (without the ``dmc/`` prefix)."""
    return DMCEnv(name, from_dict(DMCConfig, config, "dmc"), render_mode=render_mode)


def _factory(short: str) -> Any:
    def factory(
        env: DMCConfig | dict[str, Any] | None = None,
        task: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> DMCEnv:
        if task:
            raise ConfigError(f"dmc/{short} has no task options; got {sorted(task)}")
        return make_dmc(short, env, render_mode)

    factory.__name__ = f"make_dmc_{short.replace('-', '_')}"
    return factory


for _short, (_domain, _task) in DMC_TASKS.items():
    add(
        TaskEntry(
            name=f"dmc/{_short}",
            factory=_factory(_short),
            tags=frozenset({"dmc", _domain, "state"}),
            gym_id=f"wm_control/DMC-{_short}-v0",
            description=f"DeepMind Control Suite {_domain}/{_task}, action repeat 2, 500 steps",
        )
    )
