"""Deployment runtime: what a robot PC runs. Backends that run an exported model, their noise, and the
deadline-aware control loop; numpy and onnxruntime, with torch only in the torch backend.

Only numpy-level modules are imported here; the backends are imported by ``load_backend`` (or from
their own modules: ``wm_control.runtime.torch_backend``, ``.onnx_backend``, ``.tensorrt_backend``).
"""

from wm_control.runtime.backend import Backend, PlanNoiseArrays, PlanOutput, StepNoise, StepOutput
from wm_control.runtime.controller import control_loop
from wm_control.runtime.fallback import FallbackLevel
from wm_control.runtime.load import BACKENDS, load_backend
from wm_control.runtime.loop import Command, ControlLoop, LoopConfig, TickStats
from wm_control.runtime.noise import check_noise, draw_noise_np

__all__ = [
    "BACKENDS",
    "Backend",
    "Command",
    "ControlLoop",
    "FallbackLevel",
    "LoopConfig",
    "PlanNoiseArrays",
    "PlanOutput",
    "StepNoise",
    "StepOutput",
    "TickStats",
    "check_noise",
    "control_loop",
    "draw_noise_np",
    "load_backend",
]
