"""The TD-MPC2 world model: encoder, latent dynamics, reward, policy prior and Q-ensemble.

Shapes use ``B...`` for any leading batch dimensions; ``dz`` latent size, ``A`` action size,
``K`` bins. Rewards and values are in the environment's reward units.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from wm_control.errors import ConfigError
from wm_control.model.config import ModelConfig
from wm_control.model.fused import linear_two_hot_inv, two_hot_inv_fast
from wm_control.model.layers import MLP, QEnsemble
from wm_control.model.ops import SquashedGaussian, log_std_from_raw, squashed_gaussian

__all__ = ["WorldModel"]


class WorldModel(nn.Module):
    """TD-MPC2 implicit world model (single task, state observations).

    Implements the ``LatentModel`` protocol (``encode``, ``next``, ``reward``, ``value``, ``policy``,
    ``episodic``, ``termination``) plus the logit-level heads used for training and a Polyak-averaged target Q-ensemble.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        za = cfg.latent_dim + cfg.action_dim
        self.encoder = MLP(cfg.obs_dim, [cfg.enc_dim] * (cfg.num_enc_layers - 1), cfg.latent_dim, True, cfg.simnorm_dim)
        self.dynamics = MLP(za, [cfg.mlp_dim] * 2, cfg.latent_dim, True, cfg.simnorm_dim)
        self.reward_head = MLP(za, [cfg.mlp_dim] * 2, cfg.num_bins)
        self.pi_head = MLP(cfg.latent_dim, [cfg.mlp_dim] * 2, 2 * cfg.action_dim)
        self.qs = QEnsemble(za, cfg.mlp_dim, cfg.num_bins, cfg.num_q, cfg.dropout)
        self.termination_head = MLP(cfg.latent_dim, [cfg.mlp_dim] * 2, 1) if cfg.episodic else None
        self.reward_head.zero_output_()
        self.target_qs = copy.deepcopy(self.qs)
        self.target_qs.requires_grad_(False)

    # --- LatentModel protocol ----------------------------------------------------------------------
    def encode(self, obs: Tensor) -> Tensor:
        """Observation ``(B..., obs_dim)`` -> latent ``(B..., dz)`` (SimNorm groups sum to 1)."""
        return self.encoder(obs)

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        """Latent dynamics: ``(B..., dz), (B..., A) -> (B..., dz)``."""
        return self.dynamics(torch.cat([z, a], dim=-1))

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """Predicted reward ``(B...)`` for taking ``a`` in ``z``."""
        x = torch.cat([z, a], dim=-1)
        lead = x.shape[:-1]
        out = self.reward_head.layers[-1]
        assert isinstance(out, nn.Linear)
        h = self.reward_head.hidden(x.reshape(-1, x.shape[-1]))
        return linear_two_hot_inv(h, out.weight.t(), out.bias, self.cfg.vmin, self.cfg.vmax).reshape(lead)

    def value(self, z: Tensor, a: Tensor, heads: Tensor | None = None, reduce: str = "avg") -> Tensor:
        """Q-value ``(B...)``: the mean (``reduce="avg"``) or minimum (``"min"``) over the set of heads
        ``heads`` (TD-MPC2 picks two at random; default all).
        """
        x = torch.cat([z, a], dim=-1)
        h, w, b = self.qs.features(x, heads)
        q = linear_two_hot_inv(h, w, b, self.cfg.vmin, self.cfg.vmax).reshape(h.shape[0], *x.shape[:-1])
        return q.mean(0) if reduce == "avg" else q.min(0).values

    @property
    def episodic(self) -> bool:
        """Whether the model predicts terminations (``termination``)."""
        return self.termination_head is not None

    def termination(self, z: Tensor) -> Tensor:
        """Probability ``(B...)`` that the step which led to latent ``z`` ended the episode."""
        return torch.sigmoid(self.termination_logits(z))

    def policy(self, z: Tensor, eps: Tensor) -> Tensor:
        """Policy-prior action ``tanh(mu + std * eps)`` ``(B..., A)`` for standard-normal ``eps``
        (zeros give the mean action).
        """
        mu, raw = self.pi_head(z).chunk(2, dim=-1)
        log_std = log_std_from_raw(raw, self.cfg.log_std_min, self.cfg.log_std_max)
        return torch.tanh(torch.addcmul(mu, eps, log_std.exp()))

    def pi_distribution(self, z: Tensor, eps: Tensor) -> SquashedGaussian:
        """Policy prior with the sample's log-probability and log-std (for the policy update)."""
        mu, raw = self.pi_head(z).chunk(2, dim=-1)
        log_std = log_std_from_raw(raw, self.cfg.log_std_min, self.cfg.log_std_max)
        return squashed_gaussian(mu, log_std, eps)

    # --- training-level heads -----------------------------------------------------------------------
    def reward_logits(self, z: Tensor, a: Tensor) -> Tensor:
        """Reward logits ``(B..., K)``."""
        return self.reward_head(torch.cat([z, a], dim=-1))

    def termination_logits(self, z: Tensor) -> Tensor:
        """Termination logits ``(B...)``; raises ``ConfigError`` for a model built without the head."""
        if self.termination_head is None:
            raise ConfigError("this model has no termination head (model.episodic is false)")
        return self.termination_head(z).squeeze(-1)

    def q_logits(
        self,
        z: Tensor,
        a: Tensor,
        heads: Tensor | None = None,
        target: bool = False,
        detach: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Q logits ``(h, B..., K)`` of the online (or target) ensemble; ``detach`` blocks gradients
        into the Q parameters (the policy update); ``generator`` draws the dropout mask.
        """
        net = self.target_qs if target else self.qs
        return net(torch.cat([z, a], dim=-1), heads, detach=detach, generator=generator)

    def target_value(self, z: Tensor, a: Tensor, heads: Tensor) -> Tensor:
        """Minimum over ``heads`` of the target ensemble's Q ``(B...)`` (TD targets)."""
        q = two_hot_inv_fast(self.q_logits(z, a, heads, target=True), self.cfg.vmin, self.cfg.vmax)
        return q.min(0).values

    @torch.no_grad()
    def soft_update_target(self, tau: float) -> None:
        """Polyak averaging ``target <- (1 - tau) target + tau online``."""
        torch._foreach_lerp_(list(self.target_qs.parameters()), [p.detach() for p in self.qs.parameters()], tau)

    def train(self, mode: bool = True) -> WorldModel:
        """Set train/eval mode; the target ensemble always stays in eval mode (no dropout)."""
        super().train(mode)
        self.target_qs.train(False)
        return self

    def num_parameters(self) -> int:
        """Trainable parameters (the target ensemble excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
