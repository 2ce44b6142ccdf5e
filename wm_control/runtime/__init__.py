"""Deployment runtime: backends that run an exported model, their noise, and the control loop.

Only numpy-level modules are imported here; backends that need torch or onnxruntime are imported
from their own modules (``wm_control.runtime.torch_backend``, ``wm_control.runtime.onnx_backend``,
``wm_control.runtime.tensorrt_backend``).
"""

from wm_control.runtime.backend import Backend, PlanNoiseArrays, PlanOutput, StepNoise, StepOutput
from wm_control.runtime.loop import Command, ControlLoop, FallbackLevel, LoopConfig, Observer, TickStats
from wm_control.runtime.noise import check_noise, draw_noise_np

__all__ = [
    "Backend",
    "Command",
    "ControlLoop",
    "FallbackLevel",
    "LoopConfig",
    "Observer",
    "PlanNoiseArrays",
    "PlanOutput",
    "StepNoise",
    "StepOutput",
    "TickStats",
    "check_noise",
    "draw_noise_np",
]
