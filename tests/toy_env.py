"""A tiny gymnasium task for fast training tests: drive a 1-D point mass to a random target.

Observation (pos, vel, target), action = acceleration in [-1, 1], reward = 1 - |pos - target|
(clipped at 0), 40 steps per episode. A random policy scores about 15; a good controller about 34.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class PointMass(gym.Env[np.ndarray, np.ndarray]):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, episode_length: int = 40, render_mode: str | None = None, fail_at_step: int | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.episode_length = episode_length
        self.render_mode = render_mode
        self.fail_at_step = fail_at_step  # raise KeyboardInterrupt there (tests Ctrl-C handling)
        self._rng = np.random.default_rng(0)
        self._total = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.pos, self.vel, self.target], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.pos, self.vel = 0.0, 0.0
        self.target = float(self._rng.uniform(-1, 1))
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._total += 1
        if self.fail_at_step is not None and self._total == self.fail_at_step:
            raise KeyboardInterrupt
        a = float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        self.vel = 0.8 * self.vel + 0.1 * a
        self.pos = float(np.clip(self.pos + self.vel, -2, 2))
        self.t += 1
        reward = max(0.0, 1.0 - abs(self.pos - self.target))
        return self._obs(), reward, False, self.t >= self.episode_length, {}

    def render(self) -> np.ndarray:
        frame = np.zeros((16, 64, 3), np.uint8)
        frame[:, int(np.clip((self.pos + 2) / 4 * 63, 0, 63))] = 255
        return frame
