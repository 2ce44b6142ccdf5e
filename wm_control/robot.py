"""Robot descriptions as data: joint names, limit tables and the kinematic frame table.

All numbers are published values (listed with their sources in ``docs/franka.md``): Franka "Robot
and interface specifications" (control-parameters-joint-fr3.csv / -panda.csv), franka_description
1.0.1 (kinematics.yaml) and libfranka 0.21 ``rate_limiting.h`` (FR3 position-dependent velocity
limits). The simulator, the chunk generator and the control loop's plausibility checks all read
limits from here, so there is one table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from wm_control.errors import ConfigError

__all__ = [
    "FR3",
    "PANDA",
    "JointLimits",
    "RobotSpec",
    "VelocityLimitCurve",
    "get_robot",
    "velocity_bounds",
]


def _ro(values: object) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class JointLimits:
    """Per-joint limit table, arrays of shape ``(n,)`` in SI units.

    q_min, q_max [rad]; dq_max [rad/s]; ddq_max [rad/s^2]; dddq_max [rad/s^3]; tau_max [N m];
    dtau_max [N m/s] (scalar, all joints).
    """

    q_min: np.ndarray
    q_max: np.ndarray
    dq_max: np.ndarray
    ddq_max: np.ndarray
    dddq_max: np.ndarray
    tau_max: np.ndarray
    dtau_max: float

    def __post_init__(self) -> None:
        n = len(self.q_min)
        for f in dataclasses.fields(self):
            if f.name == "dtau_max":
                continue
            arr = _ro(getattr(self, f.name))
            if arr.shape != (n,):
                raise ConfigError(f"JointLimits.{f.name} has shape {arr.shape}; expected ({n},)")
            object.__setattr__(self, f.name, arr)
        if np.any(self.q_min >= self.q_max):
            raise ConfigError("JointLimits: every q_min must be below its q_max")
        for name in ("dq_max", "ddq_max", "dddq_max", "tau_max"):
            if np.any(getattr(self, name) <= 0):
                raise ConfigError(f"JointLimits.{name} must be positive")


@dataclass(frozen=True, eq=False)
class VelocityLimitCurve:
    """libfranka's FR3 position-dependent joint velocity limits.

    upper_i(q) = min(v_i, max(0, -a_i + sqrt(max(0, b_i (c_i - q_i))))) - eps
    lower_i(q) = max(-v_i, min(0, a_i - sqrt(max(0, b_i (c_lower_i + q_i))))) + eps
    """

    v: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c_upper: np.ndarray
    c_lower: np.ndarray
    eps: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("v", "a", "b", "c_upper", "c_lower"):
            object.__setattr__(self, name, _ro(getattr(self, name)))


@dataclass(frozen=True, eq=False)
class RobotSpec:
    """A serial arm: names, limits, and the kinematic frame table.

    ``joint_origins`` is ``(n + 1, 6)``: for each joint, then the flange, the fixed transform from
    the parent frame as ``x, y, z [m], roll, pitch, yaw [rad]`` (URDF convention, fixed-axis
    R = Rz(yaw) Ry(pitch) Rx(roll)). Every joint rotates about its local z axis.
    ``T_flange_tcp`` is the 4x4 transform of the tool centre point in the flange frame.
    ``servo_period`` is the robot's own control cycle [s]: the period of the layer that interpolates
    and tracks trajectory chunks on the real arm (a simulator uses its own timestep instead).
    ``position_tolerance`` [rad] and ``velocity_tolerance`` [rad/s]: how far a measured joint state
    may lie outside the joint range and the velocity limits and still be a measurement of this robot
    (sensor noise, a tracking overshoot). Beyond them it is not (degrees for radians, another joint
    order, a corrupted message), and a controller must not plan from it.
    """

    name: str
    joint_names: tuple[str, ...]
    limits: JointLimits
    joint_origins: np.ndarray
    T_flange_tcp: np.ndarray
    servo_period: float
    velocity_curve: VelocityLimitCurve | None = None
    start_q: np.ndarray | None = None
    # A few degrees: far below any unit or joint-order mix-up, above encoder noise and overshoot.
    position_tolerance: float = 0.05
    # Measured velocities are differentiated positions: noisy, and briefly above the limit in a collision.
    velocity_tolerance: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        origins = _ro(self.joint_origins)
        if origins.shape != (n + 1, 6):
            raise ConfigError(f"RobotSpec.joint_origins has shape {origins.shape}; expected ({n + 1}, 6)")
        object.__setattr__(self, "joint_origins", origins)
        object.__setattr__(self, "T_flange_tcp", _ro(self.T_flange_tcp))
        if not 0.0 < self.servo_period <= 0.1:
            raise ConfigError(f"RobotSpec.servo_period={self.servo_period!r} s is out of range; valid: (0, 0.1]")
        if not 0.0 <= self.position_tolerance <= 0.5:
            raise ConfigError(f"RobotSpec.position_tolerance={self.position_tolerance!r} rad; valid: [0, 0.5]")
        if not 0.0 <= self.velocity_tolerance <= 10.0:
            raise ConfigError(f"RobotSpec.velocity_tolerance={self.velocity_tolerance!r} rad/s; valid: [0, 10]")
        if self.start_q is not None:
            object.__setattr__(self, "start_q", _ro(self.start_q))

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self.joint_names)

    def with_tcp(self, T_flange_tcp: np.ndarray) -> RobotSpec:
        """Return a copy with another tool centre point (e.g. the bare flange)."""
        return dataclasses.replace(self, T_flange_tcp=T_flange_tcp)


def velocity_bounds(spec: RobotSpec, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint velocity bounds ``(lower, upper)`` [rad/s] at configuration ``q`` ``(..., n)``.

    For robots with a position-dependent curve (FR3) this is libfranka's formula; otherwise the
    constant ``+-dq_max``.
    """
    q = np.asarray(q, dtype=np.float64)
    c = spec.velocity_curve
    if c is None:
        hi = np.broadcast_to(spec.limits.dq_max, q.shape)
        return -hi, hi
    upper = np.minimum(c.v, np.maximum(0.0, -c.a + np.sqrt(np.maximum(0.0, c.b * (c.c_upper - q))))) - c.eps
    lower = np.maximum(-c.v, np.minimum(0.0, c.a - np.sqrt(np.maximum(0.0, c.b * (c.c_lower + q))))) + c.eps
    return lower, upper


