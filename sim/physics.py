"""The simulated FR3 at 1 kHz: the MuJoCo model and data, driven by the tracking layer and watched by
the limit monitor.

``FR3Sim`` composes ``sim.tracking.TrackingController`` (chunks interpolated by cubic Hermite splines;
joint impedance ``tau = kp (q_d - q) + kd (dq_d - dq) + g(q)`` through the arm's actuators, clamped to
the joint torque limits) and ``sim.monitor.ReflexMonitor`` (libfranka's reflexes on the command's
velocity, acceleration and jerk, on the measured position and on contact torques). A chunk arrives
through ``send`` (a ``TrajectoryChunk`` that starts from the current command, what the training env
uses) or ``send_stamped`` (a ``StampedChunk`` stamped in the sim's clock ``time``, with
joint_trajectory_controller's header-stamp semantics and a playout delay; refused chunks are counted
in ``refused_chunks``). Each ``advance`` checks the interpolated command before stepping, so a
command reflex stops the sim at the tick before the offending one; contacts are checked after every
physics step, measured positions after the run. After a reflex the sim refuses to move until
``reset``; the reason is kept in ``reflex``.
"""

from __future__ import annotations

from typing import NamedTuple

import mujoco
import numpy as np

from sim.monitor import MonitorConfig, Reflex, ReflexError, ReflexMonitor
from sim.scene import ARM_JOINTS
from sim.tracking import REFUSAL_REASONS, ImpedanceGains, Refusal, TrackingController
from wm_control.errors import ConfigError, InputError, check_finite, check_range
from wm_control.robot import FR3, RobotSpec
from wm_control.trajectory import StampedChunk, TrajectoryChunk

__all__ = ["FR3Sim", "StepReport"]

