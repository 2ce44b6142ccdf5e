"""World-model configuration and the TD-MPC2 size presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wm_control.errors import ConfigError, check_range

__all__ = ["PRESETS", "ModelConfig", "model_config"]

# TD-MPC2 model sizes (Hansen et al. 2024, Table / reference code common/__init__.py), by approximate
# parameter count, plus "small": our CPU-control preset (0.34 M parameters on fr3-reach, train_speed.json) chosen
# by measurement so that planning fits a 50 Hz tick on a 2-core CPU (see README, plan latency).
PRESETS: dict[str, dict[str, int]] = {
    "small": {"enc_dim": 128, "mlp_dim": 192, "latent_dim": 64, "num_enc_layers": 2, "num_q": 2},
    "1M": {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    "5M": {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    "19M": {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    "48M": {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    "317M": {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the world model (state observations).

    obs_dim / action_dim: sizes of the environment's observation and action vectors.
    latent_dim: size of the SimNorm latent, a multiple of ``simnorm_dim``.
    enc_dim, num_enc_layers: encoder width and number of layers (>= 2: hidden layers + output layer).
    mlp_dim: width of the two hidden layers of dynamics, reward, policy and Q heads.
    num_q: Q-ensemble heads (>= 2); dropout: dropout after the first Q layer.
    num_bins, vmin, vmax: discrete regression grid (symlog space) for rewards and values.
    log_std_min, log_std_max: policy prior log-std range.
    episodic: add a termination head (TD-MPC2's episodic mode) for tasks whose episodes can end
        early; the planner then stops counting rewards and values after a predicted termination.
    """

    obs_dim: int
    action_dim: int
    latent_dim: int = 512
    enc_dim: int = 256
    num_enc_layers: int = 2
    mlp_dim: int = 512
    num_q: int = 5
    dropout: float = 0.01
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    episodic: bool = False
    preset: str = "custom"

    def __post_init__(self) -> None:
        check_range("model.obs_dim", self.obs_dim, 1, 1_000_000)
        check_range("model.action_dim", self.action_dim, 1, 1000)
        check_range("model.latent_dim", self.latent_dim, 1, 100_000)
        check_range("model.enc_dim", self.enc_dim, 1, 100_000)
        check_range("model.mlp_dim", self.mlp_dim, 1, 100_000)
        check_range("model.num_enc_layers", self.num_enc_layers, 2, 16)
        check_range("model.num_q", self.num_q, 2, 32)
        check_range("model.dropout", self.dropout, 0.0, 1.0, high_inclusive=False)
        check_range("model.simnorm_dim", self.simnorm_dim, 1, 1024)
        check_range("model.num_bins", self.num_bins, 2, 10_000)
        if not isinstance(self.episodic, bool):
            raise ConfigError(f"model.episodic={self.episodic!r} must be true or false")
        if self.latent_dim % self.simnorm_dim:
            raise ConfigError(
                f"model.latent_dim={self.latent_dim} must be a multiple of model.simnorm_dim={self.simnorm_dim}"
            )
        if not self.vmin < self.vmax:
            raise ConfigError(f"model.vmin={self.vmin} must be below model.vmax={self.vmax}")
        if not self.log_std_min < self.log_std_max:
            raise ConfigError(f"model.log_std_min={self.log_std_min} must be below log_std_max={self.log_std_max}")


def model_config(preset: str, obs_dim: int, action_dim: int, **overrides: Any) -> ModelConfig:
    """A ``ModelConfig`` from a size preset (``PRESETS``), with optional field overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; valid: {list(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown model field(s) {unknown}; valid: {sorted(fields)}")
    values = {**PRESETS[preset], **overrides}
    return ModelConfig(obs_dim=obs_dim, action_dim=action_dim, preset=preset, **values)
