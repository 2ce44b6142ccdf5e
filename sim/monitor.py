"""The libfranka-style limit monitor of the simulated FR3: decides when the robot aborts ("reflex").

What it checks, like libfranka on the real arm:

- the 1 kHz command, differentiated by finite differences over the 1 ms servo period ``h``:
  velocity [rad/s] against the position-dependent bounds of ``wm_control.robot.velocity_bounds``
  (evaluated at the position at the start of each step), acceleration [rad/s^2] against
  ``limits.ddq_max`` and jerk [rad/s^3] against ``limits.dddq_max``. The differences start from
  the last three commanded positions, so a jump between two calls is caught like one inside a call;
- the measured joint positions [rad] against ``[limits.q_min, limits.q_max]``;
- the contact-induced joint torques [N m] (contact constraint forces mapped through the contact
  Jacobian onto the arm's dofs) against ``MonitorConfig.collision_torque``.

A check reports the earliest violation as a ``Reflex`` naming the kind, the 0-based joint, the
offending value, the limit and the simulated time; a violation counts once it exceeds its limit by
more than 1e-9 (collision: by more than 0). The monitor only decides; stopping the robot and
refusing further commands is the caller's job (``sim.physics.FR3Sim``), which raises ``ReflexError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mujoco
import numpy as np

from sim.scene import ARM_JOINTS
from wm_control.errors import ConfigError, WmControlError, check_range, check_shape
from wm_control.robot import RobotSpec, velocity_bounds

__all__ = ["FRANKA_COLLISION_TORQUE", "MonitorConfig", "Reflex", "ReflexError", "ReflexMonitor"]

# Franka's default upper collision thresholds (franka_ros2 examples), N m.
FRANKA_COLLISION_TORQUE = (35.0, 35.0, 32.0, 30.0, 29.0, 27.0, 24.0)

# A command limit counts as exceeded beyond this margin (in the limit's units).
_COMMAND_TOLERANCE = 1e-9
_CONTACT_TYPES = (
    mujoco.mjtConstraint.mjCNSTR_CONTACT_PYRAMIDAL,
    mujoco.mjtConstraint.mjCNSTR_CONTACT_ELLIPTIC,
    mujoco.mjtConstraint.mjCNSTR_CONTACT_FRICTIONLESS,
)


@dataclass(frozen=True)
class MonitorConfig:
    """What the limit monitor checks.

    command_limits: velocity (position-dependent), acceleration and jerk of the 1 kHz command.
    position_limits: the measured joint positions stay inside the joint range.
    collision_torque: contact-induced joint torque [N m] above which a collision reflex fires
        (Franka's default upper thresholds); ``None`` disables the collision check.
    """

    command_limits: bool = True
    position_limits: bool = True
    collision_torque: tuple[float, ...] | None = FRANKA_COLLISION_TORQUE

    def __post_init__(self) -> None:
        if self.collision_torque is not None:
            if len(self.collision_torque) != 7:
                raise ConfigError(f"MonitorConfig.collision_torque has {len(self.collision_torque)} values; expected 7")
            for i, v in enumerate(self.collision_torque):
                check_range(f"MonitorConfig.collision_torque[{i}]", v, 0.0, low_inclusive=False)


class Reflex(NamedTuple):
    """Why the simulated robot aborted: ``kind`` is one of velocity, acceleration, jerk (of the
    command), position (measured), collision (contact torque); ``joint`` is 0-based.
    """

    kind: str
    joint: int
    value: float
    limit: float
    time: float
    detail: str = ""

    @property
    def message(self) -> str:
        """Human-readable reason, e.g. for ``info["reflex"]``."""
        units = {
            "velocity": "rad/s",
            "acceleration": "rad/s^2",
            "jerk": "rad/s^3",
            "position": "rad",
            "collision": "N m",
        }
        what = {
            "velocity": "commanded velocity",
            "acceleration": "commanded acceleration",
            "jerk": "commanded jerk",
            "position": "measured position",
            "collision": "contact torque",
        }[self.kind]
        bound = "outside" if self.kind == "position" else "exceeds"
        extra = f" ({self.detail})" if self.detail else ""
        return (
            f"{self.kind} reflex at t={self.time:.3f} s: {what} of {ARM_JOINTS[self.joint]} = {self.value:.4g} "
            f"{units[self.kind]} {bound} limit {self.limit:.4g}{extra}"
        )


class ReflexError(WmControlError):
    """Raised when commanding a sim that is stopped by a reflex (call ``reset``)."""


class ReflexMonitor:
    """The limit checks of one 7-joint arm at a fixed servo period.

    The monitor keeps the last three commanded positions (``reset``, ``record``) so that the
    finite differences of ``check_command`` continue across calls.

    Args:
        spec: robot whose joint range and velocity / acceleration / jerk limits are checked.
        h: servo period [s], the spacing of the command samples (1 ms on the FR3).
        config: which checks run; may be replaced later through the ``config`` attribute.
    """

    def __init__(self, spec: RobotSpec, h: float, config: MonitorConfig = MonitorConfig()) -> None:
        check_range("ReflexMonitor.h", h, 0.0, low_inclusive=False)
        self.spec = spec
        self.h = float(h)
        self.config = config
        self._hist = np.zeros((3, 7))

    def reset(self, q: np.ndarray) -> None:
        """Start from rest at ``q`` ``(7,)`` [rad]: the command history becomes three copies of ``q``."""
        q = np.asarray(q, dtype=np.float64)
        check_shape("ReflexMonitor.reset q", q, (7,))
        self._hist = np.repeat(q[None], 3, axis=0)

    def record(self, Q: np.ndarray) -> None:
        """Append the commanded positions ``Q`` ``(n, 7)`` [rad] that were executed to the history."""
        self._hist = np.concatenate([self._hist, Q])[-3:]

    def check_command(self, Q: np.ndarray, time: float) -> Reflex | None:
        """Check the commanded positions of the next ticks against the velocity, acceleration and jerk limits.

        Args:
            Q: ``(n, 7)`` commanded positions [rad]; ``Q[i]`` is the command of the tick ending at
                ``time + (i + 1) h``.
            time: simulated time [s] before the first of these ticks.

        Returns:
            The earliest violation (ties go to velocity, then acceleration, then jerk), or ``None``;
            ``None`` as well when ``config.command_limits`` is off.
        """
        if not self.config.command_limits:
            return None
        check_shape("ReflexMonitor.check_command Q", Q, (len(Q), 7))
        h = self.h
        P = np.concatenate([self._hist, Q])
        V = np.diff(P, axis=0) / h
        A = np.diff(V, axis=0) / h
        J = np.diff(A, axis=0) / h
        V, A = V[2:], A[1:]
        lim = self.spec.limits
        lo, hi = velocity_bounds(self.spec, P[2:-1])  # bound at the start of each 1 ms step
        checks = (
            ("velocity", np.maximum(V - hi, lo - V), V, np.where(hi < V, hi, lo)),
            ("acceleration", np.abs(A) - lim.ddq_max, A, np.broadcast_to(lim.ddq_max, A.shape)),
            ("jerk", np.abs(J) - lim.dddq_max, J, np.broadcast_to(lim.dddq_max, J.shape)),
        )
        first: Reflex | None = None
        for kind, excess, value, limit in checks:
            bad = excess > _COMMAND_TOLERANCE
            if bad.any():
                i, j = np.argwhere(bad)[0]
                t = time + (i + 1) * h
                if first is None or t < first.time:
                    first = Reflex(kind, int(j), float(value[i, j]), float(np.abs(limit[i, j])), t)
        return first

    def check_position(self, qlog: np.ndarray, time: float) -> Reflex | None:
        """Check measured joint positions against the joint range.

        Args:
            qlog: ``(n, 7)`` measured positions [rad] after each of the last ``n`` ticks.
            time: simulated time [s] after the last of these ticks.

        Returns:
            The earliest position outside ``[q_min, q_max]``, or ``None``; ``None`` as well when
            ``config.position_limits`` is off.
        """
        if not self.config.position_limits:
            return None
        check_shape("ReflexMonitor.check_position qlog", qlog, (len(qlog), 7))
        lim = self.spec.limits
        bad = (qlog < lim.q_min) | (qlog > lim.q_max)
        if not bad.any():
            return None
        i, j = np.argwhere(bad)[0]
        t0 = time - len(qlog) * self.h
        limit = lim.q_min[j] if qlog[i, j] < lim.q_min[j] else lim.q_max[j]
        return Reflex("position", int(j), float(qlog[i, j]), float(limit), t0 + (i + 1) * self.h)

    def check_collision(self, model: mujoco.MjModel, data: mujoco.MjData) -> Reflex | None:
        """Check the joint torques caused by the contacts of the current MuJoCo state.

        Args:
            model, data: the simulation after ``mj_step``; the arm's 7 dofs come first.

        Returns:
            A collision reflex on the joint with the largest excess over ``config.collision_torque``
            [N m] (``detail`` names the bodies of the strongest contact), or ``None``; ``None`` as
            well when the collision check is off.
        """
        if self.config.collision_torque is None:
            return None
        m, d = model, data
        efc = slice(0, d.nefc)
        types = d.efc_type[efc]
        contact = (types == _CONTACT_TYPES[0]) | (types == _CONTACT_TYPES[1]) | (types == _CONTACT_TYPES[2])
        if not contact.any():
            return None
        if mujoco.mj_isSparse(m):
            jac = np.zeros((d.nefc, m.nv))
            mujoco.mju_sparse2dense(jac, d.efc_J, d.efc_J_rownnz, d.efc_J_rowadr, d.efc_J_colind)
        else:
            jac = d.efc_J.reshape(d.nefc, m.nv)
        tau = jac[contact, :7].T @ d.efc_force[efc][contact]
        threshold = np.asarray(self.config.collision_torque)
        over = np.abs(tau) - threshold
        if np.any(over > 0):
            j = int(np.argmax(over))
            return Reflex("collision", j, float(tau[j]), float(threshold[j]), float(d.time), _strongest_contact(m, d))
        return None


def _strongest_contact(model: mujoco.MjModel, data: mujoco.MjData) -> str:
    """``"<body> against <body>"`` for the contact with the largest normal force."""
    m, d = model, data
    force = np.zeros(6)
    best, best_f = "", -1.0
    for i in range(d.ncon):
        mujoco.mj_contactForce(m, d, i, force)
        if force[0] > best_f:
            c = d.contact[i]
            best_f = force[0]
            best = f"{m.body(m.geom_bodyid[c.geom1]).name} against {m.body(m.geom_bodyid[c.geom2]).name}"
    return best
