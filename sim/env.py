"""Gymnasium env for FR3 tasks: the control contract around a task.

Each ``step`` takes a normalised joint-velocity action in [-1, 1]^7, turns it into a trajectory chunk
(``wm_control.chunking``), hands the chunk to the 1 kHz layer and simulates one control period
``dt``. Episodes have a fixed length; a reflex ends one early (``terminated``) with the reason in
``info["reflex"]``. Nothing is clamped silently: an action outside [-1, 1] or with NaN raises.

``info`` (from ``reset`` and ``step``): ``is_success`` (the task's success condition has held at some
step of the episode), ``time_to_target`` [s] (when it first held; present only once it has, so every
value compares equal to itself and a seeded episode's infos are reproducible), ``reflex`` (reason or
``None``), ``torque_saturated_ticks``, ``reward_terms``, ``sim_time`` [s], the task's metrics and, with
latency randomisation, ``action_latency_ticks``.
"""

from __future__ import annotations

import atexit
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from sim.physics import FR3Sim, ImpedanceGains, MonitorConfig
from sim.randomization import EpisodeRandomization, ModelRandomizer, RandomizationConfig
from sim.scene import build_model
from sim.tasks.base import FR3Task
from wm_control.chunking import ChunkConfig, ChunkGenerator, CommandState
from wm_control.config import from_dict
from wm_control.errors import ConfigError, InputError, WmControlError, check_range
from wm_control.robot import FR3
from wm_control.trajectory import StampedChunk

__all__ = ["FR3Env", "FR3EnvConfig"]


@dataclass(frozen=True)
class FR3EnvConfig:
    """The control contract and episode settings of an FR3 env.

    dt: control period [s], a whole multiple of the physics step (the MJCF timestep, the servo period
        of the simulated 1 kHz layer); each task sets its own (``fr3-reach``: 20 ms).
    episode_seconds: episode length [s]; the episode has ``round(episode_seconds / dt)`` steps.
    hand: simulate the Franka Hand (TCP 0.1034 m beyond the flange).
    chunk: how actions become trajectory chunks (velocity scaling, limits).
    gains: joint impedance gains of the 1 kHz layer.
    monitor: which reflexes the sim raises.
    randomization: per-episode domain randomisation (identity by default).
    playout_delay: how long after its tick a chunk starts executing [s], in [0, 0.1]: the deployed
        link's dead time (the ROS sim node's ``playout_delay``: a chunk is stamped with its tick's
        time and the 1 kHz layer runs this far behind the stamps). 0: at the tick, as before. A model
        trained with a delay records it in its control contract and is deployed with the same one.
    render_width / render_height: ``render()`` frame size [px]; camera: a camera of scene.xml.
    """

    dt: float
    episode_seconds: float = 3.0
    hand: bool = True
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    gains: ImpedanceGains = field(default_factory=ImpedanceGains)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    playout_delay: float = 0.0
    render_width: int = 320
    render_height: int = 240
    camera: str = "front"

    def __post_init__(self) -> None:
        check_range("env.dt", self.dt, 0.002, 0.2)
        check_range("env.episode_seconds", self.episode_seconds, self.dt, 3600.0)
        check_range("env.playout_delay", self.playout_delay, 0.0, 0.1)
        check_range("env.render_width", self.render_width, 16, 4096)
        check_range("env.render_height", self.render_height, 16, 4096)
        if self.camera not in ("front", "side"):
            raise ConfigError(f"env.camera={self.camera!r}; valid: 'front', 'side'")

    @property
    def episode_steps(self) -> int:
        """Control steps per episode."""
        return int(round(self.episode_seconds / self.dt))

    @classmethod
    def from_any(cls, value: FR3EnvConfig | dict[str, Any] | None) -> FR3EnvConfig:
        """Accept an instance, a dict of fields (nested dicts for sub-configs) or ``None``."""
        return from_dict(cls, value, "env")


