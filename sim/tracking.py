"""The 1 kHz tracking layer of the simulated FR3: trajectory interpolation and the joint impedance law.

The contract is the one the ROS sim node and ros2_control's joint_trajectory_controller (JTC) share:
a chunk replaces the active trajectory, which is interpolated by cubic Hermite splines at the servo
rate; after its last knot the last position is held at zero velocity until the next chunk. Each servo
tick applies ``tau = kp (q_d - q) + kd (dq_d - dq) + g(q)`` [N m], clamped to the joint torque limits.
A chunk arrives in one of two forms (``wm_control.trajectory``):

- ``send(TrajectoryChunk)``: the chunk starts from the current command state at the moment it arrives
  (what the training env uses);
- ``send_stamped(StampedChunk, now)``: JTC's header-stamp semantics. The chunk carries the time
  ``stamp`` [s] of its start state and that state; each tick samples the newest chunk at its own time
  minus ``playout_delay`` [s], so a chunk delivered late joins as if it had arrived on time.
  Consecutive chunks of a generator pass through the same state at the later one's stamp, and the
  layer switches exactly there when the chunk arrived within ``playout_delay`` of its stamp (it waits,
  pending, until then): the command is then the on-time command, ``playout_delay`` later. A chunk
  that arrives later still joins where its spline is by then; the previous chunk has been braking
  since the stamp, so the two differ by about ``da (late)^2 / 2`` [rad] with ``da`` their difference
  in acceleration, a step that can trip the command reflexes (with ``playout_delay = 0``, already
  1 ms late). A chunk is refused (``Refusal``: not applied, the active trajectory continues) when its
  stamp is more than one servo period ahead of the layer's clock (the clocks disagree), when it would
  end before it starts executing (``stamp + duration < now - playout_delay``), or when it is older
  than a stamped chunk already accepted (it would roll the command back).

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
from wm_control.trajectory import StampedChunk, TrajectoryChunk, sample_hermite

__all__ = [
    "FRANKA_JTC_KD",
    "FRANKA_JTC_KP",
    "REFUSAL_REASONS",
    "ImpedanceGains",
    "Refusal",
    "ServoSetpoints",
    "TrackingController",
]

# joint_trajectory_controller PID used by Franka's MoveIt setup (FRANKA.md).
FRANKA_JTC_KP = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
FRANKA_JTC_KD = (30.0, 30.0, 30.0, 30.0, 10.0, 10.0, 5.0)

# Why a stamped chunk is refused (see the module docstring).
REFUSAL_REASONS = ("future", "expired", "out_of_order")

# Stamps and the layer's clock are sums of servo periods; comparisons between them tolerate the
# rounding of those sums [s] (a nanosecond is far below a servo period and far above the rounding).
_TIME_EPS = 1e-9


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


class Refusal(NamedTuple):
    """A stamped chunk the tracking layer did not apply.

    reason: one of ``REFUSAL_REASONS``; stamp: the chunk's stamp [s]; now: the layer's clock when it
    arrived [s]; message: what was wrong, with the numbers.
    """

    reason: str
    stamp: float
    now: float
    message: str


class _Pending(NamedTuple):
    """An accepted stamped chunk whose stamp the layer's (delayed) clock has not reached yet."""

    chunk: StampedChunk
    due_in: float  # time from the last executed tick until the chunk takes over [s], > 0


