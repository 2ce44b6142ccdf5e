"""The TD-MPC2 agent: a world model, its optimisers, and the two things it does — act (plan in
latent space) and update (one gradient step on a replayed batch).

Faithful to Hansen, Su, Wang, "TD-MPC2", ICLR 2024 (reference implementation nicklashansen/tdmpc2):
joint-embedding latent rollout with a consistency loss, discrete-regression reward and value heads
weighted by ``rho^t``, TD targets from the target ensemble (min of two random heads) and the policy
prior, and a maximum-entropy policy update against detached Q-values scaled by a running
5-95 percentile range. Differences from the reference, all deliberate: no hard-coded CUDA; every
random draw, dropout masks included, comes from the agent's own ``torch.Generator`` (so a run is
reproducible and resumable);
TD targets are not bootstrapped past a true termination (the reference ignores terminations outside
its episodic mode); the entropy bonus is the policy's squashed-Gaussian entropy times the action
dimension.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from wm_control.errors import ConfigError, InputError, check_range
from wm_control.model.config import ModelConfig
from wm_control.model.ops import soft_ce, two_hot_inv
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.solve import PlanState, draw_noise, plan
from wm_control.training.buffer import Batch
from wm_control.training.scale import RunningScale

__all__ = ["UPDATE_METRICS", "AgentConfig", "TDMPC2", "discount_for_episode_length", "update_flops"]

# Keys of the dict ``TDMPC2.update`` returns.
UPDATE_METRICS = (
    "consistency_loss",
    "reward_loss",
    "value_loss",
    "termination_loss",  # episodic models only (the training log shows NaN otherwise)
    "total_loss",
    "grad_norm",
    "pi_loss",
    "pi_grad_norm",
    "pi_entropy",
    "pi_scale",
)


@dataclass(frozen=True)
class AgentConfig:
    """TD-MPC2 learning hyperparameters (paper / reference defaults).

    batch_size: replayed sub-trajectories per update. rho: temporal weight of the losses.
    lr: Adam learning rate; enc_lr_scale: multiplier for the encoder. grad_clip_norm: gradient-norm
    clip. tau: Polyak rate of the target Q-ensemble (and of the Q-scale). consistency_coef,
    reward_coef, value_coef: loss weights. termination_coef: weight of the termination loss
    (episodic models only). entropy_coef: policy entropy bonus.
    discount_denom / discount_min / discount_max: the discount from the episode length,
    clip((L / denom - 1) / (L / denom), min, max); discount: an explicit value overrides it.
    mpc: act by planning (else with the policy prior). planner: MPPI budget (its ``horizon`` is the
    training horizon; its ``discount`` field is ignored in favour of the one above).
    """

    batch_size: int = 256
    rho: float = 0.5
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    termination_coef: float = 1.0
    entropy_coef: float = 1e-4
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    discount: float | None = None
    mpc: bool = True
    planner: MppiConfig = field(default_factory=MppiConfig)

    def __post_init__(self) -> None:
        check_range("agent.batch_size", self.batch_size, 1, 1 << 20)
        check_range("agent.rho", self.rho, 0.0, 1.0)
        check_range("agent.lr", self.lr, 0.0, 1.0, low_inclusive=False)
        check_range("agent.enc_lr_scale", self.enc_lr_scale, 0.0, 100.0)
        check_range("agent.grad_clip_norm", self.grad_clip_norm, 0.0, 1e6, low_inclusive=False)
        check_range("agent.tau", self.tau, 0.0, 1.0)
        for name in ("consistency_coef", "reward_coef", "value_coef", "termination_coef", "entropy_coef"):
            check_range(f"agent.{name}", getattr(self, name), 0.0, 1e6)
        check_range("agent.discount_denom", self.discount_denom, 0.0, 1e6, low_inclusive=False)
        check_range("agent.discount_min", self.discount_min, 0.0, 1.0)
        check_range("agent.discount_max", self.discount_max, self.discount_min, 1.0)
        if self.discount is not None:
            check_range("agent.discount", self.discount, 0.0, 1.0)


def discount_for_episode_length(cfg: AgentConfig, episode_length: int) -> float:
    """TD-MPC2's heuristic discount: longer episodes, longer effective horizon."""
    if cfg.discount is not None:
        return cfg.discount
    frac = episode_length / cfg.discount_denom
    return float(min(max((frac - 1) / frac, cfg.discount_min), cfg.discount_max))


