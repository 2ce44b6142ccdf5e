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
  that arrives later still is evaluated at its own time, but the previous chunk has moved on since
  the stamp: the difference in position and velocity (and that of a chunk starting from a measured
  rest position a friction band away from the held one) is carried as an offset that decays to zero
  over ``JOIN_TIME`` (``_offset``), so the command stays continuous in position, velocity and
  acceleration; a large difference decays more slowly, so that the offset adds at most
  ``JOIN_BUDGET`` of the FR3's acceleration and jerk limits to the chunk's own (``join_time``).
  (Jumping to the late chunk, or JTC's cubic from the layer's command to the chunk's first knot,
  steps the position or the acceleration: replayed from a recorded ROS run, a chunk 3 ms past a 30 ms
  delay tripped the jerk reflex.) A chunk is refused (``Refusal``: not applied, the
  active trajectory continues) when its stamp is more than one servo period ahead of the layer's
  clock (the clocks disagree), when it would end before it starts executing (``stamp + duration <
  now - playout_delay``), when it is older than a stamped chunk already accepted (it would roll
  the command back), or when it starts so far from the command where it takes over that the join
  would need longer than ``JOIN_TIME_MAX`` to stay within its budget (``"unjoinable"``: a chunk far
  past its playout delay while the arm accelerates, or one planned from a command this layer never
  executed, e.g. a burst of old chunks a restarted robot receives when DDS delivers what was sent
  before it listened; joined, they tripped the acceleration reflex). Every chunk ends at rest, so
  the active one brakes the arm within the limits, and the controller, seeing the robot stop away
  from its commands, starts afresh from the measured state (``wm_control.runtime.commander``).

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
from wm_control.robot import FR3
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
REFUSAL_REASONS = ("future", "expired", "out_of_order", "unjoinable")

