"""wm-control: learned latent world-model MPC for Franka arms (the ROS-free, simulator-free library).

The flat public API is listed in ``__all__``. Names that need torch (the agent, the planner, the world
model) are imported on first use, so ``import wm_control`` and the deployment runtime
(``wm_control.runtime``: numpy + onnxruntime) load on a robot PC without torch. Optional runtimes
(onnxruntime, TensorRT) are imported lazily by the modules that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

from wm_control.chunking import ChunkConfig, ChunkGenerator, ChunkResult, CommandState
from wm_control.config import config_hash, from_dict, to_dict
from wm_control.contract import ControlContract, ModelContract
from wm_control.errors import (
    CheckpointError,
    ConfigError,
    ExportError,
    InputError,
    ModelContractError,
    WmControlError,
)
from wm_control.evaluation import EpisodeResult, EvalSummary, run_episode, summarize
from wm_control.kinematics import forward_kinematics, joint_frames, tcp_jacobian, tcp_position
from wm_control.observation import (
    REACH_LAYOUT,
    ObservationField,
    ObservationLayout,
    Observer,
    ReachObserver,
    observer_for,
    reach_observation,
)
from wm_control.planning.config import MppiConfig
from wm_control.robot import FR3, PANDA, JointLimits, RobotSpec, get_robot, velocity_bounds
from wm_control.runtime import (
    Backend,
    Command,
    ControlLoop,
    FallbackLevel,
    LoopConfig,
    TickStats,
    control_loop,
    load_backend,
)
from wm_control.trajectory import HermiteSample, TrajectoryChunk, sample_hermite

__version__ = "0.1.0"

# name -> module, imported on first access (they need torch).
_LAZY = {
    "TDMPC2": "wm_control.training.agent",
    "AgentConfig": "wm_control.training.agent",
    "ModelConfig": "wm_control.model.config",
    "WorldModel": "wm_control.model.world_model",
    "model_config": "wm_control.model.config",
    "PlanNoise": "wm_control.planning.solve",
    "PlanResult": "wm_control.planning.solve",
    "PlanState": "wm_control.planning.solve",
    "draw_noise": "wm_control.planning.solve",
    "plan": "wm_control.planning.solve",
    "TrainConfig": "wm_control.training.trainer",
    "Trainer": "wm_control.training.trainer",
    "load_checkpoint": "wm_control.training.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wm_control' has no attribute {name!r}")


__all__ = [
    "FR3",
    "PANDA",
    "REACH_LAYOUT",
    "AgentConfig",
    "Backend",
    "CheckpointError",
    "ChunkConfig",
    "ChunkGenerator",
    "ChunkResult",
    "Command",
    "CommandState",
    "ConfigError",
    "ControlContract",
    "ControlLoop",
    "EpisodeResult",
    "EvalSummary",
    "ExportError",
    "FallbackLevel",
    "HermiteSample",
    "InputError",
    "JointLimits",
    "LoopConfig",
    "ModelConfig",
    "ModelContract",
    "ModelContractError",
    "MppiConfig",
    "ObservationField",
    "ObservationLayout",
    "Observer",
    "PlanNoise",
    "PlanResult",
    "PlanState",
    "ReachObserver",
    "RobotSpec",
    "TDMPC2",
    "TickStats",
    "TrainConfig",
    "Trainer",
    "TrajectoryChunk",
    "WmControlError",
    "WorldModel",
    "__version__",
    "config_hash",
    "control_loop",
    "draw_noise",
    "forward_kinematics",
    "from_dict",
    "get_robot",
    "joint_frames",
    "load_backend",
    "load_checkpoint",
    "model_config",
    "observer_for",
    "plan",
    "reach_observation",
    "run_episode",
    "sample_hermite",
    "summarize",
    "tcp_jacobian",
    "tcp_position",
    "to_dict",
    "velocity_bounds",
]