def _as_tensor(x: np.ndarray | Tensor, device: torch.device) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float32, device=device)
    return t


class TDMPC2:
    """TD-MPC2 agent (single task, state observations).

    Args:
        model_cfg: world-model architecture.
        cfg: learning hyperparameters.
        episode_length: control steps per episode (sets the discount).
        seed: seeds the parameter initialisation and the agent's random generator.
        device: torch device (``"cpu"``, ``"cuda"``, ...).
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        cfg: AgentConfig,
        episode_length: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        check_range("episode_length", episode_length, 1, 1 << 30)
        if cfg.batch_size < 1:
            raise ConfigError("agent.batch_size must be >= 1")
        self.device = torch.device(device)
        self.model_cfg = model_cfg
        self.cfg = cfg
        self.episode_length = episode_length
        self.discount = discount_for_episode_length(cfg, episode_length)
        self.planner = dataclasses.replace(cfg.planner, discount=self.discount)
        self.horizon = self.planner.horizon
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = WorldModel(model_cfg).to(self.device)
        self.model.eval()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + 1_000_003)
        m = self.model
        groups: list[dict[str, Any]] = [
            {"params": list(m.encoder.parameters()), "lr": cfg.lr * cfg.enc_lr_scale},
            {
                "params": list(m.dynamics.parameters())
                + list(m.reward_head.parameters())
                + list(m.qs.parameters())
                + (list(m.termination_head.parameters()) if m.termination_head is not None else [])
            },
        ]
        self.optim = torch.optim.Adam(groups, lr=cfg.lr)
        self.pi_optim = torch.optim.Adam(m.pi_head.parameters(), lr=cfg.lr, eps=1e-5)
        self.scale = RunningScale(cfg.tau, self.device)
        self._model_params = [p for p in m.parameters() if p.requires_grad and not _is_pi(m, p)]
        self._pi_params = list(m.pi_head.parameters())
        self._plan_state = PlanState.zeros(self.planner, model_cfg.action_dim, self.device)
        self.updates = 0

    # --- acting ------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray | Tensor, t0: bool = False, eval_mode: bool = False) -> np.ndarray:
        """Action ``(A,)`` in [-1, 1] for observation ``(obs_dim,)``.

        ``t0`` marks the first step of an episode (resets the planner's warm start); ``eval_mode``
        removes exploration noise (and uses the policy mean when not planning).
        """
        x = _as_tensor(obs, self.device)
        if x.shape != (self.model_cfg.obs_dim,):
            raise InputError(f"act: obs has shape {tuple(x.shape)}; expected ({self.model_cfg.obs_dim},)")
        if not torch.isfinite(x).all():
            raise InputError("act: obs contains NaN or inf")
        self.model.eval()
        z = self.model.encode(x)
        A = self.model_cfg.action_dim
        if not self.cfg.mpc:
            eps = (
                torch.zeros(A, device=self.device)
                if eval_mode
                else torch.randn(A, generator=self.generator, device=self.device)
            )
            return self.model.policy(z, eps).cpu().numpy()
        if t0:
            self._plan_state = PlanState.zeros(self.planner, A, self.device)
        noise = draw_noise(self.planner, A, self.model_cfg.num_q, self.generator, self.device)
        result = plan(self.model, z, self._plan_state, self.planner, noise, eval_mode=eval_mode)
        self._plan_state = result.state
        return result.action.cpu().numpy()

    # --- learning ----------------------------------------------------------------------------------
    def _heads(self) -> Tensor:
        return torch.randperm(self.model_cfg.num_q, generator=self.generator, device=self.device)[:2]

    def update(self, batch: Batch) -> dict[str, float]:
        """One TD-MPC2 gradient step on ``batch`` (time-major, horizon = planner horizon)."""
        H, B = batch.action.shape[:2]
        if self.horizon != H:
            raise InputError(f"update: batch horizon {H} differs from the planner horizon {self.horizon}")
        cfg, m, vmin, vmax = self.cfg, self.model, self.model_cfg.vmin, self.model_cfg.vmax
        obs, action, reward = batch.obs, batch.action, batch.reward
        rho = cfg.rho ** torch.arange(H + 1, device=self.device, dtype=torch.float32)

        # TD targets from the next latents, the policy prior and the target ensemble (no gradient).
        with torch.no_grad():
            next_z = m.encode(obs[1:])
            eps = torch.randn(
                next_z.shape[:-1] + (self.model_cfg.action_dim,), generator=self.generator, device=self.device
            )
            next_a = m.policy(next_z, eps)
            not_done = 1.0 - batch.terminated
            td_target = reward + self.discount * not_done * m.target_value(next_z, next_a, self._heads())

        # Latent rollout with the consistency loss, then reward and value losses along it.
        m.train()
        z = m.encode(obs[0])
        zs = [z]
        consistency = obs.new_zeros(())
        for t in range(H):
            z = m.next(z, action[t])
            consistency = consistency + rho[t] * F.mse_loss(z, next_z[t])
            zs.append(z)
        zs_t = torch.stack(zs)  # (H + 1, B, dz)
        q_logits = m.q_logits(zs_t[:-1], action, generator=self.generator)  # (Q, H, B, K)
        r_logits = m.reward_logits(zs_t[:-1], action)  # (H, B, K)
        reward_loss = (soft_ce(r_logits, reward, vmin, vmax).mean(dim=1) * rho[:H]).sum()
        value_loss = (soft_ce(q_logits, td_target.unsqueeze(0), vmin, vmax).mean(dim=2).sum(0) * rho[:H]).sum()
        consistency = consistency / H
        reward_loss = reward_loss / H
        value_loss = value_loss / (H * self.model_cfg.num_q)
        total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        termination_loss = None
        if m.termination_head is not None:
            # Whether each step of the rollout ended the episode, predicted from the latent it led to.
            term_logits = m.termination_logits(zs_t[1:])  # (H, B)
            termination_loss = F.binary_cross_entropy_with_logits(term_logits, batch.terminated)
            total = total + cfg.termination_coef * termination_loss
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self._model_params, cfg.grad_clip_norm, foreach=True)
        self.optim.step()

        # Policy prior: maximise scaled Q (detached critic parameters) plus an entropy bonus.
        zs_d = zs_t.detach()
        eps = torch.randn(zs_d.shape[:-1] + (self.model_cfg.action_dim,), generator=self.generator, device=self.device)
        pi = m.pi_distribution(zs_d, eps)
        q_logits_pi = m.q_logits(zs_d, pi.action, self._heads(), detach=True, generator=self.generator)
        q = two_hot_inv(q_logits_pi, vmin, vmax).mean(0)  # (H+1, B)
        self.scale.update(q[0])
        q = self.scale(q)
        entropy = -pi.log_prob.squeeze(-1) * self.model_cfg.action_dim
        pi_loss = (-(cfg.entropy_coef * entropy + q).mean(dim=1) * rho).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        pi_grad_norm = torch.nn.utils.clip_grad_norm_(self._pi_params, cfg.grad_clip_norm, foreach=True)
        self.pi_optim.step()

        m.soft_update_target(cfg.tau)
        m.eval()
        self.updates += 1
        metrics = {
            "consistency_loss": consistency,
            "reward_loss": reward_loss,
            "value_loss": value_loss,
            "total_loss": total,
            "grad_norm": grad_norm,
            "pi_loss": pi_loss,
            "pi_grad_norm": pi_grad_norm,
            "pi_entropy": -pi.log_prob.mean(),
            "pi_scale": self.scale.value,
        }
        if termination_loss is not None:
            metrics["termination_loss"] = termination_loss
        return {k: v.detach().item() for k, v in metrics.items()}

    # --- state ---------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        """Every tensor of the agent's state (weights, optimiser moments), flat, for safetensors."""
        out = {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        for name, opt in (("optim", self.optim), ("pi_optim", self.pi_optim)):
            for pid, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    out[f"{name}.{pid}.{k}"] = v.detach().clone() if torch.is_tensor(v) else torch.tensor(v)
        out["plan_state.mean"] = self._plan_state.mean.detach().clone()
        out["generator"] = self.generator.get_state().clone()
        return out

    def state_meta(self) -> dict[str, Any]:
        """Non-tensor state (JSON): optimiser hyperparameters, scale, counters."""
        return {
            "optim_param_groups": self.optim.state_dict()["param_groups"],
            "pi_optim_param_groups": self.pi_optim.state_dict()["param_groups"],
            "scale": self.scale.state_dict(),
            "updates": self.updates,
        }

    def _load_model(self, tensors: dict[str, Tensor]) -> None:
        """The ``model.*`` weights of ``tensors`` into the model (``ConfigError`` naming what does not fit)."""
        model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        own = self.model.state_dict()
        wrong = [k for k, v in model_sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        if wrong:
            k = wrong[0]
            raise ConfigError(
                f"checkpoint weights do not match the model: {k} has shape {tuple(model_sd[k].shape)}, the model's "
                f"{tuple(own[k].shape)} ({len(wrong)} weights differ; a different model preset or size?)"
            )
        missing, unexpected = self.model.load_state_dict(model_sd, strict=False)
        if missing or unexpected:
            raise ConfigError(
                f"checkpoint weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def load_weights(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Start from another agent's model (fine-tuning): its weights, warm start and Q scale.

        The optimisers keep their fresh state and this agent's hyperparameters; the update counter
        starts at 0. ``tensors``/``meta`` as ``state_tensors``/``state_meta`` wrote them (the
        optimiser entries, if any, are ignored).
        """
        self._load_model(tensors)
        if "plan_state.mean" in tensors:
            self._plan_state = PlanState(tensors["plan_state.mean"].to(self.device))
        self.scale.load_state_dict(meta["scale"])

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore ``state_tensors`` / ``state_meta`` output (strict: every weight must match)."""
        self._load_model(tensors)
        for name, opt, groups in (
            ("optim", self.optim, meta["optim_param_groups"]),
            ("pi_optim", self.pi_optim, meta["pi_optim_param_groups"]),
        ):
            state: dict[int, dict[str, Tensor]] = {}
            prefix = f"{name}."
            for key, v in tensors.items():
                if key.startswith(prefix):
                    pid, k = key[len(prefix) :].split(".", 1)
                    state.setdefault(int(pid), {})[k] = v.to(self.device)
            opt.load_state_dict({"state": state, "param_groups": groups})
        self._plan_state = PlanState(tensors["plan_state.mean"].to(self.device))
        self.generator.set_state(tensors["generator"])
        self.scale.load_state_dict(meta["scale"])
        self.updates = int(meta["updates"])


def _is_pi(model: WorldModel, p: Tensor) -> bool:
    return any(p is q for q in model.pi_head.parameters())


def update_flops(model_cfg: ModelConfig, batch_size: int, horizon: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one ``TDMPC2.update``: forward and backward passes,
    counting a weight gradient for every trained layer and an input gradient wherever the input
    needs one (not for the encoder's observation input, nor for detached policy inputs).
    """
    c = model_cfg
    dz, A, h, e, K, O = c.latent_dim, c.action_dim, c.mlp_dim, c.enc_dim, c.num_bins, c.obs_dim
    enc = O * e + (c.num_enc_layers - 2) * e * e + e * dz
    za = dz + A
    dyn = za * h + h * h + h * dz
    rew = za * h + h * h + h * K
    pi = dz * h + h * h + h * 2 * A
    q1 = za * h + h * h + h * K
    B, H = batch_size, horizon
    td_target = H * B * (enc + pi + 2 * q1)
    model_fwd = B * enc + H * B * (dyn + rew + c.num_q * q1)
    model_bwd = B * (2 * enc - O * e) + 2 * H * B * (dyn + rew + c.num_q * q1)
    rows = (H + 1) * B
    policy = rows * (pi + 2 * q1) + rows * 2 * q1 + rows * (2 * pi - dz * h)
    return 2 * (td_target + model_fwd + model_bwd + policy)