class TrackingController:
    """Interpolates the active ``TrajectoryChunk`` at the servo rate and turns it into actuator commands.

    The controller holds the command state ``(q_d, dq_d)`` of the last executed tick, the active
    chunk, the state it starts from, the time since that start (for a stamped chunk: since its stamp,
    in the delayed clock), and the stamped chunks that are accepted but not due yet. Times are kept
    relative to the last executed tick, so the plain ``send`` path computes exactly what it always did.

    Args:
        h: servo period [s] (1 ms on the FR3).
        gains: impedance gains.
        playout_delay: how long after its stamp a stamped chunk takes over [s], in [0, 1]: the jitter
            buffer. A chunk delivered within it switches exactly at the previous chunk's first knot;
            it adds this much latency to every stamped chunk. 0: the newest chunk is evaluated at
            ``now - stamp`` (JTC).
    """

    def __init__(self, h: float, gains: ImpedanceGains = ImpedanceGains(), playout_delay: float = 0.0) -> None:
        check_range("TrackingController.h", h, 0.0, low_inclusive=False)
        check_range("TrackingController.playout_delay", playout_delay, 0.0, 1.0)
        self.h = float(h)
        self.playout_delay = float(playout_delay)
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
        """Hold ``q`` ``(7,)`` [rad] at rest, with no active or pending chunk."""
        q = np.asarray(q, dtype=np.float64)
        check_shape("TrackingController.reset q", q, (7,))
        self._cmd_q = q.copy()
        self._cmd_dq = np.zeros(7)
        self._chunk: TrajectoryChunk | None = None
        self._chunk_q0 = q.copy()
        self._chunk_dq0 = np.zeros(7)
        self._chunk_t = 0.0
        self._chunk_s0 = 0.0
        self._pending: list[_Pending] = []
        self._newest_stamp: float | None = None

    def rest_command(self, q: np.ndarray) -> np.ndarray:
        """Actuator command ``kp q`` [N m] ``(7,)`` that holds ``q`` ``(7,)`` [rad] at rest."""
        return self._kp * q

    @property
    def pending(self) -> int:
        """Stamped chunks accepted but not due yet (their stamp plus ``playout_delay`` is ahead)."""
        return len(self._pending)

    def send(self, chunk: TrajectoryChunk) -> None:
        """Replace the active trajectory with ``chunk`` (7 joints), starting from the current command state.

        Pending stamped chunks are dropped and stamp ordering starts afresh: the plain chunk is the
        newest command.

        Raises:
            InputError: the chunk is malformed (shapes, NaN, non-positive ``dt``).
        """
        chunk.validate(7)
        self._chunk = TrajectoryChunk(np.asarray(chunk.positions, float), np.asarray(chunk.velocities, float), chunk.dt)
        self._chunk_q0 = self._cmd_q.copy()
        self._chunk_dq0 = self._cmd_dq.copy()
        self._chunk_t = 0.0
        self._chunk_s0 = 0.0
        self._pending.clear()
        self._newest_stamp = None

    def send_stamped(self, chunk: StampedChunk, now: float) -> Refusal | None:
        """Accept a stamped chunk (7 joints) or refuse it (JTC header-stamp semantics, module docstring).

        An accepted chunk replaces the active trajectory at ``stamp + playout_delay``: at once if that
        is not after ``now`` (the next tick samples it at ``now + h - playout_delay - stamp``), else it
        waits as pending while the active trajectory continues. A chunk with the same stamp as an
        accepted one replaces it.

        Args:
            chunk: the chunk; its ``stamp`` is in the clock of ``now``.
            now: the layer's clock at the last executed tick [s].

        Returns:
            ``None`` when accepted, else the ``Refusal`` (nothing changed).

        Raises:
            InputError: the chunk is not for 7 joints.
        """
        check_shape("stamped chunk start_q", chunk.start_q, (7,))
        h, stamp, newest = self.h, chunk.stamp, self._newest_stamp
        run_at = now - self.playout_delay  # the clock stamped chunks execute in
        if stamp > now + h + _TIME_EPS:
            why = "future", f"stamp {stamp:.6f} s is more than one servo period after the clock {now:.6f} s"
        elif chunk.end < run_at - _TIME_EPS:
            why = "expired", f"chunk ends at {chunk.end:.6f} s, before it would start executing at {run_at:.6f} s"
        elif newest is not None and stamp < newest - _TIME_EPS:
            why = "out_of_order", f"stamp {stamp:.6f} s is older than the accepted stamp {newest:.6f} s"
        else:
            why = None
        if why is not None:
            return Refusal(why[0], stamp, now, why[1])
        self._newest_stamp = stamp
        # Pending stamps are older than this one or equal to it (a re-plan of the same tick, replaced).
        self._pending = [p for p in self._pending if p.chunk.stamp < stamp - _TIME_EPS]
        due_in = stamp - run_at
        if due_in > _TIME_EPS:
            self._pending.append(_Pending(chunk, due_in))
        else:
            # Due now: older pending chunks would be due already and were activated by ``commit``.
            self._pending.clear()
            self._activate(chunk, run_at - stamp, (self._cmd_q, self._cmd_dq), run_at - stamp)
        return None

    def _activate(self, chunk: StampedChunk, elapsed: float, before: tuple[np.ndarray, np.ndarray], at: float) -> None:
        """Make ``chunk`` the active trajectory, ``elapsed`` [s] after its stamp at the last executed
        tick. It takes over from the command state ``before = (q, dq)``, which is that of time ``at``
        [s] after the stamp (``_join``).
        """
        self._chunk = chunk.chunk
        self._chunk_q0, self._chunk_dq0, self._chunk_s0 = _join(chunk, before, at)
        self._chunk_t = elapsed

    def setpoints(self, n: int) -> ServoSetpoints:
        """Setpoints of the next ``n`` ticks, without executing them (see ``commit``).

        Without an active chunk the command position is held at zero velocity; after the chunk's
        last knot its last position is held. From the tick at a pending chunk's stamp (plus the
        playout delay) on, that chunk governs.
        """
        if n < 1:
            raise InputError(f"setpoints n={n!r} ticks; expected n >= 1")
        if self._chunk is None:
            q = np.repeat(self._cmd_q[None], n, axis=0)
            dq = np.zeros_like(q)
        else:
            times = self._chunk_t + self.h * np.arange(1, n + 1)
            q, dq = _sample(self._chunk_q0, self._chunk_dq0, self._chunk_s0, self._chunk, times)
        if self._pending:
            ticks = self.h * np.arange(1, n + 1)
            for p in self._pending:  # oldest first, so the newest due chunk writes last
                first = int(np.searchsorted(ticks, p.due_in + _TIME_EPS))
                if first < n:
                    c = p.chunk
                    before = (q[first - 1], dq[first - 1]) if first else (self._cmd_q, self._cmd_dq)
                    q0, dq0, s0 = _join(c, before, (ticks[first - 1] if first else 0.0) - p.due_in)
                    q[first:], dq[first:] = _sample(q0, dq0, s0, c.chunk, ticks[first:] - p.due_in)
        return ServoSetpoints(q, dq, self._kp * q + self._kd * dq)

    def commit(self, setpoints: ServoSetpoints, ticks: int) -> None:
        """Mark the first ``ticks`` rows of ``setpoints`` as executed.

        Args:
            setpoints: the result of the last ``setpoints`` call (no ``send``, ``send_stamped`` or ``reset`` since).
            ticks: how many of its ticks ran, in ``[0, len(setpoints.q)]``; the command state
                becomes that of the last one.
        """
        if not 0 <= ticks <= len(setpoints.q):
            raise InputError(f"commit ticks={ticks!r} is out of range; valid: [0, {len(setpoints.q)}]")
        if ticks == 0:
            return
        previous = (self._cmd_q, self._cmd_dq)
        self._cmd_q, self._cmd_dq = setpoints.q[ticks - 1].copy(), setpoints.dq[ticks - 1].copy()
        if not self._pending:
            self._chunk_t += ticks * self.h
            return
        ran = self.h * ticks
        due = [p for p in self._pending if p.due_in - _TIME_EPS <= ran]  # as in ``setpoints``
        if due:
            first = int(np.searchsorted(self.h * np.arange(1, ticks + 1), due[-1].due_in + _TIME_EPS))
            before = (setpoints.q[first - 1], setpoints.dq[first - 1]) if first else previous
            at = (self.h * first if first else 0.0) - due[-1].due_in
            self._activate(due[-1].chunk, ran - due[-1].due_in, before, at)
        else:
            self._chunk_t += ticks * self.h
        self._pending = [_Pending(p.chunk, p.due_in - ran) for p in self._pending[len(due) :]]


