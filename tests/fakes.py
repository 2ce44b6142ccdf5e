"""Test doubles shared by the control-loop and runtime tests: a fake clock, a numpy fake backend, and
the fr3-reach contracts they and the real exported models carry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.config import to_dict
from wm_control.contract import CONTRACT_VERSION, ControlContract, ModelContract
from wm_control.observation import REACH_LAYOUT
from wm_control.planning.config import MppiConfig, shift
from wm_control.robot import FR3
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput

DT = 0.02
# fr3-reach's goal: a point in the base frame, inside the box targets are trained on.
REACH_GOAL = {
    "name": "point",
    "size": 3,
    "unit": "m",
    "frame": "base",
    "low": [0.3, -0.3, 0.15],
    "high": [0.65, 0.3, 0.55],
}
PLANNER = MppiConfig(horizon=3, iterations=6, num_samples=16, num_elites=4, num_pi_trajs=2)


def fr3_control(generator: ChunkGenerator | None = None, *, dt: float = DT, robot: str = "fr3") -> ControlContract:
    """The control contract of an fr3-reach model whose actions ``generator`` shaped (default: a
    ``ChunkConfig()`` generator at ``dt``), as training records it.
    """
    generator = generator or ChunkGenerator(FR3, ChunkConfig(), dt)
    action = {
        "meaning": "normalised joint velocity target per joint; 1.0 = velocity_scale [rad/s]",
        "size": FR3.dof,
        "low": -1.0,
        "high": 1.0,
        "velocity_scale": [float(v) for v in generator.velocity_scale],
        "chunk": to_dict(generator.config),
    }
    return ControlContract(robot, FR3.joint_names, dt, REACH_LAYOUT.to_dict(), action, REACH_GOAL)


def model_contract(
    control: ControlContract | None = None,
    planner: MppiConfig = PLANNER,
    model: dict[str, Any] | None = None,
    weights_sha256: str = "0" * 64,
    **changes: Any,
) -> ModelContract:
    """A ``ModelContract`` of an fr3-reach export with ``control`` (default ``fr3_control()``)."""
    control = control or fr3_control()
    contract = ModelContract(
        format_version=CONTRACT_VERSION,
        task="fr3-reach",
        robot=control.robot,
        joint_names=control.joint_names,
        dt=control.dt,
        observation=control.observation,
        action=control.action,
        goal=control.goal,
        planner=dataclasses.asdict(planner),
        model=model or {},
        model_preset="small",
        config_hash="0123456789abcdef",
        training_step=123,
        export_time="2026-11-22T00:00:00+00:00",
        weights_sha256=weights_sha256,
    )
    return dataclasses.replace(contract, **changes)


class FakeClock:
    """Time only moves when a fake backend call (or the test) advances it."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def refit(mean: np.ndarray) -> np.ndarray:
    """The fake's MPPI iteration: nudges each row by a different step, so warm starts are recognisable."""
    steps = 0.05 * np.arange(1, len(mean) + 1, dtype=np.float32)[:, None]
    return np.clip(mean + steps, -1.0, 1.0).astype(np.float32)


def full_solve(mean: np.ndarray, iterations: int = PLANNER.iterations) -> np.ndarray:
    """The fake's full solve from warm start ``mean``: the shifted mean it returns."""
    for _ in range(iterations):
        mean = refit(mean)
    return shift(mean)


class FakeBackend:
    """``Backend`` in numpy: each call advances the fake clock by ``cost[call]`` [s] and records its
    inputs; ``fail[call]`` makes it raise (``"raise"``) or return NaN, out-of-range or misshapen output.

    A full solve equals ``plan_init`` + ``iterations`` x ``plan_step``: iteration k (1-based) returns the
    action ``0.1 k`` on every joint and ``refit`` of its input mean.
    """

    name = "fake"

    def __init__(self, clock: FakeClock, contract: ModelContract | None = None, **cost: float) -> None:
        self.clock = clock
        self.contract = contract or model_contract()
        self.planner = PLANNER
        self.obs_dim = REACH_LAYOUT.size
        self.action_dim = 7
        self.latent_dim = 8
        self.num_q = 5
        self.cost = {"plan": 0.015, "plan_init": 0.001, "plan_step": 0.002, "policy": 0.0005, **cost}
        self.fail: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, object]]] = []
        self._k = 0

    def _enter(self, call: str, **inputs: object) -> None:
        self.calls.append((call, {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}))
        self.clock.advance(self.cost[call])
        if self.fail.get(call) == "raise":
            raise RuntimeError(f"{call} broke")

    def _action(self, call: str, value: float) -> np.ndarray:
        mode = self.fail.get(call)
        if mode == "nan":
            return np.full(7, np.nan, dtype=np.float32)
        if mode == "range":
            return np.full(7, 1.5, dtype=np.float32)
        if mode == "shape":
            return np.zeros(6, dtype=np.float32)
        return np.full(7, value, dtype=np.float32)

    def names(self) -> list[str]:
        return [c for c, _ in self.calls]

    def inputs(self, call: str) -> list[dict[str, object]]:
        return [i for c, i in self.calls if c == call]

    def policy(self, obs: np.ndarray) -> np.ndarray:
        self._enter("policy", obs=obs)
        return self._action("policy", -0.2)

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:
        self._enter("plan", obs=obs, mean=mean, noise=noise, explore_scale=explore_scale)
        for _ in range(self.planner.iterations):
            mean = refit(mean)
        action = self._action("plan", 0.1 * self.planner.iterations)
        return PlanOutput(action, shift(mean), 1.5, 0.1, np.ones(7, dtype=np.float32))

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._enter("plan_init", obs=obs, pi_eps=pi_eps)
        self._k = 0
        H, P = self.planner.horizon, self.planner.num_pi_trajs
        return np.zeros(self.latent_dim, dtype=np.float32), np.zeros((H, P, 7), dtype=np.float32)

    def plan_step(
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        self._enter("plan_step", mean=mean, std=std, noise=noise)
        self._k += 1
        return StepOutput(refit(mean), 0.5 * std, self._action("plan_step", 0.1 * self._k), 0.1 * self._k, 0.0)


class ShiftedPlans:
    """A backend that returns ``inner``'s plans with the action moved by ``delta`` (a wrong runtime)."""

    def __init__(self, inner: object, delta: float) -> None:
        self._inner, self._delta = inner, delta

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def plan(self, *args: object) -> PlanOutput:
        out = self._inner.plan(*args)  # type: ignore[attr-defined]
        return out._replace(action=out.action + self._delta)
