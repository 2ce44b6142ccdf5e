"""Episode replay buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wm_control.errors import ConfigError, InputError
from wm_control.training.buffer import EpisodeBuffer


def _episode(ep: int, length: int, obs_dim: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Encode (episode, time) in the data so samples can be checked for consistency.
    t = np.arange(length + 1, dtype=np.float32)
    obs = np.stack([np.full(length + 1, ep, np.float32), t], 1)[:, :obs_dim]
    act = np.stack([np.full(length, ep, np.float32), t[:-1]], 1)
    rew = ep * 1000 + t[:-1]
    return obs, act, rew


def test_samples_stay_inside_one_episode_and_align() -> None:
    buf = EpisodeBuffer(10_000, 2, 2)
    for ep, L in enumerate([5, 10, 3, 8]):
        buf.add(*_episode(ep, L))
    b = buf.sample(500, 3, np.random.default_rng(0))
    assert b.obs.shape == (4, 500, 2) and b.action.shape == (3, 500, 2) and b.reward.shape == (3, 500)
    ep = b.obs[..., 0]
    assert (ep == ep[0]).all()  # same episode along time
    t0 = b.obs[0, :, 1]
    for k in range(3):
        assert (b.obs[k, :, 1] == t0 + k).all()
        assert (b.action[k, :, 1] == t0 + k).all()  # action t was taken at obs t
        assert (b.reward[k] == ep[0] * 1000 + t0 + k).all()
    assert set(ep[0].tolist()) == {0.0, 1.0, 2.0, 3.0}
    # Valid starts of a 3-step window in an L-step episode: L - 2, so 3 + 8 + 1 + 6 in all.
    starts = np.unique(np.stack([ep[0].numpy(), t0.numpy()], 1), axis=0)
    assert len(starts) == 18
    assert (t0 <= torch.tensor([5, 10, 3, 8])[ep[0].long()] - 3).all()


def test_uniform_over_valid_starts() -> None:
    buf = EpisodeBuffer(10_000, 2, 2)
    buf.add(*_episode(0, 4))  # 2 starts for horizon 3
    buf.add(*_episode(1, 11))  # 9 starts
    b = buf.sample(22_000, 3, np.random.default_rng(1))
    frac = float((b.obs[0, :, 0] == 0).float().mean())
    assert frac == pytest.approx(2 / 11, abs=0.01)


def test_capacity_drops_oldest_episodes() -> None:
    buf = EpisodeBuffer(20, 2, 2)
    for ep in range(5):
        buf.add(*_episode(ep, 8))
    assert len(buf) <= 20 and buf.num_episodes == 2 and buf.episodes_added == 5
    b = buf.sample(100, 2, np.random.default_rng(0))
    assert set(b.obs[0, :, 0].tolist()) == {3.0, 4.0}


def test_save_load_round_trip(tmp_path) -> None:  # noqa: ANN001
    buf = EpisodeBuffer(100, 2, 2)
    for ep in range(3):
        buf.add(*_episode(ep, 6 + ep))
    buf.save(tmp_path / "b.npz")
    back = EpisodeBuffer.load(tmp_path / "b.npz")
    assert len(back) == len(buf) and back.episodes_added == 3
    a = buf.sample(50, 3, np.random.default_rng(7))
    b = back.sample(50, 3, np.random.default_rng(7))
    for x, y in zip(a, b, strict=True):
        assert (x == y).all()


def test_bad_episodes_are_rejected() -> None:
    buf = EpisodeBuffer(100, 2, 2)
    obs, act, rew = _episode(0, 5)
    with pytest.raises(InputError, match=r"obs has shape \(5, 2\); expected \(6, 2\)"):
        buf.add(obs[:-1], act, rew)
    rew = rew.copy()
    rew[2] = np.nan
    with pytest.raises(InputError, match="reward contains NaN"):
        buf.add(obs, act, rew)
    with pytest.raises(ConfigError, match="no stored episode has 3 steps"):
        EpisodeBuffer(10, 2, 2).sample(4, 3, np.random.default_rng(0))
