"""Observation layouts and builders shared by training (the sim env) and deployment (the control loop).

The layout (names, sizes, units) travels with exported models, so a controller can check it builds
exactly what the model was trained on. Builders take measured joint state and the goal, nothing
from the simulator: the same function runs in MuJoCo and on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_control.errors import InputError, check_finite
from wm_control.kinematics import tcp_position
from wm_control.robot import RobotSpec

__all__ = ["REACH_LAYOUT", "ObservationField", "ObservationLayout", "reach_observation"]


@dataclass(frozen=True)
class ObservationField:
    """One named slice of an observation vector."""

    name: str
    size: int
    unit: str
    description: str


@dataclass(frozen=True)
class ObservationLayout:
    """An ordered list of fields; ``size`` is the total vector length."""

    name: str
    fields: tuple[ObservationField, ...]

    @property
    def size(self) -> int:
        """Total number of entries."""
        return sum(f.size for f in self.fields)

    def slices(self) -> dict[str, slice]:
        """Where each field lives in the vector."""
        out, start = {}, 0
        for f in self.fields:
            out[f.name] = slice(start, start + f.size)
            start += f.size
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly description (for model metadata)."""
        return {
            "name": self.name,
            "size": self.size,
            "fields": [
                {"name": f.name, "size": f.size, "unit": f.unit, "description": f.description} for f in self.fields
            ],
        }


REACH_LAYOUT = ObservationLayout(
    name="fr3-reach-v1",
    fields=(
        ObservationField("q", 7, "rad", "measured joint positions, joints 1..7"),
        ObservationField("dq", 7, "rad/s", "measured joint velocities"),
        ObservationField("tcp", 3, "m", "TCP position in the base frame (forward kinematics of q)"),
        ObservationField("target", 3, "m", "goal position in the base frame"),
        ObservationField("target_minus_tcp", 3, "m", "goal minus TCP, base frame"),
    ),
)


def reach_observation(spec: RobotSpec, q: np.ndarray, dq: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Build the ``REACH_LAYOUT`` vector (float32, ``(23,)``) from measured state and the goal.

    Args:
        q, dq: ``(7,)`` joint positions [rad] and velocities [rad/s].
        target: ``(3,)`` goal position [m] in the base frame.
    """
    q = np.asarray(q, dtype=np.float64)
    dq = np.asarray(dq, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    for name, arr, n in (("q", q, spec.dof), ("dq", dq, spec.dof), ("target", target, 3)):
        if arr.shape != (n,):
            raise InputError(f"{name} has shape {arr.shape}; expected ({n},)")
        check_finite(name, arr)
    tcp = tcp_position(spec, q)
    return np.concatenate([q, dq, tcp, target, target - tcp]).astype(np.float32)
