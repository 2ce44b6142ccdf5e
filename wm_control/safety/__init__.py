"""Independent safety layer: verifies every outgoing trajectory chunk against the robot's limits
and replaces a failing one by a brake (numpy only; shares no code with ``wm_control.chunking``).

See ``wm_control.safety.layer`` for the contract, ``verify`` for the checks and ``brake`` for the stop.
"""

from wm_control.safety.brake import stop_knots
from wm_control.safety.config import SafetyConfig
from wm_control.safety.layer import SafetyLayer, Verdict
from wm_control.safety.start import ChunkStart
from wm_control.safety.verify import KINDS, Violation

__all__ = ["KINDS", "ChunkStart", "SafetyConfig", "SafetyLayer", "Verdict", "Violation", "stop_knots"]