class FR3Env(gym.Env[np.ndarray, np.ndarray]):
    """An FR3 task as a gymnasium env (see the module docstring for the step contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, task: FR3Task, config: FR3EnvConfig, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r}; valid: None, 'rgb_array'")
        self.task = task
        self.config = config
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / config.dt))}
        model = build_model(hand=config.hand, scene=True)
        self.physics = FR3Sim(model, FR3, config.gains, config.monitor, playout_delay=config.playout_delay)
        # The MJCF timestep owns the servo rate: the generator refuses chunk shaping made for another.
        try:
            self.generator = ChunkGenerator(FR3, config.chunk, config.dt, servo_period=float(model.opt.timestep))
        except ConfigError as exc:
            raise ConfigError(f"env: {exc}") from None
        arm_bodies = [model.body(f"fr3_link{i}").id for i in range(1, 8)]
        self._randomizer = ModelRandomizer(model, config.randomization, arm_bodies)
        self._target_mocap = int(model.body("target").mocapid[0])
        n_obs = task.layout.size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)
        self._renderer: mujoco.Renderer | None = None
        self._release_renderer: weakref.finalize | None = None
        self._rng = np.random.default_rng()
        self._command: CommandState = self.generator.rest(self.physics.q)
        self._pending: deque[np.ndarray] = deque()
        self._episode: EpisodeRandomization | None = None
        self._steps = 0
        self._done = True
        self._success_time: float | None = None

    @property
    def command_state(self) -> CommandState:
        """The trajectory generator's state (commanded q, dq, ddq) at the start of the next tick."""
        return self._command

    @property
    def episode_length(self) -> int:
        """Control steps per episode (fixed unless a reflex ends it early)."""
        return self.config.episode_steps

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` makes it reproducible (initial state, goal, randomisation)."""
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._episode = self._randomizer.sample(self._rng)
        q0 = self.task.reset(self.physics, self._rng)
        self.physics.reset(q0)
        marker = self.task.goal_marker()
        if marker is not None:
            self.physics.data.mocap_pos[self._target_mocap] = marker
        self._command = self.generator.rest(q0)
        self._pending = deque(np.zeros(7) for _ in range(self._episode.action_latency_ticks))
        self._steps = 0
        self._done = False
        outcome = self.task.evaluate(self.physics)
        self._success_time = 0.0 if outcome.success else None
        return self._observe(), self._info(None, 0, {}, outcome.metrics)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action for one control period ``dt``."""
        if self._done:
            raise WmControlError("episode is over (or never started): call reset() before step()")
        action = np.asarray(action)
        if action.shape != (7,):
            raise InputError(f"action has shape {action.shape}; expected (7,)")
        if not np.issubdtype(action.dtype, np.floating):
            raise InputError(f"action has dtype {action.dtype}; expected float32 or float64 in [-1, 1]")
        self.generator.action_to_velocity(action)  # validates range and NaN before anything moves
        if self._episode is not None and self._episode.action_latency_ticks:
            self._pending.append(np.array(action, dtype=np.float64))
            action = self._pending.popleft()
        result = self.generator.generate(self._command, action)
        if self.config.playout_delay > 0.0:
            start = self._command
            refusal = self.physics.send_stamped(StampedChunk(self.physics.time, start.q, start.dq, result.chunk))
            if refusal is not None:  # stamps are the tick times, in order: a refusal is a bug
                raise WmControlError(f"env: the 1 kHz layer refused a chunk: {refusal.message}")
        else:
            self.physics.send(result.chunk)
        report = self.physics.advance(self.config.dt)
        self._command = result.next_state
        self._steps += 1
        outcome = self.task.evaluate(self.physics)
        if self._success_time is None and report.reflex is None and outcome.success:
            self._success_time = self._steps * self.config.dt
        terminated = report.reflex is not None
        truncated = not terminated and self._steps >= self.config.episode_steps
        self._done = terminated or truncated
        reflex = report.reflex.message if report.reflex else None
        info = self._info(reflex, report.torque_saturated_ticks, outcome.terms, outcome.metrics)
        return self._observe(), outcome.total, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """RGB frame ``(H, W, 3)`` uint8 from the configured camera (needs ``MUJOCO_GL=egl`` headless)."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            renderer = mujoco.Renderer(self.physics.model, self.config.render_height, self.config.render_width)
            # An env that is dropped or still open at exit must free its GL context while the display
            # exists: mujoco's EGL backend terminates the display from an atexit hook registered when
            # the first context is created, and hooks run last-registered-first, so ours (registered
            # now) runs before it; the finalizer covers an env collected earlier. Both call the same
            # finalizer, which runs at most once (an env collected unclosed leaves only that spent
            # finalizer registered).
            release = weakref.finalize(self, renderer.close)
            release.atexit = False
            atexit.register(release)
            self._renderer, self._release_renderer = renderer, release
        self._renderer.update_scene(self.physics.data, camera=self.config.camera)
        return self._renderer.render()

    def close(self) -> None:
        """Free the renderer's GL context (idempotent)."""
        if self._release_renderer is not None:
            self._release_renderer()
            atexit.unregister(self._release_renderer)
        self._renderer = self._release_renderer = None

    # --- helpers ---------------------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        q, dq = self._randomizer.observe(self._rng, self.physics.q, self.physics.dq)
        return self.task.observation(self.physics, q, dq, self._command)

    def _info(
        self, reflex: str | None, saturated: int, terms: dict[str, float], metrics: dict[str, float]
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "is_success": self._success_time is not None,
            "reflex": reflex,
            "torque_saturated_ticks": saturated,
            "reward_terms": terms,
            "sim_time": self.physics.time,
            **metrics,
        }
        # Absent rather than NaN until success: NaN != NaN would make identical episodes' infos differ
        # (gymnasium's check_env compares them), and consumers read it with info.get(key, default).
        if self._success_time is not None:
            info["time_to_target"] = self._success_time
        if self._episode is not None:
            info["action_latency_ticks"] = self._episode.action_latency_ticks
        return info
