"""What every backend over the exported graphs shares: the graphs' named inputs and outputs.

ONNX Runtime and TensorRT both run ``policy``, ``planner``, ``planner_init`` and ``planner_step``
(the planner's stage functions traced by ``export/graphs.py``) by input name. ``GRAPH_IO`` is the
table of those names, which the exporter writes and the runtimes bind. ``GraphBackend`` turns the
``Backend`` calls into feeds (float32, ``q_heads`` int64, contiguous) and the outputs back into
``PlanOutput`` / ``StepOutput``; a runtime only supplies ``_run(graph, feeds)``, returning the
outputs in the order of ``GRAPH_IO``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from wm_control.contract import ModelContract
from wm_control.planning.config import MppiConfig
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput

__all__ = ["GRAPHS", "GRAPH_IO", "GraphBackend"]

# Input and output names of every exported graph, in call order (the runtimes bind by name).
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "policy": (("obs",), ("action",)),
    "planner": (
        ("obs", "mean", "pi_eps", "samples", "value_eps", "q_heads", "gumbel", "explore", "explore_scale"),
        ("action", "next_mean", "elite_value_mean", "elite_value_std", "std"),
    ),
    "planner_init": (("obs", "pi_eps"), ("z", "prior")),
    "planner_step": (
        ("z", "prior", "mean", "std", "samples", "value_eps", "q_heads", "gumbel", "explore", "explore_scale"),
        ("next_mean_unshifted", "next_std", "action", "elite_value_mean", "elite_value_std"),
    ),
}
GRAPHS = tuple(GRAPH_IO)


def _f(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _i(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


class GraphBackend(ABC):
    """``Backend`` over the four exported graphs; subclasses run one graph in ``_run``."""

    name: str

    def __init__(self, contract: ModelContract) -> None:
        self.contract = contract
        self.planner = MppiConfig(**dict(contract.planner))
        model = contract.model
        self.obs_dim, self.action_dim = int(model["obs_dim"]), int(model["action_dim"])
        self.latent_dim, self.num_q = int(model["latent_dim"]), int(model["num_q"])

    @abstractmethod
    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run ``graph`` on ``feeds`` (by input name); outputs in ``io_names()`` order, on the host."""

    def policy(self, obs: np.ndarray) -> np.ndarray:  # noqa: D102
        return self._run("policy", {"obs": _f(obs).reshape(1, -1)})[0][0]

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:  # noqa: D102
        action, nxt, vmean, vstd, std = self._run(
            "planner",
            {
                "obs": _f(obs), "mean": _f(mean), "pi_eps": _f(noise.pi_eps), "samples": _f(noise.samples),
                "value_eps": _f(noise.value_eps), "q_heads": _i(noise.q_heads), "gumbel": _f(noise.gumbel),
                "explore": _f(noise.explore), "explore_scale": np.asarray(explore_scale, dtype=np.float32),
            },
        )  # fmt: skip
        return PlanOutput(action, nxt, float(vmean), float(vstd), std)

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: D102
        z, prior = self._run("planner_init", {"obs": _f(obs), "pi_eps": _f(pi_eps)})
        return z, prior

    def plan_step(  # noqa: D102
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        m, s, action, vmean, vstd = self._run(
            "planner_step",
            {
                "z": _f(z), "prior": _f(prior), "mean": _f(mean), "std": _f(std), "samples": _f(noise.samples),
                "value_eps": _f(noise.value_eps), "q_heads": _i(noise.q_heads), "gumbel": _f(noise.gumbel),
                "explore": _f(noise.explore), "explore_scale": np.asarray(explore_scale, dtype=np.float32),
            },
        )  # fmt: skip
        return StepOutput(m, s, action, float(vmean), float(vstd))