# How long a join offset takes to decay at least [s] (``_offset``), and the difference below which a
# take-over counts as exact (a chunk that starts where the command is, as consecutive chunks of a
# generator do).
JOIN_TIME = 0.2
_JOIN_EPS = 1e-12
# The longest a join offset takes to decay [s]: a longer one would move the command far from both
# chunks (the velocity difference integrates to a position excursion of about 0.19 |v| T). A chunk
# whose join needs longer to stay within ``JOIN_BUDGET`` is refused as ``"unjoinable"``.
JOIN_TIME_MAX = 0.4
# The share of the FR3's acceleration and jerk limits a join offset may add to the chunk's own: chunks
# are shaped to 0.8 of the limits (ChunkConfig), so chunk + offset stay below 0.95 of them.
JOIN_BUDGET = 0.15
# Peaks over x in [0, 1] of the second and third derivatives of the quintic join's basis functions
# (``_offset``: h0 = 1 - 10 x^3 + 15 x^4 - 6 x^5, h1 = x - 6 x^3 + 8 x^4 - 3 x^5).
_D2H0, _D2H1, _D3H0, _D3H1 = 10 / 3**0.5, 3.95, 60.0, 36.0

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
    in the delayed clock), the join offset added to it (``_offset``), and the stamped chunks that
    are accepted but not due yet. Times are kept
    relative to the last executed tick, so the plain ``send`` path computes exactly what it always did.

    Args:
        h: servo period [s] (1 ms on the FR3).
        gains: impedance gains.
        playout_delay: how long after its stamp a stamped chunk takes over [s], in [0, 1]: the jitter
            buffer. A chunk delivered within it switches exactly at the previous chunk's first knot
            (a later one with a decaying offset); it adds this much latency to every stamped chunk.
            0: the newest chunk is evaluated at ``now - stamp`` (JTC).
    """

    def __init__(self, h: float, gains: ImpedanceGains = ImpedanceGains(), playout_delay: float = 0.0) -> None:
        check_range("TrackingController.h", h, 0.0, low_inclusive=False)
        check_range("TrackingController.playout_delay", playout_delay, 0.0, 1.0)
        self.h = float(h)
        self.playout_delay = float(playout_delay)
        self._join_acc = JOIN_BUDGET * np.asarray(FR3.limits.ddq_max, dtype=np.float64)
        self._join_jerk = JOIN_BUDGET * np.asarray(FR3.limits.dddq_max, dtype=np.float64)
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
        self._off_p = np.zeros(7)  # the join offset (see ``_offset``) at its start: position [rad], velocity [rad/s]
        self._off_v = np.zeros(7)
        self._off_t = 0.0  # time since the offset started, at the last executed tick [s]
        self._off_T = JOIN_TIME  # how long the offset takes to decay [s] (``join_time``)
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
        self._off_p, self._off_v, self._off_t, self._off_T = np.zeros(7), np.zeros(7), 0.0, JOIN_TIME
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
        # Pending stamps are older than this one or equal to it (a re-plan of the same tick, replaced).
        kept = [p for p in self._pending if p.chunk.stamp < stamp - _TIME_EPS]
        due_in, elapsed = stamp - run_at, run_at - stamp
        if due_in > _TIME_EPS:
            pending = [*kept, _Pending(chunk, due_in)]
            _, _, dp, dv, _ = self._switches(due_in, pending)[-1]
        else:
            # Due now: older pending chunks would be due already and were activated by ``commit``.
            pending = []
            new = sample_hermite(chunk.start_q, chunk.start_dq, chunk.chunk, np.array([elapsed]))
            dp, dv = self._cmd_q - new.q[0], self._cmd_dq - new.dq[0]
        need = self._join_need(dp, dv)
        if need > JOIN_TIME_MAX:
            return Refusal(
                "unjoinable",
                stamp,
                now,
                f"chunk starts {np.abs(dp).max():.3g} rad and {np.abs(dv).max():.3g} rad/s away from the command "
                f"where it takes over ({max(-due_in, 0.0) * 1e3:.0f} ms past its playout delay); joining it within "
                f"the limits would take {need:.2f} s, more than {JOIN_TIME_MAX} s",
            )
        self._newest_stamp = stamp
        self._pending = pending
        if not pending:
            self._take_over(chunk, elapsed, dp, dv, 0.0)
        return None

    def _take_over(self, chunk: StampedChunk, elapsed: float, dp: np.ndarray, dv: np.ndarray, off_t: float) -> None:
        """Make ``chunk`` the active trajectory, ``elapsed`` [s] after its stamp at the last executed
        tick, with the join offset ``(dp, dv)`` that started ``off_t`` [s] before that tick.
        """
        self._chunk = chunk.chunk
        self._chunk_q0, self._chunk_dq0, self._chunk_t = chunk.start_q, chunk.start_dq, elapsed
        small = max(np.abs(dp).max(), np.abs(dv).max()) <= _JOIN_EPS
        self._off_p, self._off_v = (np.zeros(7), np.zeros(7)) if small else (dp.copy(), dv.copy())
        self._off_t, self._off_T = off_t, self.join_time(dp, dv)

    def join_time(self, p: np.ndarray, v: np.ndarray) -> float:
        """How long a join offset of ``p`` [rad], ``v`` [rad/s] ``(7,)`` takes to decay [s]: ``JOIN_TIME``,
        or longer where the offset's own acceleration or jerk would exceed ``JOIN_BUDGET`` of the FR3's
        limits (a chunk past its playout delay while the arm accelerates: the offset decays more
        slowly instead of tripping a reflex), at most ``JOIN_TIME_MAX`` (``send_stamped`` refuses a
        chunk that would need longer).
        """
        return min(JOIN_TIME_MAX, max(JOIN_TIME, self._join_need(p, v)))

    def _join_need(self, p: np.ndarray, v: np.ndarray) -> float:
        """The shortest decay time [s] that keeps a join offset of ``p`` [rad], ``v`` [rad/s] ``(7,)``
        within the budget: each term of the offset keeps to half of it, ``|p| D2H0 / T^2 + |v| D2H1 / T
        <= a`` and ``|p| D3H0 / T^3 + |v| D3H1 / T^2 <= j`` per joint.
        """
        p, v = np.abs(p), np.abs(v)
        a, j = self._join_acc, self._join_jerk
        need = np.maximum.reduce([
            np.sqrt(2 * _D2H0 * p / a), 2 * _D2H1 * v / a, np.cbrt(2 * _D3H0 * p / j), np.sqrt(2 * _D3H1 * v / j)
        ])  # fmt: skip
        return float(need.max())

    def _switches(
        self, horizon: float, pending: list[_Pending] | None = None
    ) -> list[tuple[float, _Pending, np.ndarray, np.ndarray, float]]:
        """The ``pending`` chunks (default: those accepted) that take over within ``horizon`` [s] of the
        last executed tick, in order, each with the join offset it starts with: the command (the piece
        before it, offset included) minus the chunk's own start state, at its stamp (plus the playout
        delay), and its decay time.
        """
        out = []
        q0, dq0, chunk, t0 = self._chunk_q0, self._chunk_dq0, self._chunk, self._chunk_t
        op, ov, ot0, oT, origin = self._off_p, self._off_v, self._off_t, self._off_T, 0.0
        for p in self._pending if pending is None else pending:
            if p.due_in - _TIME_EPS > horizon:
                break
            tau = np.array([p.due_in])
            if chunk is None:
                uq, udq = self._cmd_q, np.zeros(7)
            else:
                old = sample_hermite(q0, dq0, chunk, t0 + tau)
                uq, udq = old.q[0], old.dq[0]
            ep, ev = _offset(op, ov, ot0 + tau - origin, oT)
            dp, dv = uq + ep[0] - p.chunk.start_q, udq + ev[0] - p.chunk.start_dq
            join = self.join_time(dp, dv)
            out.append((p.due_in, p, dp, dv, join))
            q0, dq0, chunk, t0 = p.chunk.start_q, p.chunk.start_dq, p.chunk.chunk, -p.due_in
            op, ov, ot0, oT, origin = dp, dv, 0.0, join, p.due_in
        return out

    def setpoints(self, n: int) -> ServoSetpoints:
        """Setpoints of the next ``n`` ticks, without executing them (see ``commit``).

        Without an active chunk the command position is held at zero velocity; after the chunk's
        last knot its last position is held. From the tick at a pending chunk's stamp (plus the
        playout delay) on, that chunk governs.
        """
        if n < 1:
            raise InputError(f"setpoints n={n!r} ticks; expected n >= 1")
        ticks = self.h * np.arange(1, n + 1)
        if self._chunk is None:
            q = np.repeat(self._cmd_q[None], n, axis=0)
            dq = np.zeros_like(q)
        else:
            sample = sample_hermite(self._chunk_q0, self._chunk_dq0, self._chunk, self._chunk_t + ticks)
            q, dq = sample.q, sample.dq
        if np.any(self._off_p) or np.any(self._off_v):
            ep, ev = _offset(self._off_p, self._off_v, self._off_t + ticks, self._off_T)
            q, dq = q + ep, dq + ev
        for due_in, p, dp, dv, join in self._switches(float(ticks[-1])):  # oldest first: the newest writes last
            first = int(np.searchsorted(ticks, due_in + _TIME_EPS))
            if first < n:
                c, times = p.chunk, ticks[first:] - due_in
                new = sample_hermite(c.start_q, c.start_dq, c.chunk, times)
                q[first:], dq[first:] = new.q, new.dq
                if max(np.abs(dp).max(), np.abs(dv).max()) > _JOIN_EPS:
                    ep, ev = _offset(dp, dv, times, join)
                    q[first:] += ep
                    dq[first:] += ev
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
        ran = self.h * ticks
        switches = self._switches(ran)  # from the state before this commit, as ``setpoints`` saw it
        self._cmd_q, self._cmd_dq = setpoints.q[ticks - 1].copy(), setpoints.dq[ticks - 1].copy()
        if switches:
            due_in, p, dp, dv, _ = switches[-1]
            self._take_over(p.chunk, ran - due_in, dp, dv, ran - due_in)
        else:
            self._chunk_t += ran
            self._off_t += ran
        self._pending = [_Pending(p.chunk, p.due_in - ran) for p in self._pending[len(switches) :]]


def _offset(p: np.ndarray, v: np.ndarray, tau: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
    """The join offset at times ``tau`` [s] ``(m,)`` after it started: position and velocity ``(m, 7)``.

    When a chunk takes over from a command that is not where the chunk starts (it arrived after its
    stamp plus the playout delay, so the previous chunk has moved on; or it starts from a measured rest
    position a friction band away from the held one), the difference ``p`` [rad], ``v`` [rad/s] is
    added to the chunk and decays to zero over ``T`` [s] (``TrackingController.join_time``) along a
    quintic with zero acceleration at both ends and zero velocity at the end: the command stays
    continuous in position, velocity and acceleration (joint_trajectory_controller's cubic join from
    its own command steps the acceleration: a chunk 3 ms past the delay then tripped the jerk reflex).
    """
    x = np.clip(np.asarray(tau, dtype=np.float64) / T, 0.0, 1.0)[:, None]
    x2, x3, x4, x5 = x * x, x**3, x**4, x**5
    h0, h1 = 1 - 10 * x3 + 15 * x4 - 6 * x5, x - 6 * x3 + 8 * x4 - 3 * x5
    d0, d1 = (-30 * x2 + 60 * x3 - 30 * x4) / T, 1 - 18 * x2 + 32 * x3 - 15 * x4
    return p * h0 + v * T * h1, p * d0 + v * d1
