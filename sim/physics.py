"""The simulated FR3 at 1 kHz: trajectory interpolation, joint impedance with gravity compensation,
and a limit monitor that raises the reflexes a real Franka would.

The contract is the one the ROS sim node and ros2_control's joint_trajectory_controller share: a
``TrajectoryChunk`` replaces the active trajectory, which starts from the current command state and
is interpolated by cubic Hermite splines at the physics rate; when it ends the last position is held.
Each physics tick applies ``tau = kp (q_d - q) + kd (dq_d - dq) + g(q)`` through the arm's
actuators, clamped to the joint torque limits.

Like libfranka, the monitor differentiates the 1 kHz command and aborts ("reflex") when velocity,
acceleration or jerk leave their limits, when the measured position leaves the joint range, or when
contact torques exceed the collision thresholds. After a reflex the sim refuses to move until
``reset``; the reason is kept in ``reflex``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mujoco
import numpy as np

from sim.scene import ARM_JOINTS
from wm_control.errors import ConfigError, InputError, WmControlError, check_finite, check_range
from wm_control.robot import FR3, RobotSpec, velocity_bounds
from wm_control.trajectory import TrajectoryChunk, sample_hermite

__all__ = ["FR3Sim", "ImpedanceGains", "MonitorConfig", "Reflex", "ReflexError", "StepReport"]

# Franka's default upper collision thresholds (franka_ros2 examples), N m.
FRANKA_COLLISION_TORQUE = (35.0, 35.0, 32.0, 30.0, 29.0, 27.0, 24.0)
# joint_trajectory_controller PID used by Franka's MoveIt setup (FRANKA.md).
FRANKA_JTC_KP = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
FRANKA_JTC_KD = (30.0, 30.0, 30.0, 30.0, 10.0, 10.0, 5.0)


@dataclass(frozen=True)
class ImpedanceGains:
    """Joint impedance gains of the 1 kHz layer: kp [N m/rad], kd [N m s/rad], 7 values each."""

    kp: tuple[float, ...] = FRANKA_JTC_KP
    kd: tuple[float, ...] = FRANKA_JTC_KD

    def __post_init__(self) -> None:
        for name in ("kp", "kd"):
            vals = tuple(getattr(self, name))
            if len(vals) != 7:
                raise ConfigError(f"ImpedanceGains.{name} has {len(vals)} values; expected 7")
            for i, v in enumerate(vals):
                check_range(f"ImpedanceGains.{name}[{i}]", v, 0.0, 1e5)
            object.__setattr__(self, name, tuple(float(v) for v in vals))


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


class StepReport(NamedTuple):
    """Outcome of ``FR3Sim.advance``: the reflex if one fired, and how many 1 ms ticks had at least
    one joint at its torque limit.
    """

    reflex: Reflex | None
    torque_saturated_ticks: int


class FR3Sim:
    """MuJoCo FR3 with the 1 kHz trajectory-following layer.

    Args:
        model: a model from ``sim.scene.build_model`` (arm joints and actuators first).
        spec: limits used by the monitor.
        gains: impedance gains.
        monitor: which reflexes to raise.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        spec: RobotSpec = FR3,
        gains: ImpedanceGains = ImpedanceGains(),
        monitor: MonitorConfig = MonitorConfig(),
    ) -> None:
        names = [model.joint(i).name for i in range(min(model.njnt, 7))]
        if names != list(ARM_JOINTS):
            raise ConfigError(f"model joints {names} do not start with {list(ARM_JOINTS)}")
        self.model = model
        self.data = mujoco.MjData(model)
        self.spec = spec
        self.monitor = monitor
        self.h = float(model.opt.timestep)
        self._kp = np.zeros(7)
        self._kd = np.zeros(7)
        self.set_gains(gains)
        self._tau_max = spec.limits.tau_max
        self._has_gripper = model.nu > 7
        self._arm_dofs = 7
        self._is_contact = np.zeros(0, dtype=bool)
        self._site_tcp = self._find_site()
        self.reset(spec.start_q if spec.start_q is not None else np.zeros(7))

    def _find_site(self) -> int:
        for name in ("fr3_hand_tcp", "fr3_flange"):
            sid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)
            if sid >= 0:
                return int(sid)
        raise ConfigError("model has neither an fr3_hand_tcp nor an fr3_flange site")

    def set_gains(self, gains: ImpedanceGains) -> None:
        """Change the impedance gains (takes effect at the next physics tick)."""
        self._kp[:] = gains.kp
        self._kd[:] = gains.kd
        self.model.actuator_biasprm[:7, 1] = -self._kp
        self.model.actuator_biasprm[:7, 2] = -self._kd

    # --- state -------------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        """Measured joint positions [rad], ``(7,)`` copy."""
        return self.data.qpos[:7].copy()

    @property
    def dq(self) -> np.ndarray:
        """Measured joint velocities [rad/s], ``(7,)`` copy."""
        return self.data.qvel[:7].copy()

    @property
    def tcp_position(self) -> np.ndarray:
        """TCP (hand) or flange position in the base frame [m], ``(3,)`` copy."""
        return self.data.site_xpos[self._site_tcp].copy()

    @property
    def time(self) -> float:
        """Simulated time since the last reset [s]."""
        return float(self.data.time)

    @property
    def command(self) -> tuple[np.ndarray, np.ndarray]:
        """Current command ``(q_d, dq_d)`` of the 1 kHz layer, copies."""
        return self._cmd_q.copy(), self._cmd_dq.copy()

    @property
    def reflex(self) -> Reflex | None:
        """The reflex that stopped the robot, or ``None``."""
        return self._reflex

    # --- control -----------------------------------------------------------------------------
    def reset(self, q: np.ndarray, gripper: float = 0.04) -> None:
        """Put the arm at rest at ``q`` [rad] holding that position; clears any reflex."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (7,):
            raise InputError(f"reset q has shape {q.shape}; expected (7,)")
        check_finite("reset q", q, ARM_JOINTS)
        lim = self.spec.limits
        outside = np.flatnonzero((q < lim.q_min) | (q > lim.q_max))
        if outside.size:
            i = int(outside[0])
            raise InputError(
                f"reset q[{i}] ({ARM_JOINTS[i]}) = {q[i]:.4f} rad is outside [{lim.q_min[i]}, {lim.q_max[i]}]"
            )
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:7] = q
        if self._has_gripper:
            check_range("gripper", gripper, 0.0, 0.04)
            self.data.qpos[7:9] = gripper
            self.data.ctrl[7] = gripper
        self.data.ctrl[:7] = self._kp * q
        mujoco.mj_forward(self.model, self.data)
        self._cmd_q = q.copy()
        self._cmd_dq = np.zeros(7)
        self._chunk: TrajectoryChunk | None = None
        self._chunk_q0 = q.copy()
        self._chunk_dq0 = np.zeros(7)
        self._chunk_t = 0.0
        self._hist = np.repeat(q[None], 3, axis=0)  # last three commanded positions, for differences
        self._reflex: Reflex | None = None

    def set_gripper(self, width: float) -> None:
        """Command each finger's opening [m], in [0, 0.04]."""
        if not self._has_gripper:
            raise ConfigError("this model has no hand; build it with build_model(hand=True)")
        check_range("gripper width", width, 0.0, 0.04)
        self.data.ctrl[7] = width

    def send(self, chunk: TrajectoryChunk) -> None:
        """Replace the active trajectory with ``chunk``, starting from the current command state."""
        if self._reflex is not None:
            raise ReflexError(f"robot stopped by a reflex, reset first ({self._reflex.message})")
        chunk.validate(7)
        self._chunk = TrajectoryChunk(np.asarray(chunk.positions, float), np.asarray(chunk.velocities, float), chunk.dt)
        self._chunk_q0 = self._cmd_q.copy()
        self._chunk_dq0 = self._cmd_dq.copy()
        self._chunk_t = 0.0

    def advance(self, duration: float) -> StepReport:
        """Run the 1 kHz loop for ``duration`` seconds (rounded to whole physics ticks).

        Returns a ``StepReport``; on a reflex the sim stops at the offending tick.
        """
        if self._reflex is not None:
            raise ReflexError(f"robot stopped by a reflex, reset first ({self._reflex.message})")
        n = int(round(duration / self.h))
        if n <= 0:
            raise InputError(f"advance duration={duration!r} s is shorter than one physics tick ({self.h} s)")
        if self._chunk is None:
            Q = np.repeat(self._cmd_q[None], n, axis=0)
            V = np.zeros_like(Q)
        else:
            times = self._chunk_t + self.h * np.arange(1, n + 1)
            Q, V, _ = sample_hermite(self._chunk_q0, self._chunk_dq0, self._chunk, times)
        reflex = self._check_command(Q) if self.monitor.command_limits else None
        n_run = n if reflex is None else int(round((reflex.time - self.data.time) / self.h)) - 1
        U = self._kp * Q + self._kd * V
        m, d = self.model, self.data
        n_run = max(n_run, 0)
        qlog = np.empty((n_run, 7))
        tlog = np.empty((n_run, 7))
        ctrl, qpos, tau = d.ctrl[:7], d.qpos[:7], d.qfrc_actuator[:7]
        check_contacts = self.monitor.collision_torque is not None
        step = mujoco.mj_step
        for i in range(n_run):
            ctrl[:] = U[i]
            step(m, d)
            qlog[i] = qpos
            tlog[i] = tau
            if check_contacts and d.ncon:
                hit = self._check_collision()
                if hit is not None:
                    reflex = hit
                    n_run = i + 1
                    qlog, tlog = qlog[:n_run], tlog[:n_run]
                    break
        saturated = int(np.count_nonzero(np.any(np.abs(tlog) >= self._tau_max - 1e-9, axis=1)))
        if self.monitor.position_limits:
            pos = self._check_position(qlog)
            if pos is not None and (reflex is None or pos.time < reflex.time):
                reflex = pos
        # mj_step leaves derived quantities (site positions) one tick behind qpos; refresh them.
        mujoco.mj_kinematics(m, d)
        if n_run > 0:
            self._cmd_q, self._cmd_dq = Q[n_run - 1].copy(), V[n_run - 1].copy()
            self._hist = np.concatenate([self._hist, Q[:n_run]])[-3:]
            self._chunk_t += n_run * self.h
        self._reflex = reflex
        return StepReport(reflex, saturated)

    # --- monitor -----------------------------------------------------------------------------
    def _check_command(self, Q: np.ndarray) -> Reflex | None:
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
            bad = excess > 1e-9
            if bad.any():
                i, j = np.argwhere(bad)[0]
                t = self.data.time + (i + 1) * h
                if first is None or t < first.time:
                    first = Reflex(kind, int(j), float(value[i, j]), float(np.abs(limit[i, j])), t)
        return first

    def _check_position(self, qlog: np.ndarray) -> Reflex | None:
        lim = self.spec.limits
        bad = (qlog < lim.q_min) | (qlog > lim.q_max)
        if not bad.any():
            return None
        i, j = np.argwhere(bad)[0]
        t0 = self.data.time - len(qlog) * self.h
        limit = lim.q_min[j] if qlog[i, j] < lim.q_min[j] else lim.q_max[j]
        return Reflex("position", int(j), float(qlog[i, j]), float(limit), t0 + (i + 1) * self.h)

    def _check_collision(self) -> Reflex | None:
        m, d = self.model, self.data
        efc = slice(0, d.nefc)
        types = d.efc_type[efc]
        contact = (
            (types == mujoco.mjtConstraint.mjCNSTR_CONTACT_PYRAMIDAL)
            | (types == mujoco.mjtConstraint.mjCNSTR_CONTACT_ELLIPTIC)
            | (types == mujoco.mjtConstraint.mjCNSTR_CONTACT_FRICTIONLESS)
        )
        if not contact.any():
            return None
        if mujoco.mj_isSparse(m):
            jac = np.zeros((d.nefc, m.nv))
            mujoco.mju_sparse2dense(jac, d.efc_J, d.efc_J_rownnz, d.efc_J_rowadr, d.efc_J_colind)
        else:
            jac = d.efc_J.reshape(d.nefc, m.nv)
        tau = jac[contact, : self._arm_dofs].T @ d.efc_force[efc][contact]
        assert self.monitor.collision_torque is not None
        threshold = np.asarray(self.monitor.collision_torque)
        over = np.abs(tau) - threshold
        if np.any(over > 0):
            j = int(np.argmax(over))
            return Reflex("collision", j, float(tau[j]), float(threshold[j]), float(d.time), self._strongest_contact())
        return None

    def _strongest_contact(self) -> str:
        """``"<body> against <body>"`` for the contact with the largest normal force."""
        m, d = self.model, self.data
        force = np.zeros(6)
        best, best_f = "", -1.0
        for i in range(d.ncon):
            mujoco.mj_contactForce(m, d, i, force)
            if force[0] > best_f:
                c = d.contact[i]
                best_f = force[0]
                best = f"{m.body(m.geom_bodyid[c.geom1]).name} against {m.body(m.geom_bodyid[c.geom2]).name}"
        return best
