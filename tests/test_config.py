"""Dataclass configs from plain data and back."""

from __future__ import annotations

import pytest

from sim.env import FR3EnvConfig
from wm_control.chunking import ChunkConfig
from wm_control.config import config_hash, from_dict, to_dict
from wm_control.errors import ConfigError


def test_round_trip_with_nested_configs_and_lists() -> None:
    cfg = from_dict(
        FR3EnvConfig,
        {"dt": 0.01, "chunk": {"velocity_fraction": [0.5] * 7}, "randomization": {"mass_scale": [0.9, 1.1]}},
    )
    assert cfg.chunk.velocity_fraction == (0.5,) * 7
    assert cfg.randomization.mass_scale == (0.9, 1.1)
    assert from_dict(FR3EnvConfig, to_dict(cfg)) == cfg


def test_unknown_keys_are_listed() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['speed'\] in env.chunk; valid keys: \["):
        from_dict(FR3EnvConfig, {"chunk": {"speed": 1}}, "env")


def test_hash_is_stable_and_sensitive() -> None:
    assert config_hash(ChunkConfig()) == config_hash(ChunkConfig())
    assert config_hash(ChunkConfig()) != config_hash(ChunkConfig(position_margin=0.06))
    assert len(config_hash(ChunkConfig())) == 16
