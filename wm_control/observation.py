"""Observation layouts and builders shared by training (the sim env) and deployment (the control loop).

The layout (names, sizes, units) travels with exported models, so a controller can check it builds
exactly what the model was trained on. Builders take measured joint state and the goal, nothing
from the simulator: the same function runs in MuJoCo and on the robot. An ``Observer`` is a builder
with its layout; ``observer_for`` finds the one a model's recorded layout names, so a deployed
controller builds what the task trained on without knowing the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from wm_control.chunking import CommandState
from wm_control.contract import first_difference
from wm_control.errors import InputError, ModelContractError, check_finite
from wm_control.kinematics import joint_frames
from wm_control.robot import RobotSpec

__all__ = [
    "POSITION_SCALE",
    "REACH_LAYOUT",
    "ObservationField",
    "ObservationLayout",
    "Observer",
    "ReachObserver",
    "observer_for",
    "reach_observation",
]


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


# Units are chosen so that every field is of order 1 over the task (measured spread in fr3-reach
# training data: q, dq, command_dq 0.3-1; command_ddq 5.5 rad/s^2 before scaling; positions
# 0.1-0.2 m). The encoder's first layer sees all fields at once: a field 30x smaller than another
# (goal offsets in metres against accelerations in rad/s^2) stays nearly invisible for thousands of
# updates. v3 had command_ddq in rad/s^2 and positions in m.
REACH_LAYOUT = ObservationLayout(
    name="fr3-reach-v4",
    fields=(
        ObservationField("q", 7, "rad", "measured joint positions, joints 1..7"),
        ObservationField("dq", 7, "rad/s", "measured joint velocities"),
        ObservationField("command_dq", 7, "rad/s", "commanded joint velocity at the start of the tick"),
        ObservationField(
            "command_ddq", 7, "1", "commanded joint acceleration of the last segment, fraction of ddq_max"
        ),
        ObservationField("tcp", 3, "dm", "TCP position in the base frame (forward kinematics of q), decimetres"),
        ObservationField("tcp_velocity", 3, "m/s", "TCP linear velocity in the base frame (Jacobian of q times dq)"),
        ObservationField("target", 3, "dm", "goal position in the base frame, decimetres"),
        ObservationField("target_minus_tcp", 3, "dm", "goal minus TCP, base frame, decimetres"),
    ),
)
POSITION_SCALE = 10.0  # observation units per metre (decimetres) for tcp, target, target_minus_tcp


def reach_observation(
    spec: RobotSpec,
    q: np.ndarray,
    dq: np.ndarray,
    target: np.ndarray,
    command_dq: np.ndarray,
    command_ddq: np.ndarray,
) -> np.ndarray:
    """Build the ``REACH_LAYOUT`` vector (float32, ``(40,)``) from measured state, the command state
    of the trajectory generator, and the goal.

    The command state (``CommandState.dq``, ``.ddq`` of ``wm_control.chunking``) makes the dynamics
    Markov: what an action does next depends on the acceleration the jerk-limited command already
    has, which joint angles and velocities alone do not reveal. The controller that generates the
    chunks owns that state, in simulation and on the robot. The TCP velocity is in the layout because
    the value of a reaching state depends on whether the hand moves towards the goal; learning that
    from joint angles and velocities alone (a configuration-dependent Jacobian) costs many samples.

    Args:
        q, dq: ``(7,)`` measured joint positions [rad] and velocities [rad/s].
        target: ``(3,)`` goal position [m] in the base frame.
        command_dq, command_ddq: ``(7,)`` command state [rad/s, rad/s^2].

    The vector is in the layout's units (positions in decimetres, ``command_ddq`` as a fraction of
    the limit), not the SI units of the arguments.

    """
    q = np.asarray(q, dtype=np.float64)
    dq = np.asarray(dq, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    cdq = np.asarray(command_dq, dtype=np.float64)
    cddq = np.asarray(command_ddq, dtype=np.float64)
    n = spec.dof
    for name, arr, size in (
        ("q", q, n),
        ("dq", dq, n),
        ("target", target, 3),
        ("command_dq", cdq, n),
        ("command_ddq", cddq, n),
    ):
        if arr.shape != (size,):
            raise InputError(f"{name} has shape {arr.shape}; expected ({size},)")
        check_finite(name, arr)
    frames = joint_frames(spec, q)
    T_tcp = frames[-1] @ spec.T_flange_tcp
    tcp = T_tcp[:3, 3]
    axes, origins = frames[:-1, :3, 2], frames[:-1, :3, 3]
    tcp_velocity = np.cross(axes, tcp - origins).T @ dq  # position rows of the geometric Jacobian
    s = POSITION_SCALE
    cddq_frac = cddq / spec.limits.ddq_max
    return np.concatenate([q, dq, cdq, cddq_frac, s * tcp, tcp_velocity, s * target, s * (target - tcp)]).astype(
        np.float32
    )


class Observer(Protocol):
    """An observation builder and the layout it builds.

    ``goal_size`` is the length of the goal vector it takes (``None``: any finite vector).
    ``observer(q (n,) [rad], dq (n,) [rad/s], goal, command) -> obs (layout.size,)``, where
    ``command`` is the chunk generator's state at the start of the tick.
    """

    layout: ObservationLayout
    goal_size: int | None

    def __call__(self, q: np.ndarray, dq: np.ndarray, goal: np.ndarray, command: CommandState) -> np.ndarray:
        """Build the observation vector (float32)."""
        ...


class ReachObserver:
    """``REACH_LAYOUT`` for robot ``spec``; the goal is a point ``(3,)`` [m] in the base frame."""

    layout = REACH_LAYOUT
    goal_size: int | None = 3

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec

    def __call__(self, q: np.ndarray, dq: np.ndarray, goal: np.ndarray, command: CommandState) -> np.ndarray:
        """``reach_observation`` with the command state's velocity and acceleration."""
        return reach_observation(self.spec, q, dq, goal, command.dq, command.ddq)


# Observation builders by layout name: a new task's layout is added here with its builder.
_OBSERVERS: dict[str, Callable[[RobotSpec], Observer]] = {REACH_LAYOUT.name: ReachObserver}


def observer_for(layout: Mapping[str, Any], spec: RobotSpec) -> Observer:
    """The builder of a recorded layout (a contract's ``observation`` field) for robot ``spec``.

    Raises:
        ModelContractError: no builder has that layout's name, or the builder's layout differs from
            the recorded one (the message names the first differing field, e.g. a unit).
    """
    name = layout.get("name")
    if name not in _OBSERVERS:
        raise ModelContractError(
            f"model contract field 'observation' names layout {name!r}; this build has observation builders for "
            f"{sorted(_OBSERVERS)}"
        )
    observer = _OBSERVERS[str(name)](spec)
    built = observer.layout.to_dict()
    where = first_difference(dict(layout), built)
    if where is not None:
        raise ModelContractError(
            f"model contract field 'observation.{where}' differs from what layout {name!r} builds today; the model "
            f"was trained on another version of it"
        )
    return observer
