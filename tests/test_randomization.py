"""Domain randomisation: off by default, applied per episode, reproducible, and validated."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.randomization import RandomizationConfig
from wm_control.errors import ConfigError


def test_default_is_identity() -> None:
    env = sim.make("fr3-reach")
    m = env.physics.model
    masses = m.body_mass.copy()
    env.reset(seed=0)
    np.testing.assert_array_equal(m.body_mass, masses)
    assert np.all(m.body_gravcomp[m.body("fr3_link3").id] == 1.0)


def test_mass_and_damping_are_scaled_and_gravity_comp_stays_nominal() -> None:
    nominal = sim.make("fr3-reach").physics.model
    env = sim.make("fr3-reach", env={"randomization": {"mass_scale": [0.8, 1.2], "damping_scale": [0.5, 1.5]}})
    env.reset(seed=1)
    m = env.physics.model
    link = m.body("fr3_link4").id
    scale = m.body_mass[link] / nominal.body_mass[link]
    assert scale != 1.0 and 0.8 <= scale <= 1.2
    np.testing.assert_allclose(m.body_inertia[link], nominal.body_inertia[link] * scale)
    # compensated weight = scaled mass * gravcomp = nominal mass
    assert m.body_mass[link] * m.body_gravcomp[link] == pytest.approx(nominal.body_mass[link])
    assert not np.allclose(m.dof_damping[:4], nominal.dof_damping[:4])
    first = m.body_mass.copy()
    env.reset(seed=1)
    np.testing.assert_array_equal(m.body_mass, first)  # same seed, same draw


def test_action_latency_delays_actions_by_whole_ticks() -> None:
    action = np.full(7, 0.5, dtype=np.float32)

    def speeds(latency: int) -> list[float]:
        # Without the posture pull, which moves the joints (not the TCP) also under a zero action.
        randomization = {"action_latency_ticks": [latency, latency]}
        env = sim.make("fr3-reach", env={"randomization": randomization, "chunk": {"posture_gain": 0.0}})
        env.reset(seed=0)
        out = []
        for _ in range(4):
            env.step(action)
            out.append(float(np.abs(env._command.dq).max()))
        return out

    immediate, delayed = speeds(0), speeds(2)
    assert immediate[0] > 0
    assert delayed[:2] == [0.0, 0.0]
    assert delayed[2] == pytest.approx(immediate[0])


def test_observation_noise_changes_observations_not_state() -> None:
    clean = sim.make("fr3-reach")
    noisy = sim.make("fr3-reach", env={"randomization": {"obs_noise_q": 0.01, "obs_noise_dq": 0.1}})
    o1, _ = clean.reset(seed=2)
    o2, _ = noisy.reset(seed=2)
    assert not np.allclose(o1[:7], o2[:7])
    np.testing.assert_allclose(o1[:7], o2[:7], atol=0.06)
    np.testing.assert_array_equal(clean.physics.q, noisy.physics.q)


def test_bad_ranges_are_named() -> None:
    with pytest.raises(ConfigError, match=r"mass_scale\[1\]=20.0 is out of range"):
        RandomizationConfig(mass_scale=(1.0, 20.0))
    with pytest.raises(ConfigError, match="low must not exceed high"):
        RandomizationConfig(damping_scale=(1.2, 0.8))
    with pytest.raises(ConfigError, match=r"action_latency_ticks\[1\]=3 is out of range"):
        RandomizationConfig(action_latency_ticks=(0, 3))