# Frozen (immutable) defaults of FR3Sim's constructor.
_DEFAULT_GAINS = ImpedanceGains()
_DEFAULT_MONITOR = MonitorConfig()


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
        playout_delay: how long after its stamp a stamped chunk takes over [s], in [0, 1]
            (``sim.tracking``): set it to the worst delivery delay to be absorbed; 0 evaluates the
            newest chunk at ``time - stamp``. ``send`` ignores it.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        spec: RobotSpec = FR3,
        gains: ImpedanceGains = _DEFAULT_GAINS,
        monitor: MonitorConfig = _DEFAULT_MONITOR,
        playout_delay: float = 0.0,
    ) -> None:
        names = [model.joint(i).name for i in range(min(model.njnt, 7))]
        if names != list(ARM_JOINTS):
            raise ConfigError(f"model joints {names} do not start with {list(ARM_JOINTS)}")
        self.model = model
        self.data = mujoco.MjData(model)
        self.spec = spec
        self.h = float(model.opt.timestep)
        self._tracking = TrackingController(self.h, gains, playout_delay)
        self._refused = dict.fromkeys(REFUSAL_REASONS, 0)
        self._last_refusal: Refusal | None = None
        self._monitor = ReflexMonitor(spec, self.h, monitor)
        self.set_gains(gains)
        self._tau_max = spec.limits.tau_max
        self._has_gripper = model.nu > 7
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
        self._tracking.set_gains(gains)
        self.model.actuator_biasprm[:7, 1] = -self._tracking.kp
        self.model.actuator_biasprm[:7, 2] = -self._tracking.kd

    # --- state -------------------------------------------------------------------------------
    @property
    def monitor(self) -> MonitorConfig:
        """Which reflexes are raised; assigning a new ``MonitorConfig`` takes effect at the next ``advance``."""
        return self._monitor.config

    @monitor.setter
    def monitor(self, config: MonitorConfig) -> None:
        self._monitor.config = config

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
        return self._tracking.command

    @property
    def reflex(self) -> Reflex | None:
        """The reflex that stopped the robot, or ``None``."""
        return self._reflex

    @property
    def playout_delay(self) -> float:
        """How long after its stamp a stamped chunk takes over [s]."""
        return self._tracking.playout_delay

    @property
    def refused_chunks(self) -> dict[str, int]:
        """Stamped chunks refused since construction, by reason (``sim.tracking.REFUSAL_REASONS``), a copy."""
        return dict(self._refused)

    @property
    def last_refusal(self) -> Refusal | None:
        """The most recent refusal since construction (reason, stamp, clock, message), or ``None``."""
        return self._last_refusal

    # --- control -----------------------------------------------------------------------------
    def reset(self, q: np.ndarray, gripper: float = 0.04, time: float = 0.0) -> None:
        """Put the arm at rest at ``q`` [rad] holding that position, at ``time`` [s] (>= 0; a node that
        stamps in its wall clock recovers from a reflex without turning its clock back); clears any
        reflex and drops the active and pending chunks (the refusal counters keep counting).
        """
        check_range("reset time", time, 0.0)
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
        self.data.time = float(time)
        self.data.qpos[:7] = q
        if self._has_gripper:
            check_range("gripper", gripper, 0.0, 0.04)
            self.data.qpos[7:9] = gripper
            self.data.ctrl[7] = gripper
        self.data.ctrl[:7] = self._tracking.rest_command(q)
        mujoco.mj_forward(self.model, self.data)
        self._tracking.reset(q)
        self._monitor.reset(q)
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
        self._tracking.send(chunk)

    def send_stamped(self, chunk: StampedChunk) -> Refusal | None:
        """Hand a stamped chunk to the 1 kHz layer (joint_trajectory_controller header-stamp semantics).

        ``chunk.stamp`` is in this sim's clock (``time``). Accepted, it replaces the active trajectory at
        ``stamp + playout_delay`` (at once if that has passed); each tick then samples it at the tick's
        time minus ``playout_delay``. Refused (stamp more than one servo period ahead of ``time``, chunk
        ending before ``time - playout_delay``, or older than an accepted one), nothing changes and the
        refusal is counted in ``refused_chunks`` and kept in ``last_refusal``.

        Returns:
            ``None`` when accepted, else the ``Refusal``.

        Raises:
            ReflexError: the sim is stopped by a reflex.
            InputError: the chunk is not for 7 joints.
        """
        if self._reflex is not None:
            raise ReflexError(f"robot stopped by a reflex, reset first ({self._reflex.message})")
        refusal = self._tracking.send_stamped(chunk, self.data.time)
        if refusal is not None:
            self._refused[refusal.reason] += 1
            self._last_refusal = refusal
        return refusal

    def advance(self, duration: float) -> StepReport:
        """Run the 1 kHz loop for ``duration`` seconds (rounded to whole physics ticks).

        Returns a ``StepReport``; on a reflex the sim stops at the offending tick.
        """
        if self._reflex is not None:
            raise ReflexError(f"robot stopped by a reflex, reset first ({self._reflex.message})")
        n = int(round(duration / self.h))
        if n <= 0:
            raise InputError(f"advance duration={duration!r} s is shorter than one physics tick ({self.h} s)")
        setpoints = self._tracking.setpoints(n)
        monitor = self._monitor
        reflex = monitor.check_command(setpoints.q, self.data.time)
        n_run = n if reflex is None else int(round((reflex.time - self.data.time) / self.h)) - 1
        U = setpoints.ctrl
        m, d = self.model, self.data
        n_run = max(n_run, 0)
        qlog = np.empty((n_run, 7))
        tlog = np.empty((n_run, 7))
        ctrl, qpos, tau = d.ctrl[:7], d.qpos[:7], d.qfrc_actuator[:7]
        check_contacts = monitor.config.collision_torque is not None
        step = mujoco.mj_step
        for i in range(n_run):
            ctrl[:] = U[i]
            step(m, d)
            qlog[i] = qpos
            tlog[i] = tau
            if check_contacts and d.ncon:
                hit = monitor.check_collision(m, d)
                if hit is not None:
                    reflex = hit
                    n_run = i + 1
                    qlog, tlog = qlog[:n_run], tlog[:n_run]
                    break
        saturated = int(np.count_nonzero(np.any(np.abs(tlog) >= self._tau_max - 1e-9, axis=1)))
        pos = monitor.check_position(qlog, self.data.time)
        if pos is not None and (reflex is None or pos.time < reflex.time):
            reflex = pos
        # mj_step leaves derived quantities (site positions) one tick behind qpos; refresh them.
        mujoco.mj_kinematics(m, d)
        if n_run > 0:
            self._tracking.commit(setpoints, n_run)
            monitor.record(setpoints.q[:n_run])
        self._reflex = reflex
        return StepReport(reflex, saturated)
