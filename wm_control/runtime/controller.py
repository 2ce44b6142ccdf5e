"""A ``ControlLoop`` assembled from a loaded model's contract: the robot, the chunk generator and the
observation builder the model was trained with, so a deployment (the ROS node, a benchmark) states
only what is its own: timing options and the servo period of the layer that runs the chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.config import from_dict
from wm_control.errors import ConfigError, ModelContractError
from wm_control.observation import observer_for
from wm_control.robot import get_robot
from wm_control.runtime.backend import Backend
from wm_control.runtime.loop import ControlLoop, LoopConfig

__all__ = ["control_loop"]


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
