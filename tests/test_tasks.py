"""One conformance test over every registered task, plus the env's error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from dm_control import suite
from dm_control.suite.wrappers import action_scale
from gymnasium.utils.env_checker import check_env

import sim
from sim.tasks.dmc import DMC_TASKS
from wm_control.errors import ConfigError, InputError, WmControlError
from wm_control.robot import FR3

ROOT = Path(__file__).resolve().parents[1]

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


@pytest.mark.parametrize("name", ALL_TASKS)
def test_every_registered_env_passes_gymnasiums_env_checker(name: str) -> None:
    """``gymnasium.utils.env_checker.check_env`` on the env behind every registered gym id, all of
    them (about 0.1 s each): spaces, seeded reset, step determinism (infos included: no NaN that
    compares unequal to itself) and returned-data reuse. Rendering is covered by the conformance test.
    Its only tolerated warnings are the ones about our deliberately unbounded observation spaces.
    """
    assert sim.get_task(name).gym_id in gym.registry
    env = sim.make(name)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True)
        unexpected = [str(w.message) for w in caught if "infinity" not in str(w.message)]
        assert not unexpected, unexpected
    finally:
        env.close()


def test_time_to_target_is_reported_once_the_task_succeeds() -> None:
    """Absent while the target has not been reached (never NaN), the success time [s] once it has."""
    env = sim.make("fr3-reach", task={"success_radius": 0.5, "rest_speed": 2.0})  # succeeds at once
    _, info = env.reset(seed=0)
    assert info["is_success"] and info["time_to_target"] == 0.0
    env = sim.make("fr3-reach", task={"success_radius": 1e-6})  # never succeeds
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert not info["is_success"] and "time_to_target" not in info


@pytest.mark.parametrize("name", ["cartpole-swingup", "cup-catch", "quadruped-walk"])
def test_dmc_adapter_steps_exactly_like_the_suite(name: str) -> None:
    """Bit-for-bit the suite's observations and rewards, for the same float32 actions in [-1, 1]
    (rescaled in float64 by dm_control's own action_scale wrapper where the bounds differ: quadruped).
    """
    domain, task = DMC_TASKS[name]
    seed, steps = 11, 50
    env = sim.make(f"dmc/{name}")
    # The adapter's episode: an unlimited suite task whose random state is reseeded by reset(seed).
    raw = suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
    spec = raw.action_spec()
    if np.any(spec.minimum != -1.0) or np.any(spec.maximum != 1.0):
        raw = action_scale.Wrapper(raw, minimum=-1.0, maximum=1.0)
    obs, _ = env.reset(seed=seed)
    ts = raw.reset()

    def flat(observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()])

    np.testing.assert_array_equal(obs, flat(ts.observation))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, *_ = env.step(action)
        expected = 0.0
        for _ in range(env.config.action_repeat):
            ts = raw.step(action.astype(np.float64))
            expected += float(ts.reward)
        np.testing.assert_array_equal(obs, flat(ts.observation))
        assert reward == expected
    env.close()


def test_an_env_that_rendered_and_was_not_closed_exits_cleanly() -> None:
    """The renderer's GL context is freed before EGL shuts down, without close()."""
    code = (
        "import sim\n"
        "env = sim.make('fr3-reach', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "assert env.render().shape == (240, 320, 3)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def _bench(script: str, *args: str) -> dict[str, Any]:
    """Run ``bench/<script> ... --no-write``; its stdout must be exactly one JSON document."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--no-write"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"{script} printed {c}, not JSON"))


def test_benchmarks_print_json_without_writing_results() -> None:
    """``--no-write`` prints the payload as JSON on stdout (nothing else there) and writes nothing."""
    results = ROOT / "docs" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("*")} if results.exists() else {}
    assert _bench("fr3_reach_scripted.py", "--episodes", "1")["episodes"] == 1
    assert _bench("sim_speed.py", "--seconds", "0.1")["benchmark"] == "sim_speed"
    after = {p: p.stat().st_mtime_ns for p in results.glob("*")} if results.exists() else {}
    assert after == before


def test_dmc_curve_prints_json_without_writing_results(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    config = {
        "task": {"name": "dmc/cartpole-swingup", "env": {"action_repeat": 2}},
        "train": {"seed": 3},
        "planner": {"num_samples": 512, "iterations": 6, "horizon": 3},
        "model": {"preset": "5M"},
    }
    (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (run / "metrics" / "eval.csv").write_text("step,return_mean\n1000,120.5\n2000,250.0\n")
    payload = _bench("dmc_curve.py", "--task", "cartpole-swingup", "--runs", str(run))
    assert payload["rows"] == [{"step": 1000, "return": 120.5, "seed": 3}, {"step": 2000, "return": 250.0, "seed": 3}]
    assert payload["files"] == []


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
    # Barely outside: enough digits to show why (float32(1 + 2e-6) = 1.0000020265579224).
    with pytest.raises(InputError, match=r"action\[0\] \(fr3_joint1\) = 1\.000002\d* is outside \[-1, 1\]"):
        env.step(np.full(7, 1 + 2e-6, dtype=np.float32))
    dmc = sim.make("dmc/cartpole-swingup")
    dmc.reset(seed=0)
    with pytest.raises(InputError, match=r"action\[0\] = 3\.0 is outside \[-1, 1\]"):
        dmc.step(np.array([3.0], dtype=np.float32))
    with pytest.raises(InputError, match=r"action\[0\] = 1\.000002\d* is outside \[-1, 1\]"):
        dmc.step(np.array([1 + 2e-6], dtype=np.float32))
    with pytest.raises(InputError, match=r"action contains NaN or inf at index 0"):
        dmc.step(np.array([np.nan], dtype=np.float32))


def test_bad_configs_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dtt'\] in env; valid keys"):
        sim.make("fr3-reach", env={"dtt": 0.02})
    with pytest.raises(ConfigError, match=r"env: dt=0.0155 must be a whole multiple of servo_period=0.001"):
        sim.make("fr3-reach", env={"dt": 0.0155})
    with pytest.raises(ConfigError, match=r"env: ChunkConfig.servo_period=0.002 s differs from .* \(0.001 s\)"):
        sim.make("fr3-reach", env={"chunk": {"servo_period": 0.002}})  # the MJCF timestep owns the servo rate
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


def test_a_playout_delay_runs_the_same_commands_that_much_later_and_is_recorded_in_the_contract() -> None:
    """With ``env.playout_delay`` each chunk is stamped with its tick and the 1 kHz layer runs that far
    behind (what the ROS sim node does): the commanded trajectory is the undelayed one, shifted by the
    delay (the same actions, from rest). The delay goes into the control contract, so that a model
    trained with it is deployed with it.
    """
    from sim.contract import control_contract

    actions = np.random.default_rng(2).uniform(-1.0, 1.0, (12, 7)).astype(np.float32)
    commands = {}
    for delay in (0.0, 0.04):  # 0.04 s: two control periods, so tick ends line up
        env = sim.make("fr3-reach", env={"playout_delay": delay})
        env.reset(seed=1)
        log = []
        for a in actions:
            env.step(a)
            log.append(env.unwrapped.physics.command[0])
        commands[delay] = np.array(log)
        assert control_contract(env).action.get("playout_delay") == (delay or None)
        env.close()
    np.testing.assert_allclose(commands[0.04][2:], commands[0.0][:-2], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(commands[0.04][0], commands[0.04][1])  # held at rest meanwhile
    with pytest.raises(ConfigError, match=r"env.playout_delay"):
        sim.make("fr3-reach", env={"playout_delay": 0.5})


def test_reach_chained_episodes_start_where_the_previous_one_ended() -> None:
    """``chain_probability`` 1: every episode after the first starts at rest where the arm was; 0: at
    the noisy home pose (the default, as the shipped model was trained first)."""
    import sim
    from wm_control.robot import FR3

    env = sim.make("fr3-reach", task={"chain_probability": 1.0})
    env.reset(seed=3)
    first = env.physics.q.copy()
    assert np.all(np.abs(first - FR3.start_q) <= 0.1 + 1e-12)  # the first episode: from home
    for _ in range(20):
        env.step(np.full(7, 0.5, dtype=np.float32))
    ended = env.physics.q.copy()
    env.reset()
    np.testing.assert_array_equal(env.physics.q, ended)
    np.testing.assert_array_equal(env.physics.dq, 0.0)
    home = sim.make("fr3-reach")
    home.reset(seed=3)
    for _ in range(20):
        home.step(np.full(7, 0.5, dtype=np.float32))
    home.reset()
    assert np.all(np.abs(home.physics.q - FR3.start_q) <= 0.1 + 1e-12)
    with pytest.raises(ConfigError, match="chain_probability"):
        sim.make("fr3-reach", task={"chain_probability": 1.5})
