"""One conformance test over every registered task, plus the env's error handling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim
from wm_control.errors import ConfigError, InputError, WmControlError
from wm_control.robot import FR3

ALL_TASKS = sim.list_tasks()
# Reward range per step, per task family.
REWARD_BOUNDS = {"fr3": (-10.2, 10.0), "dmc": (0.0, 2.0)}


def _family(name: str) -> str:
    return "dmc" if name.startswith("dmc/") else "fr3"


def _rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def test_registry_lists_the_reach_task_and_dmc() -> None:
    assert "fr3-reach" in ALL_TASKS
    assert "dmc/cartpole-swingup" in sim.list_tasks("dmc")
    assert sim.list_tasks("reach") == ["fr3-reach"]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_task_conformance(name: str) -> None:
    env = sim.make(name, render_mode="rgb_array")
    try:
        assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.dtype == np.float32
        assert isinstance(env.action_space, gym.spaces.Box)
        assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
        obs, info = env.reset(seed=3)
        assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
        assert isinstance(info, dict)
        obs_a, rew_a = _rollout(env, seed=7, steps=25)
        obs_b, rew_b = _rollout(env, seed=7, steps=25)
        assert np.all(np.isfinite(obs_a)) and obs_a.dtype == np.float32
        np.testing.assert_array_equal(obs_a, obs_b)  # same seed -> same trajectory
        np.testing.assert_array_equal(rew_a, rew_b)
        obs_c, _ = _rollout(env, seed=8, steps=25)
        assert not np.array_equal(obs_a, obs_c[: len(obs_a)])
        lo, hi = REWARD_BOUNDS[_family(name)]
        assert np.all(rew_a >= lo) and np.all(rew_a <= hi)
        frame = env.render()
        assert frame is not None and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert frame.std() > 0  # not a blank image
    finally:
        env.close()


def test_gymnasium_ids_are_registered() -> None:
    env = gym.make("wm_control/FR3Reach-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40,)
    env.close()
    assert "wm_control/DMC-cartpole-swingup-v0" in gym.registry


def test_episode_length_and_truncation() -> None:
    env = sim.make("fr3-reach", env={"episode_seconds": 0.2})
    env.reset(seed=0)
    for k in range(10):
        _, _, terminated, truncated, _ = env.step(np.zeros(7, dtype=np.float32))
        assert not terminated
        assert truncated == (k == 9)
    with pytest.raises(WmControlError, match="call reset"):
        env.step(np.zeros(7, dtype=np.float32))


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'fr3-fly'; registered tasks: .*fr3-reach"):
        sim.make("fr3-fly")


def test_bad_actions_are_rejected() -> None:
    env = sim.make("fr3-reach")
    env.reset(seed=0)
    with pytest.raises(InputError, match=r"action has shape \(3,\); expected \(7,\)"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(InputError, match="dtype int64"):
        env.step(np.zeros(7, dtype=np.int64))
    with pytest.raises(InputError, match="NaN"):
        env.step(np.full(7, np.nan, dtype=np.float32))
    with pytest.raises(InputError, match=r"outside \[-1, 1\]"):
        env.step(np.full(7, 2.0, dtype=np.float32))
    dmc = sim.make("dmc/cartpole-swingup")
    dmc.reset(seed=0)
    with pytest.raises(InputError, match="outside"):
        dmc.step(np.array([3.0], dtype=np.float32))


def test_bad_configs_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dtt'\] in env; valid keys"):
        sim.make("fr3-reach", env={"dtt": 0.02})
    with pytest.raises(ConfigError, match="whole number of milliseconds"):
        sim.make("fr3-reach", env={"dt": 0.0155})
    with pytest.raises(ConfigError, match=r"env.chunk.velocity_fraction|velocity_fraction\[0\]"):
        sim.make("fr3-reach", env={"chunk": {"velocity_fraction": 2.0}})
    with pytest.raises(ConfigError, match=r"target_low\[2\]=0.6 exceeds target_high\[2\]=0.5"):
        sim.make("fr3-reach", task={"target_low": [0.3, 0.0, 0.6], "target_high": [0.5, 0.1, 0.5]})
    with pytest.raises(ConfigError, match="render_mode='human'"):
        sim.make("fr3-reach", render_mode="human")
    with pytest.raises(ConfigError, match="dmc.action_repeat=0"):
        sim.make("dmc/cartpole-swingup", env={"action_repeat": 0})


def test_reach_observation_layout_is_consistent() -> None:
    env = sim.make("fr3-reach")
    obs, info = env.reset(seed=5)
    sl = env.task.layout.slices()
    np.testing.assert_allclose(obs[sl["q"]], env.physics.q, atol=1e-6)
    assert np.all(obs[sl["command_dq"]] == 0) and np.all(obs[sl["command_ddq"]] == 0)  # at rest after reset
    np.testing.assert_allclose(obs[sl["tcp"]], 10 * env.physics.tcp_position, atol=1e-5)  # decimetres
    np.testing.assert_allclose(obs[sl["target_minus_tcp"]], obs[sl["target"]] - obs[sl["tcp"]], atol=1e-5)
    assert info["distance"] == pytest.approx(0.1 * np.linalg.norm(obs[sl["target_minus_tcp"]]), abs=1e-6)
    # The TCP velocity is the time derivative of the TCP position.
    action = np.full(7, 0.4, dtype=np.float32)
    for _ in range(10):
        obs, *_ = env.step(action)
    np.testing.assert_allclose(obs[sl["command_dq"]], env._command.dq, atol=1e-6)
    np.testing.assert_allclose(obs[sl["command_ddq"]], env._command.ddq / FR3.limits.ddq_max, atol=1e-6)
    assert np.abs(obs[sl["command_ddq"]]).max() <= 1.0  # a fraction of the limit
    tcp_before = env.physics.tcp_position
    vel = obs[sl["tcp_velocity"]]
    obs_next, *_ = env.step(action)
    finite_diff = (env.physics.tcp_position - tcp_before) / env.config.dt
    assert np.linalg.norm(vel) > 0.1
    np.testing.assert_allclose(0.5 * (vel + obs_next[sl["tcp_velocity"]]), finite_diff, atol=0.02)
