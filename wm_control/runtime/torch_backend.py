"""The eager-torch backend: the planner's stage functions (``wm_control.planning.solve``) run directly,
with the native fused kernels on CPU.

On CUDA, eager torch launches each of a solve's several hundred small kernels from Python, and the
launches, not the GPU, set its latency (measured on an H200: 15.8 ms for the fr3-reach deployment
budget, slower than onnxruntime on two CPU cores; ``bench/plan_latency.py --gpu``). So by default the
full solve (``plan``) is captured once as a CUDA graph and replayed each tick: same kernels, same
inputs, same results as eager (a GPU test checks this), one launch.

It is the reference every other backend is compared with (the exported graphs are the same functions,
traced), and the fallback on a machine whose ONNX runtime is missing. Loaded from an export folder
(``model.json`` + ``weights.safetensors``). The only module of ``wm_control.runtime`` that needs torch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from wm_control.contract import ModelContract
from wm_control.errors import ConfigError, ExportError, ModelContractError
from wm_control.model.config import ModelConfig
from wm_control.model.world_model import WorldModel
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import policy_trajectories
from wm_control.planning.solve import PlanNoise, iterate, plan_init, plan_step, policy_action, solve
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput
from wm_control.runtime.manifest import WEIGHTS_FILE, Export, export_file

__all__ = ["TorchBackend", "load_torch_backend"]


def _t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


class _GraphedSolve:
    """``solve`` captured as one CUDA graph over static input tensors (shapes fixed by the planner)."""

    def __init__(self, model: WorldModel, planner: MppiConfig, inputs: tuple[torch.Tensor, ...]) -> None:
        self.model, self.planner = model, planner
        self.inputs = tuple(t.clone() for t in inputs)
        device = self.inputs[0].device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the capture: lazy inits, cuBLAS workspaces
            for _ in range(3):
                self._solve(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._solve(*self.inputs)

    def _solve(self, obs: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, *noise: torch.Tensor) -> tuple:
        r = solve(self.model, self.model.encode(obs), mean, self.planner, PlanNoise(*noise), scale)
        return r.action, r.state.mean, r.info.elite_value_mean, r.info.elite_value_std, r.info.std

    def __call__(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        for static, value in zip(self.inputs, inputs, strict=True):
            static.copy_(value)
        self.graph.replay()
        return self.outputs


class TorchBackend:
    """``Backend`` over a ``WorldModel`` in eager torch (CPU or CUDA).

    cuda_graph: on CUDA, replay ``plan``'s full solve as one captured CUDA graph (``None``: yes on
    CUDA, no on CPU). The partial solves (``plan_init`` / ``plan_step``) run eagerly.
    """

    name = "torch"

    def __init__(
        self,
        model: WorldModel,
        contract: ModelContract,
        planner: MppiConfig,
        device: str = "cpu",
        cuda_graph: bool | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.contract = contract
        self.planner = planner
        self.device = torch.device(device)
        on_cuda = self.device.type == "cuda"
        if cuda_graph and not on_cuda:
            raise ConfigError(f"cuda_graph=True needs a CUDA device; device={device!r}")
        self.cuda_graph = on_cuda if cuda_graph is None else cuda_graph
        self._graphed: _GraphedSolve | None = None
        cfg = model.cfg
        self.obs_dim, self.action_dim, self.latent_dim, self.num_q = (
            cfg.obs_dim,
            cfg.action_dim,
            cfg.latent_dim,
            cfg.num_q,
        )

    def _in(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return _t(x, dtype).to(self.device)

    @staticmethod
    def _out(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).numpy()

    def _noise(self, noise: PlanNoiseArrays) -> PlanNoise:
        i = self._in
        return PlanNoise(
            i(noise.pi_eps), i(noise.samples), i(noise.value_eps), i(noise.q_heads, torch.int64), i(noise.gumbel),
            i(noise.explore),
        )  # fmt: skip

    @torch.no_grad()
    def policy(self, obs: np.ndarray) -> np.ndarray:  # noqa: D102
        return self._out(policy_action(self.model, self._in(obs).reshape(1, -1), self.action_dim))[0]

    @torch.no_grad()
    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:  # noqa: D102
        scale = torch.tensor(float(explore_scale), device=self.device)
        if self.cuda_graph:
            inputs = (self._in(obs), self._in(mean), scale, *self._noise(noise))
            if self._graphed is None:
                self._graphed = _GraphedSolve(self.model, self.planner, inputs)
            action, next_mean, value_mean, value_std, std = self._graphed(inputs)
        else:
            z = self.model.encode(self._in(obs))
            r = solve(self.model, z, self._in(mean), self.planner, self._noise(noise), scale)
            action, next_mean, std = r.action, r.state.mean, r.info.std
            value_mean, value_std = r.info.elite_value_mean, r.info.elite_value_std
        out = self._out
        return PlanOutput(out(action), out(next_mean), float(value_mean), float(value_std), out(std))

    @torch.no_grad()
    def elite_margins(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays) -> np.ndarray:
        """Per iteration of ``plan(obs, mean, noise, .)``, the elite margin relative to ``1 + |value|``
        ``(I,)``: how far each refit is from a tie (see ``IterationResult.margin``). Another runtime
        whose values differ from these by more than a margin may pick other elites, and then its
        action and warm start differ by more than rounding while both are correct solves.
        """
        cfg, model, draws = self.planner, self.model, self._noise(noise)
        z = model.encode(self._in(obs))
        prior = policy_trajectories(model, z, cfg, draws.pi_eps)
        margins = [
            float(r.margin) / (1.0 + float(r.elite_value[-1].abs()))
            for r in iterate(model, z, prior, self._in(mean), cfg, draws)
        ]
        return np.asarray(margins)

    @torch.no_grad()
    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: D102
        z, prior = plan_init(self.model, self._in(obs), self._in(pi_eps), self.planner)
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
        r = plan_step(
            self.model, i(z), i(prior), i(mean), i(std), i(noise.samples), i(noise.value_eps),
            i(noise.q_heads, torch.int64), i(noise.gumbel), i(noise.explore),
            torch.tensor(float(explore_scale), device=self.device), self.planner,
        )  # fmt: skip
        out = self._out
        return StepOutput(out(r.mean), out(r.std), out(r.action), float(r.elite_value_mean), float(r.elite_value_std))


def model_config_from_contract(contract: ModelContract) -> ModelConfig:
    """The ``ModelConfig`` recorded in the contract's ``model`` field."""
    fields = dataclasses.fields(ModelConfig)
    names = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    missing = sorted(required - set(contract.model))  # fields added later keep their defaults
    if missing:
        raise ModelContractError(f"model contract field 'model' lacks {missing}")
    return ModelConfig(**{k: contract.model[k] for k in names & set(contract.model)})


def load_torch_backend(export: Export, device: str = "cpu") -> TorchBackend:
    """A ``TorchBackend`` from a verified export's ``weights.safetensors`` (``open_export``), planning
    at the contract's budget; the weights hash must match the contract's ``weights_sha256``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from wm_control.model.weights import weights_sha256

    contract = export.contract
    path = export_file(export, WEIGHTS_FILE)
    model = WorldModel(model_config_from_contract(contract))
    try:
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ExportError(f"{path} does not hold this model's weights ({type(exc).__name__}: {exc})") from None
    digest = weights_sha256(model)
    if digest != contract.weights_sha256:
        raise ModelContractError(
            f"model contract field 'weights_sha256' is {contract.weights_sha256[:16]}...; "
            f"{path.name} hashes to {digest[:16]}... (weights and metadata come from different exports)"
        )
    return TorchBackend(model, contract, MppiConfig(**contract.planner), device)
