"""wm-control: learned latent world-model MPC for Franka arms (the ROS-free, simulator-free library).

The flat public API is listed in ``__all__``; optional runtimes (onnxruntime, TensorRT) are imported
lazily by the modules that need them.
"""

from wm_control.chunking import ChunkConfig, ChunkGenerator, ChunkResult, CommandState
from wm_control.config import config_hash, from_dict, to_dict
from wm_control.errors import (
    ConfigError,
    ExportError,
    InputError,
    ModelContractError,
    WmControlError,
)
from wm_control.evaluation import EpisodeResult, EvalSummary, run_episode, summarize
from wm_control.kinematics import forward_kinematics, joint_frames, tcp_jacobian, tcp_position
from wm_control.observation import REACH_LAYOUT, ObservationField, ObservationLayout, reach_observation
from wm_control.robot import FR3, PANDA, JointLimits, RobotSpec, get_robot, velocity_bounds
from wm_control.trajectory import HermiteSample, TrajectoryChunk, sample_hermite

__version__ = "0.1.0"

__all__ = [
    "FR3",
    "PANDA",
    "REACH_LAYOUT",
    "ChunkConfig",
    "ChunkGenerator",
    "ChunkResult",
    "CommandState",
    "ConfigError",
    "EpisodeResult",
    "EvalSummary",
    "ExportError",
    "HermiteSample",
    "InputError",
    "JointLimits",
    "ModelContractError",
    "ObservationField",
    "ObservationLayout",
    "RobotSpec",
    "TrajectoryChunk",
    "WmControlError",
    "__version__",
    "config_hash",
    "forward_kinematics",
    "from_dict",
    "get_robot",
    "joint_frames",
    "reach_observation",
    "run_episode",
    "sample_hermite",
    "summarize",
    "tcp_jacobian",
    "tcp_position",
    "to_dict",
    "velocity_bounds",
]
