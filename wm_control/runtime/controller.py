"""A ``ControlLoop`` assembled from a loaded model's contract: the robot, the chunk generator and the
observation builder the model was trained with, so a deployment (the ROS node, a benchmark) states
only what is its own: timing options and the servo period of the layer that runs the chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.config import from_dict
from wm_control.errors import ConfigError, ModelContractError
from wm_control.observation import observer_for
from wm_control.robot import get_robot
from wm_control.runtime.backend import Backend
from wm_control.runtime.loop import ControlLoop, LoopConfig
from wm_control.runtime.noise import draw_noise_np

__all__ = ["control_loop", "warm_up"]


def control_loop(
    backend: Backend,
    *,
    servo_period: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> ControlLoop:
    """The control loop of ``backend``'s model, built from its contract.

    Args:
        backend: the loaded model (``load_backend``).
        servo_period: period of the layer that runs the chunks [s]; default the robot's control
            cycle (``RobotSpec.servo_period``); a simulator passes its timestep. It must equal the
            one the model's chunks were shaped for.
        clock: monotonic time [s]; the time base of the ``t`` passed to ``step``.
        options: ``LoopConfig`` fields other than ``dt`` (which is the contract's).

    Raises:
        ModelContractError: the contract names an unknown robot or observation layout, or one this
            build describes differently (names the field).
        ConfigError: a bad option, or a servo period that differs from the contract's.
    """
    contract = backend.contract
    if "dt" in options:
        raise ConfigError(f"control_loop: dt is the model contract's ({contract.dt} s), not an option")
    try:
        spec = get_robot(contract.robot)
    except ConfigError as exc:
        raise ModelContractError(f"model contract field 'robot': {exc}") from None
    try:
        shaping = from_dict(ChunkConfig, contract.action.get("chunk"), "model contract field 'action.chunk'")
    except ConfigError as exc:
        raise ModelContractError(str(exc)) from None
    generator = ChunkGenerator(spec, shaping, contract.dt, servo_period)
    observer = observer_for(contract.observation, spec)
    config = from_dict(LoopConfig, {**options, "dt": contract.dt}, "control_loop options")
    return ControlLoop(backend, generator, observer, config, clock=clock)


def warm_up(backend: Backend, calls: int = 5, seed: int = 0) -> None:
    """Run each planning call of ``backend`` ``calls`` times on a zero observation, so that the first
    control ticks do not pay for the runtime's lazy set-up (memory arenas, kernel selection: the
    first onnxruntime solves take 2-3 times as long). Nothing of the model or the loop changes.
    """
    planner, A = backend.planner, backend.action_dim
    rng = np.random.default_rng(seed)
    obs = np.zeros(backend.obs_dim, dtype=np.float32)
    mean = np.zeros((planner.horizon, A), dtype=np.float32)
    std = np.full((planner.horizon, A), planner.max_std, dtype=np.float32)
    for _ in range(calls):
        noise = draw_noise_np(planner, A, backend.num_q, rng)
        backend.plan(obs, mean, noise, 0.0)
        z, prior = backend.plan_init(obs, noise.pi_eps)
        backend.plan_step(z, prior, mean, std, noise.step(0), 0.0)
