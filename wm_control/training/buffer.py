"""Replay buffer of whole episodes for TD-MPC2: samples length ``H + 1`` sub-trajectories that stay
inside one episode, uniformly over all valid start positions.

Storage is plain numpy: observations ``(L + 1, obs_dim)``, actions ``(L, A)``, rewards ``(L,)`` and
terminal flags ``(L,)`` per episode, where ``actions[t]`` was taken at ``obs[t]`` and produced
``rewards[t]`` and ``obs[t + 1]``. When full, the oldest episodes are dropped.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from wm_control.errors import CheckpointError, ConfigError, InputError, check_range

__all__ = ["Batch", "EpisodeBuffer"]


class Batch(NamedTuple):
    """Sub-trajectories as time-major tensors: obs ``(H + 1, B, obs_dim)``, action ``(H, B, A)``,
    reward ``(H, B)``, terminated ``(H, B)`` (1.0 where the step ended the episode by termination).
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    terminated: Tensor


class EpisodeBuffer:
    """Episodes up to ``capacity`` transitions in total (oldest dropped first)."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        check_range("buffer.capacity", capacity, 1, 1 << 40)
        self.capacity = int(capacity)
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self._obs: list[np.ndarray] = []
        self._act: list[np.ndarray] = []
        self._rew: list[np.ndarray] = []
        self._term: list[np.ndarray] = []
        self._transitions = 0
        self.episodes_added = 0

    def __len__(self) -> int:
        """Number of stored transitions."""
        return self._transitions

    @property
    def num_episodes(self) -> int:
        """Episodes currently stored."""
        return len(self._obs)

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, terminated: np.ndarray | None = None
    ) -> None:
        """Store one finished episode (see the module docstring for the layout)."""
        obs = np.asarray(obs, dtype=np.float32)
        action = np.asarray(action, dtype=np.float32)
        reward = np.asarray(reward, dtype=np.float32).reshape(-1)
        L = len(action)
        term = np.zeros(L, np.float32) if terminated is None else np.asarray(terminated, np.float32).reshape(-1)
        if obs.shape != (L + 1, self.obs_dim):
            raise InputError(f"episode obs has shape {obs.shape}; expected ({L + 1}, {self.obs_dim}) for {L} actions")
        if action.shape != (L, self.action_dim) or reward.shape != (L,) or term.shape != (L,):
            raise InputError(
                f"episode arrays disagree: action {action.shape}, reward {reward.shape}, terminated {term.shape}; "
                f"expected ({L}, {self.action_dim}), ({L},), ({L},)"
            )
        for name, arr in (("obs", obs), ("action", action), ("reward", reward)):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"episode {name} contains NaN or inf; refusing to store it")
        self._obs.append(obs)
        self._act.append(action)
        self._rew.append(reward)
        self._term.append(term)
        self._transitions += L
        self.episodes_added += 1
        while self._transitions > self.capacity and len(self._obs) > 1:
            self._transitions -= len(self._act[0])
            for store in (self._obs, self._act, self._rew, self._term):
                store.pop(0)

    def sample(
        self, batch_size: int, horizon: int, rng: np.random.Generator, device: torch.device | str = "cpu"
    ) -> Batch:
        """``batch_size`` sub-trajectories of ``horizon`` steps, uniformly over valid starts."""
        starts_per_ep = np.array([len(a) - horizon + 1 for a in self._act])
        starts_per_ep = np.maximum(starts_per_ep, 0)
        total = int(starts_per_ep.sum())
        if total == 0:
            raise ConfigError(f"no stored episode has {horizon} steps to sample; add longer episodes first")
        cum = np.cumsum(starts_per_ep)
        flat = rng.integers(0, total, size=batch_size)
        ep = np.searchsorted(cum, flat, side="right")
        start = flat - (cum[ep] - starts_per_ep[ep])
        obs = np.empty((horizon + 1, batch_size, self.obs_dim), np.float32)
        act = np.empty((horizon, batch_size, self.action_dim), np.float32)
        rew = np.empty((horizon, batch_size), np.float32)
        term = np.empty((horizon, batch_size), np.float32)
        for i, (e, s) in enumerate(zip(ep, start, strict=True)):
            obs[:, i] = self._obs[e][s : s + horizon + 1]
            act[:, i] = self._act[e][s : s + horizon]
            rew[:, i] = self._rew[e][s : s + horizon]
            term[:, i] = self._term[e][s : s + horizon]
        to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        return Batch(to(obs), to(act), to(rew), to(term))

    # --- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write all episodes to an ``.npz`` file (no pickling)."""
        lengths = np.array([len(a) for a in self._act], dtype=np.int64)
        empty = np.zeros((0,), np.float32)
        np.savez(
            path,
            lengths=lengths,
            obs=np.concatenate(self._obs) if self._obs else empty.reshape(0, self.obs_dim),
            action=np.concatenate(self._act) if self._act else empty.reshape(0, self.action_dim),
            reward=np.concatenate(self._rew) if self._rew else empty,
            terminated=np.concatenate(self._term) if self._term else empty,
            meta=np.array([self.capacity, self.obs_dim, self.action_dim, self.episodes_added], dtype=np.int64),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EpisodeBuffer:
        """Read a buffer written by ``save``.

        Raises:
            CheckpointError: the file is missing, truncated, not an ``.npz`` of ``save``'s layout, or its
                arrays disagree in size; the one-line message names the file.
        """
        path = Path(path)

        def bad(what: str) -> CheckpointError:
            return CheckpointError(f"checkpoint {path} {what}")

        try:
            # Each array is read once: indexing an NpzFile reads the member from the zip again every time.
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in _SAVED}
        except FileNotFoundError:
            raise bad("is missing; a resumable checkpoint needs its replay buffer") from None
        except (OSError, ValueError, KeyError, EOFError, AttributeError, TypeError, zipfile.BadZipFile) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise bad(f"cannot be read ({detail}): truncated or not a replay buffer") from None
        meta, lengths = arrays["meta"], arrays["lengths"]
        if meta.shape != (4,) or meta.dtype.kind != "i" or lengths.ndim != 1 or lengths.dtype.kind != "i":
            raise bad("has malformed meta or lengths arrays: not a replay buffer written by EpisodeBuffer.save")
        if (lengths < 0).any() or meta[0] < 1 or (meta[1:] < 0).any():
            raise bad(f"has negative lengths or sizes (meta {meta.tolist()}): corrupted")
        capacity, obs_dim, action_dim, added = (int(v) for v in meta)
        steps, episodes = int(lengths.sum()), len(lengths)
        expected = {
            "obs": (steps + episodes, obs_dim),
            "action": (steps, action_dim),
            "reward": (steps,),
            "terminated": (steps,),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise bad(f"is inconsistent: {name} has shape {arrays[name].shape}, its lengths say {shape}")
        buf = cls(capacity, obs_dim, action_dim)
        o = a = 0
        for L in lengths:
            L = int(L)
            buf._obs.append(arrays["obs"][o : o + L + 1].copy())
            buf._act.append(arrays["action"][a : a + L].copy())
            buf._rew.append(arrays["reward"][a : a + L].copy())
            buf._term.append(arrays["terminated"][a : a + L].copy())
            o += L + 1
            a += L
            buf._transitions += L
        buf.episodes_added = added
        return buf


_SAVED = ("lengths", "obs", "action", "reward", "terminated", "meta")
