"""The deadline-aware control loop: measured joint state + goal -> one trajectory chunk per tick.

Each ``ControlLoop.step`` has a budget of ``dt - margin`` seconds from the moment it is called. The
loop checks its inputs (``wm_control.runtime.checks``), builds the observation with the task's
``Observer``, asks the fallback chain (``wm_control.runtime.fallback``: ``MPPI`` -> ``PARTIAL`` ->
``POLICY`` -> ``SHIFTED`` -> ``HOLD``) for the best action predicted to be ready in time, turns it into
a chunk, and counts what happened. Planning stops early by the predicted cost of the chunk
generation, so the command is ready by the deadline; a full solve that was predicted to fit but ends
late is still used (a "deadline miss").

Stale or non-finite input, bad shapes, a hold request, a backend exception, non-finite, misshapen or
out-of-range backend output: none of them raises out of ``step``; each becomes a fallback with a
reason, and is counted (``ControlLoop.counters``, published on ``/diagnostics`` by the node).

The action becomes a chunk exactly as in training (``sim/env.py``): ``generator.generate(command,
action)`` and the command state moves to the result's ``next_state``; the observation is built from
the command state at the start of the tick, as the env does. Only numpy and ``wm_control`` are used:
this runs on a robot PC that has onnxruntime and nothing else.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from wm_control.chunking import ChunkGenerator, CommandState
from wm_control.config import to_dict
from wm_control.errors import ConfigError, InputError, ModelContractError, check_range
from wm_control.observation import Observer
from wm_control.runtime.arrival import AT_GOAL
from wm_control.runtime.backend import Backend
from wm_control.runtime.checks import Fault, Reason, StampCheck, check_goal, check_plausible, check_vector
from wm_control.runtime.fallback import Decision, FallbackChain, FallbackLevel
from wm_control.trajectory import TrajectoryChunk

__all__ = ["Command", "ControlLoop", "FallbackLevel", "LoopConfig", "TickStats"]


@dataclass(frozen=True)
class LoopConfig:
    """Timing and planning options of the control loop.

    dt: control period [s]; no default: it is the model contract's ``dt`` (and the chunk generator's).
    margin: time kept free at the end of each period [s] (sending, jitter); budget = ``dt - margin``.
    stale_timeout: a joint state measured more than this before the tick starts makes the loop hold
        [s]; so does one stamped more than this in the future (clock mismatch).
    anytime: allow ``PARTIAL`` solves; ``False``: either a full solve or the policy prior.
    explore: add exploration noise to the executed action (training only; always ``False`` on a robot).
    seed: seed of the loop's ``numpy.random.Generator`` that draws the planner noise.
    prepare: let ``ControlLoop.prepare``, called between ticks, run all MPPI iterations but the last of
        the next tick's solve on the measured state extrapolated one period ahead; the tick then
        encodes the measured state and runs the last iteration on it (see ``FallbackChain.prepare``).
        Off: ``prepare`` does nothing and every tick solves from scratch.
    latency_window: ticks of latency history that predict a call's cost [ticks].
    latency_quantile: the prediction is this quantile of the measurements of the current tick and
        the ``latency_window`` before it (the ``ceil(q n)``-th smallest of ``n``; 1.0: the worst).
        With the default 0.9 over 50 ticks, spikes in fewer than 5 of 50 ticks do not stop full
        solves; when one lands in a solve it is used late and counted as a deadline miss.
    """

    dt: float
    margin: float = 0.004
    stale_timeout: float = 0.05
    anytime: bool = True
    explore: bool = False
    seed: int = 0
    prepare: bool = False
    latency_window: int = 50
    latency_quantile: float = 0.9

    def __post_init__(self) -> None:
        check_range("LoopConfig.dt", self.dt, 0.0, 1.0, low_inclusive=False)
        check_range("LoopConfig.margin", self.margin, 0.0, self.dt, high_inclusive=False)
        check_range("LoopConfig.stale_timeout", self.stale_timeout, 0.0, 60.0, low_inclusive=False)
        check_range("LoopConfig.seed", self.seed, 0, 2**63 - 1)
        check_range("LoopConfig.latency_window", self.latency_window, 1, 1_000_000)
        check_range("LoopConfig.latency_quantile", self.latency_quantile, 0.0, 1.0, low_inclusive=False)

    @property
    def budget(self) -> float:
        """Time a tick may take from the call of ``step`` to the returned command [s]."""
        return self.dt - self.margin


class TickStats(NamedTuple):
    """Diagnostics of one tick.

    latency_s: time from the call of ``step`` to its return [s].
    plan_latency_s: time spent inside backend calls this tick [s].
    iterations: MPPI iterations completed (``planner.iterations`` for ``MPPI``, 0 below ``PARTIAL``).
    level: the fallback level that produced the action.
    reason: why the level is not ``MPPI`` (``""`` when it is); several causes are joined by ``"; "``.
    elite_value_mean: mean value of the elite trajectories of the solve used; NaN without a solve.
    deadline_miss: the command was ready after ``start + dt - margin``.
    state_age_s: clock time at the tick start minus the joint state's timestamp [s]; NaN if unknown.
    """

    latency_s: float
    plan_latency_s: float
    iterations: int
    level: FallbackLevel
    reason: str
    elite_value_mean: float
    deadline_miss: bool = False
    state_age_s: float = math.nan


class _Next(NamedTuple):
    """What a planned tick leaves for ``ControlLoop.prepare``: its measurement (time, position,
    velocity), an acceleration estimate from the tick before, and its goal.
    """

    t: float
    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray
    goal: np.ndarray
    start: float  # when the tick started, on the loop's clock [s]


class Command(NamedTuple):
    """The output of one tick.

    chunk: knots for the 1 kHz layer (``TrajectoryChunk``: positions [rad], velocities [rad/s] at
        ``dt, 2 dt, ...``). Empty (0 knots: send nothing) only on a ``HOLD`` before any valid ``q``.
    action: ``(A,)`` normalised velocity target in [-1, 1] that made the chunk (zeros on ``HOLD``).
    level, reason: as in ``stats``.
    stats: diagnostics of the tick.
    start: the command state the chunk starts from (where the previous chunk's first knot was);
        ``None`` with an empty chunk.
    """

    chunk: TrajectoryChunk
    action: np.ndarray
    level: FallbackLevel
    reason: str
    stats: TickStats
    start: CommandState | None = None


class ControlLoop:
    """One robot's planner tick: checks, the fallback chain, the command state and the counters.

    ``wm_control.runtime.controller.control_loop`` builds all of it from a model's contract.

    Args:
        backend: the loaded model (any ``Backend``); its contract must match the robot and rate.
        generator: turns actions into chunks; owns the robot description, velocity scaling and chunk
            shaping.
        observer: the task's observation builder (``wm_control.observation.observer_for``); it defines
            what ``goal`` is.
        config: timing and planning options; ``config.dt`` is the contract's.
        clock: monotonic time [s]; the time base of the ``t`` passed to ``step``.

    Raises:
        ModelContractError: the model's contract differs from the robot, ``dt``, the observation
            layout, the velocity scaling or the chunk shaping (the message names the field).
        ConfigError: the generator's ``dt`` differs from ``config.dt``, or the backend has < 2 Q heads.
    """

    def __init__(
        self,
        backend: Backend,
        generator: ChunkGenerator,
        observer: Observer,
        config: LoopConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        spec = generator.spec
        backend.contract.check(
            robot=spec.name,
            joint_names=spec.joint_names,
            dt=config.dt,
            observation=observer.layout.to_dict(),
            velocity_scale=generator.velocity_scale,
            chunk=to_dict(generator.config),
        )
        if observer.layout.size != backend.obs_dim:
            raise ModelContractError(
                f"backend obs_dim={backend.obs_dim}; layout {observer.layout.name!r} has {observer.layout.size} entries"
            )
        if not math.isclose(generator.dt, config.dt, rel_tol=1e-9, abs_tol=1e-12):
            raise ConfigError(f"ChunkGenerator dt={generator.dt} s differs from LoopConfig.dt={config.dt} s")
        if backend.action_dim != spec.dof:
            raise ModelContractError(
                f"backend action_dim={backend.action_dim}; robot {spec.name!r} has {spec.dof} joints"
            )
        if backend.num_q < 2:
            raise ConfigError(f"backend num_q={backend.num_q}; the planner needs >= 2 Q heads")
        self.backend = backend
        self.generator = generator
        self.config = config
        self._observer = observer
        self._clock = clock
        self._chain = FallbackChain(
            backend,
            clock,
            anytime=config.anytime,
            explore=config.explore,
            seed=config.seed,
            latency_window=config.latency_window,
            latency_quantile=config.latency_quantile,
        )
        self._counters: Counter[str] = Counter()
        self._command: CommandState | None = None
        self._fault = ""
        self._last_stats: TickStats | None = None
        self._stamps = StampCheck(config.stale_timeout)
        self._measured: tuple[float, np.ndarray] | None = None  # (t, dq) of the tick before
        self._next: _Next | None = None  # what the tick just run leaves to predict the next one from
        self._prepared_for: tuple[float, np.ndarray] | None = None  # (t, goal) the prepared solve assumed

    # --- public ---------------------------------------------------------------------------------
    @property
    def counters(self) -> dict[str, int]:
        """Ticks per level name (``"MPPI"`` ... ``"HOLD"``), per reason (``"budget"``, ``"stale state"``,
        ``"non-finite input: q"``, ``"backend error: RuntimeError"``, ...), plus ``"ticks"``,
        ``"deadline miss"`` and ``"recovery"`` (first tick that is not ``HOLD`` after a ``HOLD``).
        """
        return dict(self._counters)

    @property
    def last_stats(self) -> TickStats | None:
        """Diagnostics of the last tick (``None`` before the first)."""
        return self._last_stats

    @property
    def command_state(self) -> CommandState | None:
        """Command state the next chunk starts from (``None`` before the first valid ``q``)."""
        return self._command

    @property
    def fault(self) -> str:
        """Reason of the ``HOLD`` in effect; ``""`` when the last tick was not a ``HOLD``."""
        return self._fault

    def override_command(self, state: CommandState, *, keep_plan: bool = False) -> None:
        """Continue from ``state`` instead of the command state the last chunk led to: where the
        command really is (what was sent, sampled when the next tick starts: a brake of the safety
        layer instead of the loop's chunk, a late tick). The warm start is dropped unless
        ``keep_plan`` (the state is the one the plan went on from, up to timing).

        Raises:
            InputError: ``state`` is not finite or has the wrong shape.
        """
        arrays = []
        for name, value in zip(state._fields, state, strict=True):
            arr, reason = check_vector(name, value, self.generator.spec.dof)
            if arr is None:
                assert reason is not None
                raise InputError(f"override_command: {reason.text}")
            arrays.append(arr)
        self._command = CommandState(*arrays)
        if not keep_plan:
            self._chain.reset()

    def reset(self, q: np.ndarray) -> None:
        """Start from rest at ``q (n,)`` [rad]: command state ``generator.rest(q)``, warm start zeros,
        no fault, no previous measurement time (a new episode's clock may start over). Counters and
        the noise generator carry on.

        Raises:
            InputError: ``q`` has the wrong shape, is not finite or not a plausible state of the robot.
        """
        arr, reason = check_vector("q", q, self.generator.spec.dof)
        if arr is None:
            assert reason is not None
            raise InputError(f"reset: {reason.text}")
        reason = check_plausible(self.generator.spec, arr, np.zeros_like(arr))
        if reason is not None:
            raise InputError(f"reset: {reason.text}")
        self._command = self.generator.rest(arr)
        self._chain.reset()
        self._fault = ""
        self._stamps.reset()
        self._measured = self._next = self._prepared_for = None

    def step(
        self,
        t: float,
        q: np.ndarray,
        dq: np.ndarray,
        goal: np.ndarray,
        *,
        hold: bool | str = False,
        retreat: tuple[np.ndarray, str] | None = None,
    ) -> Command:
        """Run one tick; never raises for bad input or a backend fault (those become ``HOLD`` or a
        fallback, with a reason).

        Args:
            t: when ``q``, ``dq`` were measured, in the time base of ``clock`` [s].
            q, dq: ``(n,)`` measured joint positions [rad] and velocities [rad/s].
            goal: the goal the observation is built with (``(3,)`` [m] in the base frame by default).
            hold: hold requested (e-stop or pause): brake to rest until a tick without it; a string is
                the hold's reason (counted and reported instead of ``"hold requested"``).
            retreat: ``(action, reason)``: send ``action`` ``(A,)`` (in [-1, 1], without the posture
                pull) instead of planning, as level ``RETREAT`` with ``reason`` (counted); a fault or a
                hold still holds (``wm_control.runtime.retreat`` chooses it).

        Returns:
            ``Command`` with the chunk to send and the tick's diagnostics.

        Raises:
            InputError: ``retreat`` has a malformed action (the caller's bug, not the robot's input).
        """
        if retreat is not None:
            action, why = retreat
            retreat_action = np.asarray(action, dtype=np.float64)
            if retreat_action.shape != (self.backend.action_dim,) or not np.all(np.abs(retreat_action) <= 1.0):
                raise InputError(f"step: retreat action {action!r} must be ({self.backend.action_dim},) in [-1, 1]")
        start = self._clock()
        deadline = start + self.config.budget
        self._chain.begin_tick()
        self._counters["ticks"] += 1
        obs = np.empty(0, dtype=np.float32)
        arrays, input_fault = self._check_inputs(q, dq, goal)
        age, time_fault = self._stamps.check(t, start)
        fault = input_fault or time_fault
        if fault is None and hold:
            why = hold if isinstance(hold, str) else "hold requested"
            fault = Reason(why, why)
        if fault is None:
            try:
                obs = self._build_observation(*arrays)
            except Fault as exc:
                fault = exc.reason
        self._next, prepared_for, self._prepared_for = None, self._prepared_for, None
        if fault is not None:
            return self._finish(start, deadline, age, self._chain.hold(), [fault])
        q_arr, dq_arr, goal_arr = arrays
        if prepared_for is not None and self._chain.prepared is not None:
            t_pred, goal_pred = prepared_for
            if abs(float(t) - t_pred) > 0.5 * self.config.dt or not np.array_equal(goal_arr, goal_pred):
                self._chain.discard_prepared()  # prepared for another time or goal
                self._counters["prepared solve discarded"] += 1
        if retreat is not None:
            return self._finish(start, deadline, age, self._chain.retreat(retreat_action), [Reason(why, why)])
        # The chunk must be ready by the deadline: planning stops early by the generator's cost.
        plan_deadline = deadline - (self._chain.predict("generate") or 0.0)
        decision, reasons = self._chain.decide(obs, plan_deadline)
        command = self._finish(start, deadline, age, decision, reasons)
        if self.config.prepare:  # what prepare() predicts from; nothing to keep with the option off
            if command.level != FallbackLevel.HOLD:
                self._next = _Next(float(t), q_arr, dq_arr, self._acceleration(float(t), dq_arr), goal_arr, start)
            self._measured = (float(t), dq_arr)
        return command

    def prepare(self) -> float:
        """Prepare the next tick's solve (with ``LoopConfig.prepare``; call it after ``step``, between
        ticks): the measured state of the tick just run is extrapolated one period ahead (its velocity,
        and the acceleration between it and the tick before, within the robot's limits), the
        observation built from it with the command state the next chunk starts from, and all MPPI
        iterations but the last run on it. The next ``step`` encodes its own measurement and runs the
        last iteration on it. Nothing is prepared when the option is off, the planner has one
        iteration, the tick held, or its first call is predicted to end after the next tick is due (one
        period after this one started; counted, ``"prepare skipped: budget"``): iterations that end
        later than that delay the next tick by less than they save it. A prepared solve is
        dropped when the next tick's state was measured more than half a period away from the
        predicted time (counted, ``"prepared solve discarded"``), its goal differs (likewise), the
        command state is reset, or the tick holds. A backend fault here prepares nothing and is
        counted (``"prepare failed: <reason>"``); the next tick then solves from scratch.

        Returns:
            The time spent [s] (0 when nothing was tried).
        """
        nxt, self._next = self._next, None
        self._prepared_for = None
        self._chain.discard_prepared()
        iterations = self.backend.planner.iterations - 1
        if not self.config.prepare or nxt is None or iterations < 1 or self._command is None:
            return 0.0
        start = self._clock()
        dt = self.config.dt
        q, dq = nxt.q + dt * nxt.dq + 0.5 * dt * dt * nxt.ddq, nxt.dq + dt * nxt.ddq
        try:
            obs = self._build_observation(q, dq, nxt.goal)
            if self._chain.prepare(obs, iterations, nxt.start + dt):
                self._prepared_for = (nxt.t + dt, nxt.goal)
            else:
                self._counters["prepare skipped: budget"] += 1
        except Fault as exc:
            self._counters[f"prepare failed: {exc.reason.key}"] += 1
        return self._clock() - start

    def _acceleration(self, t: float, dq: np.ndarray) -> np.ndarray:
        """The joint accelerations between the last tick's measurement and this one [rad/s^2], within
        the robot's limits; zeros when there is no measurement up to two periods before.
        """
        limit = self.generator.spec.limits.ddq_max
        if self._measured is None:
            return np.zeros_like(dq)
        t0, dq0 = self._measured
        gap = t - t0
        if not 0.0 < gap <= 2.0 * self.config.dt:
            return np.zeros_like(dq)
        return np.clip((dq - dq0) / gap, -limit, limit)

    # --- checks ---------------------------------------------------------------------------------
    def _check_inputs(
        self, q: object, dq: object, goal: object
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], Reason | None]:
        """Shapes, finiteness, a real dtype, a plausible state of this robot, a goal in the workspace."""
        spec = self.generator.spec
        q_arr, fault = check_vector("q", q, spec.dof)
        dq_arr, dq_fault = check_vector("dq", dq, spec.dof)
        goal_arr, goal_fault = check_vector("goal", goal, self._observer.goal_size)
        fault = fault or dq_fault or goal_fault
        if fault is not None or q_arr is None or dq_arr is None or goal_arr is None:
            empty = np.empty(0)
            return (empty, empty, empty), fault
        fault = check_plausible(spec, q_arr, dq_arr)
        if fault is None and self._command is None:
            self.reset(q_arr)  # the command state starts at the first valid measurement
        fault = fault or check_goal(goal_arr, self.backend.contract.goal)
        return (q_arr, dq_arr, goal_arr), fault

    def _build_observation(self, q: np.ndarray, dq: np.ndarray, goal: np.ndarray) -> np.ndarray:
        assert self._command is not None, "set from the first valid q"
        try:
            obs = self._observer(q, dq, goal, self._command)
        except Exception as exc:  # a user-supplied builder: its failure must hold, not stop the loop
            name = type(exc).__name__
            raise Fault(f"observation error: {name}", f"observation error: {name}: {exc}") from exc
        arr = np.asarray(obs, dtype=np.float32)
        if arr.shape != (self.backend.obs_dim,):
            raise Fault(
                "wrong shape: observation",
                f"wrong shape: observation has shape {arr.shape}; expected ({self.backend.obs_dim},)",
            )
        if not np.isfinite(arr).all():
            raise Fault("non-finite observation")
        return arr

    # --- the command ---------------------------------------------------------------------------
    def _finish(self, start: float, deadline: float, age: float, decision: Decision, reasons: list[Reason]) -> Command:
        level = decision.level
        reason = "; ".join(r.text for r in reasons)
        self._chain.commit(decision)
        if level == FallbackLevel.HOLD:
            self._fault = "" if reason == AT_GOAL else reason  # holding at the goal is no fault to recover from
        else:
            if self._fault:
                self._counters["recovery"] += 1
            self._fault = ""
        n = self.generator.spec.dof
        chunk_start = self._command
        if self._command is None:  # HOLD before any valid q: nothing to brake, nothing to send
            chunk = TrajectoryChunk(np.empty((0, n)), np.empty((0, n)), self.generator.dt)
        else:
            t0 = self._clock()
            # A hold brakes to rest, a retreat goes where it aims: no posture pull (ChunkConfig.posture_gain).
            posture = level < FallbackLevel.RETREAT
            result = self.generator.generate(self._command, decision.action, posture=posture)
            self._chain.record("generate", self._clock() - t0)
            chunk, self._command = result.chunk, result.next_state
        end = self._clock()
        miss = end > deadline
        self._counters[level.name] += 1
        for key in dict.fromkeys(r.key for r in reasons):
            self._counters[key] += 1
        if miss:
            self._counters["deadline miss"] += 1
        stats = TickStats(
            latency_s=end - start,
            plan_latency_s=self._chain.backend_s,
            iterations=decision.iterations,
            level=level,
            reason=reason,
            elite_value_mean=decision.elite_value_mean,
            deadline_miss=miss,
            state_age_s=age,
        )
        self._last_stats = stats
        return Command(chunk, decision.action, level, reason, stats, chunk_start)
