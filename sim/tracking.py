"""The 1 kHz tracking layer of the simulated FR3: trajectory interpolation and the joint impedance law.

The contract is the one the ROS sim node and ros2_control's joint_trajectory_controller share: a
``TrajectoryChunk`` replaces the active trajectory, which starts from the current command state and
is interpolated by cubic Hermite splines at the servo rate; when it ends the last position is held.
Each servo tick applies ``tau = kp (q_d - q) + kd (dq_d - dq) + g(q)`` [N m], clamped to the joint
torque limits.

``TrackingController`` produces, for each tick, the desired position ``q_d`` [rad] and velocity
``dq_d`` [rad/s] and the actuator command ``ctrl = kp q_d + kd dq_d`` [N m]. The rest of the law is
evaluated inside MuJoCo by the arm's affine actuators (``sim/assets/fr3.xml``): their bias
parameters are ``(0, -kp, -kd)`` (``sim.physics.FR3Sim.set_gains`` writes them), so the actuator
force is ``ctrl - kp q - kd dq``; gravity compensation ``g(q)`` goes through the actuators
(``actuatorgravcomp``) and ``actuatorfrcrange`` clamps the total to ``tau_max``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from wm_control.errors import ConfigError, InputError, check_range, check_shape
from wm_control.trajectory import TrajectoryChunk, sample_hermite

__all__ = ["FRANKA_JTC_KD", "FRANKA_JTC_KP", "ImpedanceGains", "ServoSetpoints", "TrackingController"]

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


class ServoSetpoints(NamedTuple):
    """What the tracking layer commands for the next ``n`` servo ticks (row ``i``: the tick ending
    ``(i + 1) h`` from now).

    q: ``(n, 7)`` desired positions [rad]; dq: ``(n, 7)`` desired velocities [rad/s];
    ctrl: ``(n, 7)`` actuator commands ``kp q + kd dq`` [N m].
    """

    q: np.ndarray
    dq: np.ndarray
    ctrl: np.ndarray


class TrackingController:
    """Interpolates the active ``TrajectoryChunk`` at the servo rate and turns it into actuator commands.

    The controller holds the command state ``(q_d, dq_d)`` of the last executed tick, the active
    chunk, the command state it started from, and the time since it became active.

    Args:
        h: servo period [s] (1 ms on the FR3).
        gains: impedance gains.
    """

    def __init__(self, h: float, gains: ImpedanceGains = ImpedanceGains()) -> None:
        check_range("TrackingController.h", h, 0.0, low_inclusive=False)
        self.h = float(h)
        self._kp = np.zeros(7)
        self._kd = np.zeros(7)
        self.set_gains(gains)
        self.reset(np.zeros(7))

    @property
    def kp(self) -> np.ndarray:
        """Stiffness [N m/rad], ``(7,)`` copy."""
        return self._kp.copy()

    @property
    def kd(self) -> np.ndarray:
        """Damping [N m s/rad], ``(7,)`` copy."""
        return self._kd.copy()

    @property
    def command(self) -> tuple[np.ndarray, np.ndarray]:
        """Command state ``(q_d, dq_d)`` [rad, rad/s] of the last executed tick, ``(7,)`` copies."""
        return self._cmd_q.copy(), self._cmd_dq.copy()

    def set_gains(self, gains: ImpedanceGains) -> None:
        """Change the impedance gains (used by the next ``setpoints``)."""
        self._kp[:] = gains.kp
        self._kd[:] = gains.kd

    def reset(self, q: np.ndarray) -> None:
        """Hold ``q`` ``(7,)`` [rad] at rest, with no active chunk."""
        q = np.asarray(q, dtype=np.float64)
        check_shape("TrackingController.reset q", q, (7,))
        self._cmd_q = q.copy()
        self._cmd_dq = np.zeros(7)
        self._chunk: TrajectoryChunk | None = None
        self._chunk_q0 = q.copy()
        self._chunk_dq0 = np.zeros(7)
        self._chunk_t = 0.0

    def rest_command(self, q: np.ndarray) -> np.ndarray:
        """Actuator command ``kp q`` [N m] ``(7,)`` that holds ``q`` ``(7,)`` [rad] at rest."""
        return self._kp * q

    def send(self, chunk: TrajectoryChunk) -> None:
        """Replace the active trajectory with ``chunk`` (7 joints), starting from the current command state.

        Raises:
            InputError: the chunk is malformed (shapes, NaN, non-positive ``dt``).
        """
        chunk.validate(7)
        self._chunk = TrajectoryChunk(np.asarray(chunk.positions, float), np.asarray(chunk.velocities, float), chunk.dt)
        self._chunk_q0 = self._cmd_q.copy()
        self._chunk_dq0 = self._cmd_dq.copy()
        self._chunk_t = 0.0

    def setpoints(self, n: int) -> ServoSetpoints:
        """Setpoints of the next ``n`` ticks, without executing them (see ``commit``).

        Without an active chunk the command position is held at zero velocity; after the chunk's
        last knot its last position is held.
        """
        if n < 1:
            raise InputError(f"setpoints n={n!r} ticks; expected n >= 1")
        if self._chunk is None:
            q = np.repeat(self._cmd_q[None], n, axis=0)
            dq = np.zeros_like(q)
        else:
            times = self._chunk_t + self.h * np.arange(1, n + 1)
            q, dq, _ = sample_hermite(self._chunk_q0, self._chunk_dq0, self._chunk, times)
        return ServoSetpoints(q, dq, self._kp * q + self._kd * dq)

    def commit(self, setpoints: ServoSetpoints, ticks: int) -> None:
        """Mark the first ``ticks`` rows of ``setpoints`` as executed.

        Args:
            setpoints: the result of the last ``setpoints`` call (no ``send`` or ``reset`` since).
            ticks: how many of its ticks ran, in ``[0, len(setpoints.q)]``; the command state
                becomes that of the last one.
        """
        if not 0 <= ticks <= len(setpoints.q):
            raise InputError(f"commit ticks={ticks!r} is out of range; valid: [0, {len(setpoints.q)}]")
        if ticks == 0:
            return
        self._cmd_q, self._cmd_dq = setpoints.q[ticks - 1].copy(), setpoints.dq[ticks - 1].copy()
        self._chunk_t += ticks * self.h
