"""The eager-torch backend: the exported graph modules run directly (native fused kernels on CPU).

It is the reference every other backend is compared with, and the fallback on a machine whose ONNX
runtime is missing. Loaded from an export folder (``model.json`` + ``weights.safetensors``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from wm_control.contract import ModelContract
from wm_control.errors import ModelContractError
from wm_control.model.config import ModelConfig
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import mppi_iteration, policy_trajectories
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput
from wm_control.runtime.graphs import PlannerGraph, PlannerInitGraph, PlannerStepGraph, PolicyGraph

__all__ = ["TorchBackend", "load_torch_backend"]

WEIGHTS_FILE = "weights.safetensors"


def _t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


class TorchBackend:
    """``Backend`` over a ``WorldModel`` in eager torch (CPU or CUDA)."""

    name = "torch"

    def __init__(self, model: WorldModel, contract: ModelContract, planner: MppiConfig, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.contract = contract
        self.planner = planner
        self.device = torch.device(device)
        cfg = model.cfg
        self.obs_dim, self.action_dim, self.latent_dim, self.num_q = (
            cfg.obs_dim,
            cfg.action_dim,
            cfg.latent_dim,
            cfg.num_q,
        )
        self._policy = PolicyGraph(self.model)
        self._plan = PlannerGraph(self.model, planner)
        self._init = PlannerInitGraph(self.model, planner)
        self._step = PlannerStepGraph(self.model, planner)

    def _in(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return _t(x, dtype).to(self.device)

    @staticmethod
    def _out(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).numpy()

    @torch.no_grad()
    def policy(self, obs: np.ndarray) -> np.ndarray:  # noqa: D102
        return self._out(self._policy(self._in(obs).reshape(1, -1)))[0]

    @torch.no_grad()
    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:  # noqa: D102
        i = self._in
        action, nxt, vmean, vstd, std = self._plan(
            i(obs), i(mean), i(noise.pi_eps), i(noise.samples), i(noise.value_eps), i(noise.q_heads, torch.int64),
            i(noise.gumbel), i(noise.explore), torch.tensor(float(explore_scale), device=self.device),
        )  # fmt: skip
        return PlanOutput(self._out(action), self._out(nxt), float(vmean), float(vstd), self._out(std))

    @torch.no_grad()
    def elite_margins(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays) -> np.ndarray:
        """Per iteration of ``plan(obs, mean, noise, .)``, the elite margin relative to ``1 + |value|``
        ``(I,)``: how far each refit is from a tie (see ``IterationResult.margin``). Another runtime
        whose values differ from these by more than a margin may pick other elites, and then its
        action and warm start differ by more than rounding while both are correct solves.
        """
        i, cfg, model = self._in, self.planner, self.model
        z = model.encode(i(obs))
        prior = policy_trajectories(model, z, cfg, i(noise.pi_eps))
        mu = i(mean)
        std = torch.full_like(mu, cfg.max_std)
        out = []
        for k in range(cfg.iterations):
            r = mppi_iteration(
                model, z, prior, mu, std, i(noise.samples[k]), i(noise.value_eps[k]), i(noise.q_heads[k], torch.int64),
                cfg,
            )  # fmt: skip
            out.append(float(r.margin) / (1.0 + float(r.elite_value[-1].abs())))
            mu, std = r.mean, r.std
        return np.asarray(out)

    @torch.no_grad()
    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: D102
        z, prior = self._init(self._in(obs), self._in(pi_eps))
        return self._out(z), self._out(prior)

    @torch.no_grad()
    def plan_step(  # noqa: D102
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        i = self._in
        m, s, action, vmean, vstd = self._step(
            i(z), i(prior), i(mean), i(std), i(noise.samples), i(noise.value_eps), i(noise.q_heads, torch.int64),
            i(noise.gumbel), i(noise.explore), torch.tensor(float(explore_scale), device=self.device),
        )  # fmt: skip
        return StepOutput(self._out(m), self._out(s), self._out(action), float(vmean), float(vstd))


def model_config_from_contract(contract: ModelContract) -> ModelConfig:
    """The ``ModelConfig`` recorded in the contract's ``model`` field."""
    fields = dataclasses.fields(ModelConfig)
    names = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    missing = sorted(required - set(contract.model))  # fields added later keep their defaults
    if missing:
        raise ModelContractError(f"model contract field 'model' lacks {missing}")
    return ModelConfig(**{k: contract.model[k] for k in names & set(contract.model)})


def load_torch_backend(
    folder: str | Path, contract: ModelContract, planner: MppiConfig, device: str = "cpu"
) -> TorchBackend:
    """A ``TorchBackend`` from an export folder's ``weights.safetensors``; the weights hash must match
    the contract's ``weights_sha256``.
    """
    from safetensors.torch import load_file

    from wm_control.runtime.weights import weights_sha256

    path = Path(folder) / WEIGHTS_FILE
    if not path.exists():
        raise ModelContractError(f"{path} not found; export the model with wm-control-export first")
    model = WorldModel(model_config_from_contract(contract))
    model.load_state_dict(load_file(str(path)))
    digest = weights_sha256(model)
    if digest != contract.weights_sha256:
        raise ModelContractError(
            f"model contract field 'weights_sha256' is {contract.weights_sha256[:16]}...; "
            f"{path.name} hashes to {digest[:16]}... (weights and metadata come from different exports)"
        )
    return TorchBackend(model, contract, planner, device)