def _join(
    chunk: StampedChunk, before: tuple[np.ndarray, np.ndarray], at: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Where a stamped chunk's spline starts when it takes over from the command state ``before`` of
    time ``at`` [s] after its stamp: ``(q0, dq0, s0)``, the state and its time after the stamp.

    Like joint_trajectory_controller, the layer runs from its own command to the chunk's first knot
    (a cubic Hermite over ``[at, dt]``) while the switch is early in the first segment
    (``at < dt / 2``): the state the controller planned from differs from the layer's by the tracking
    error it measured (a start from rest) or by the switch falling between servo ticks, and a step of
    5 urad within one servo period is a jerk of 5000 rad/s^3. A later switch starts from the chunk's
    own start state (a step, see the module docstring).
    """
    if at < 0.5 * chunk.chunk.dt:
        return before[0].copy(), before[1].copy(), float(at)
    return chunk.start_q, chunk.start_dq, 0.0


def _sample(
    q0: np.ndarray, dq0: np.ndarray, s0: float, chunk: TrajectoryChunk, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities ``(m, 7)`` of the spline from ``(q0, dq0)`` at time ``s0`` through the
    knots of ``chunk`` at ``dt, 2 dt, ...``, at ``times`` [s] (all on the chunk's clock, ``s0 < dt``).
    """
    if s0 == 0.0:
        sample = sample_hermite(q0, dq0, chunk, times)
        return sample.q, sample.dq
    first = times < chunk.dt
    q = np.empty((len(times), 7))
    dq = np.empty((len(times), 7))
    if first.any():
        lead = TrajectoryChunk(chunk.positions[:1], chunk.velocities[:1], chunk.dt - s0)
        head = sample_hermite(q0, dq0, lead, times[first] - s0)
        q[first], dq[first] = head.q, head.dq
    if not first.all():
        tail = sample_hermite(q0, dq0, chunk, times[~first])  # past the first knot q0 and dq0 play no part
        q[~first], dq[~first] = tail.q, tail.dq
    return q, dq