def _T_hand_tcp() -> np.ndarray:
    # franka_description: the hand is mounted on the flange rotated by -pi/4 about z; its TCP lies
    # 0.1034 m along the hand's z axis (Franka documentation, "end effector frame").
    c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    T[2, 3] = 0.1034
    return T


HALF_PI = np.pi / 2
# libfranka's control cycle (1 kHz), the rate of franka_ros2's joint_trajectory_controller.
FRANKA_SERVO_PERIOD = 0.001

_FRANKA_ORIGINS = [
    [0.0, 0.0, 0.333, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, -HALF_PI, 0.0, 0.0],
    [0.0, -0.316, 0.0, HALF_PI, 0.0, 0.0],
    [0.0825, 0.0, 0.0, HALF_PI, 0.0, 0.0],
    [-0.0825, 0.384, 0.0, -HALF_PI, 0.0, 0.0],
    [0.0, 0.0, 0.0, HALF_PI, 0.0, 0.0],
    [0.088, 0.0, 0.0, HALF_PI, 0.0, 0.0],
    [0.0, 0.0, 0.107, 0.0, 0.0, 0.0],  # flange
]

FR3 = RobotSpec(
    name="fr3",
    joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)),
    limits=JointLimits(
        q_min=_ro([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159]),
        q_max=_ro([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159]),
        dq_max=_ro([2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26]),
        ddq_max=_ro([10.0] * 7),
        dddq_max=_ro([5000.0] * 7),
        tau_max=_ro([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0]),
        dtau_max=1000.0,
    ),
    joint_origins=_ro(_FRANKA_ORIGINS),
    T_flange_tcp=_T_hand_tcp(),
    servo_period=FRANKA_SERVO_PERIOD,
    velocity_curve=VelocityLimitCurve(
        v=_ro([2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26]),
        a=_ro([0.30, 0.20, 0.20, 0.30, 0.35, 0.35, 0.35]),
        b=_ro([12.0, 5.17, 7.0, 8.0, 34.0, 11.0, 34.0]),
        c_upper=_ro([2.7501, 1.7918, 2.9065, -0.1458, 2.8101, 4.5205, 3.0196]),
        c_lower=_ro([2.7501, 1.7918, 2.9065, 3.0481, 2.8101, -0.54092, 3.0196]),
    ),
    # franka_ros2 use_fake_hardware start pose
    start_q=_ro([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]),
)

PANDA = RobotSpec(
    name="panda",
    joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
    limits=JointLimits(
        q_min=_ro([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]),
        q_max=_ro([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]),
        dq_max=_ro([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]),
        ddq_max=_ro([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0]),
        dddq_max=_ro([7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0]),
        tau_max=_ro([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0]),
        dtau_max=1000.0,
    ),
    joint_origins=_ro(_FRANKA_ORIGINS),
    T_flange_tcp=_T_hand_tcp(),
    servo_period=FRANKA_SERVO_PERIOD,
    start_q=_ro([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]),
)

_ROBOTS = {r.name: r for r in (FR3, PANDA)}


def get_robot(name: str) -> RobotSpec:
    """Look up a robot description by name (``"fr3"``, ``"panda"``)."""
    try:
        return _ROBOTS[name]
    except KeyError:
        raise ConfigError(f"unknown robot {name!r}; valid: {sorted(_ROBOTS)}") from None
