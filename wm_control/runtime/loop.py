"""The deadline-aware control loop: measured joint state + goal -> one trajectory chunk per tick.

Each ``ControlLoop.step`` has a budget of ``dt - margin`` seconds from the moment it is called. The
loop predicts the cost of every backend call from recent measurements (a high quantile of a window)
and walks down a fallback chain until something fits and succeeds:

``MPPI`` (full solve) -> ``PARTIAL`` (the iterations that fit, best-so-far kept) -> ``POLICY``
(policy prior) -> ``SHIFTED`` (the previous plan, advanced one tick) -> ``HOLD`` (zero velocity
target: the chunk generator brakes the command smoothly to rest).

Cost prediction: the ``latency_quantile`` of the durations of each call (``plan``, ``plan_init``,
``plan_step``, ``policy`` and the chunk generation) measured in the current and the last
``latency_window`` ticks (1.0: the worst one). A call with no measurement in the window is tried if
any time is left; a full solve without one is predicted as ``plan_init + iterations * plan_step``
when those are known. So rare spikes (the scheduler of a shared machine, measured at 15-28 ms
against a median solve of 7 ms) do not block full solves, a spike is forgotten after
``latency_window`` ticks, and a call that is never made (predicted too slow) is probed again then.
Planning stops early by the predicted cost of the chunk generation, so the command is ready by the
deadline. A full solve that was predicted to fit but ends late is still used (a "deadline miss").

Warm start: ``MPPI`` and ``PARTIAL`` store the solve's shifted mean; ``POLICY`` and ``SHIFTED`` shift
the stored one (it stays aligned with time); ``HOLD`` zeroes it, so planning after a fault starts
clean. A fault in any backend call of a solve (including a ``plan_step`` after others succeeded)
discards that solve and falls to ``POLICY``.

Stale or non-finite input, bad shapes, a hold request, a backend exception, non-finite, misshapen or
out-of-range backend output: none of them raises out of ``step``; each becomes a fallback with a
reason, and is counted (``ControlLoop.counters``, published on ``/diagnostics`` by the node).

The action becomes a chunk exactly as in training (``sim/env.py``): ``generator.generate(command,
action)`` and the command state moves to the result's ``next_state``; the observation is built from
the command state at the start of the tick, as the env does. Only numpy and ``wm_control`` are used:
this runs on a robot PC that has onnxruntime and nothing else.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np

from wm_control.chunking import ChunkGenerator, CommandState
from wm_control.errors import ConfigError, InputError, ModelContractError, check_range
from wm_control.observation import REACH_LAYOUT, reach_observation
from wm_control.runtime.backend import Backend, PlanNoiseArrays
from wm_control.runtime.noise import draw_noise_np
from wm_control.trajectory import TrajectoryChunk

__all__ = ["Command", "ControlLoop", "FallbackLevel", "LoopConfig", "Observer", "TickStats"]

_T = TypeVar("_T")

# Same tolerance as ChunkGenerator.action_to_velocity: float rounding, not a fault.
_ACTION_TOLERANCE = 1e-6

Observer = Callable[[np.ndarray, np.ndarray, np.ndarray, CommandState], np.ndarray]
"""``observe(q (n,) [rad], dq (n,) [rad/s], goal, command_state) -> obs (O,)``."""


class FallbackLevel(enum.IntEnum):
    """What produced a tick's action; ordered, lower is better."""

    MPPI = 0  # full solve, all iterations
    PARTIAL = 1  # anytime: the iterations that fit the budget (>= 1), best-so-far kept
    POLICY = 2  # policy prior action
    SHIFTED = 3  # first action of the previous plan's (already shifted) warm-start mean
    HOLD = 4  # zero velocity target: the chunk generator brakes the command smoothly to rest


@dataclass(frozen=True)
class LoopConfig:
    """Timing and planning options of the control loop.

    dt: control period [s]; must equal the model contract's ``dt`` and the chunk generator's.
    margin: time kept free at the end of each period [s] (sending, jitter); budget = ``dt - margin``.
    stale_timeout: a joint state measured more than this before the tick starts makes the loop hold
        [s]; so does one stamped more than this in the future (clock mismatch).
    anytime: allow ``PARTIAL`` solves; ``False``: either a full solve or the policy prior.
    explore: add exploration noise to the executed action (training only; always ``False`` on a robot).
    seed: seed of the loop's ``numpy.random.Generator`` that draws the planner noise.
    latency_window: ticks of latency history that predict a call's cost [ticks].
    latency_quantile: the prediction is this quantile of the measurements of the current tick and
        the ``latency_window`` before it (the ``ceil(q n)``-th smallest of ``n``; 1.0: the worst).
        With the default 0.9 over 50 ticks, spikes in fewer than 5 of 50 ticks do not stop full
        solves; when one lands in a solve it is used late and counted as a deadline miss.
    """

    dt: float = 0.02
    margin: float = 0.004
    stale_timeout: float = 0.05
    anytime: bool = True
    explore: bool = False
    seed: int = 0
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


class Command(NamedTuple):
    """The output of one tick.

    chunk: knots for the 1 kHz layer (``TrajectoryChunk``: positions [rad], velocities [rad/s] at
        ``dt, 2 dt, ...``). Empty (0 knots: send nothing) only on a ``HOLD`` before any valid ``q``.
    action: ``(A,)`` normalised velocity target in [-1, 1] that made the chunk (zeros on ``HOLD``).
    level, reason: as in ``stats``.
    stats: diagnostics of the tick.
    """

    chunk: TrajectoryChunk
    action: np.ndarray
    level: FallbackLevel
    reason: str
    stats: TickStats


class _Reason(NamedTuple):
    key: str  # what the counters count (bounded set: no messages, no numbers)
    text: str  # what the command reports


_BUDGET = _Reason("budget", "budget")
_NO_PLAN = _Reason("no previous plan", "no previous plan")


class _Fault(Exception):
    """A fault of the backend (or of the observation) in this tick."""

    def __init__(self, key: str, text: str | None = None) -> None:
        super().__init__(text or key)
        self.reason = _Reason(key, text or key)


class _Decision(NamedTuple):
    level: FallbackLevel
    action: np.ndarray  # (A,) float64 in [-1, 1]
    mean: np.ndarray  # (H, A) float32 warm start for the next tick
    iterations: int
    elite_value_mean: float
    reason: _Reason | None = None


class _LatencyWindow:
    """A high quantile of the recent durations of one call, over the last ``ticks`` ticks."""

    def __init__(self, ticks: int, quantile: float) -> None:
        self._ticks = ticks
        self._quantile = quantile
        self._samples: deque[tuple[int, float]] = deque()  # (tick, seconds), oldest first

    def add(self, tick: int, seconds: float) -> None:
        self._samples.append((tick, seconds))

    def predict(self, tick: int) -> float | None:
        while self._samples and self._samples[0][0] < tick - self._ticks:
            self._samples.popleft()
        if not self._samples:
            return None
        ordered = sorted(s for _, s in self._samples)
        return ordered[max(math.ceil(self._quantile * len(ordered)) - 1, 0)]


def _shift(mean: np.ndarray) -> np.ndarray:
    """Warm start for the next tick: drop the first row, append a row of zeros."""
    return np.concatenate([mean[1:], np.zeros_like(mean[:1])], axis=0)


@contextlib.contextmanager
def _reading(call: str) -> Iterator[None]:
    """Turn a malformed backend output (wrong type or arity) into a fault of that call."""
    try:
        yield
    except (AttributeError, TypeError, ValueError) as exc:
        raise _Fault(f"bad output from {call}", f"bad output from {call}: {type(exc).__name__}: {exc}") from exc


def _output(call: str, name: str, value: object, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.shape != shape:
        text = f"bad output from {call}: {name} has shape {arr.shape}; expected {shape}"
        raise _Fault(f"bad output from {call}", text)
    if not np.isfinite(arr).all():
        raise _Fault(f"non-finite output from {call}")
    return arr


def _scalar(call: str, name: str, value: object) -> float:
    return float(_output(call, name, np.reshape(np.asarray(value, dtype=np.float64), -1), (1,), np.float64)[0])


class ControlLoop:
    """One robot's planner tick: checks, the fallback chain, the command state and the counters.

    Args:
        backend: the loaded model (any ``Backend``); its contract must match the robot and rate.
        generator: turns actions into chunks; owns the robot description and velocity scaling.
        config: timing and planning options.
        observe: ``observe(q, dq, goal, command_state) -> obs (O,)``; default
            ``reach_observation(generator.spec, q, dq, goal, command_state.dq, command_state.ddq)``
            with ``goal`` ``(3,)`` [m].
        clock: monotonic time [s]; the time base of the ``t`` passed to ``step``.

    Raises:
        ModelContractError: the model's contract differs from the robot, ``dt``, observation or
            velocity scaling (the message names the field).
        ConfigError: the generator's ``dt`` differs from ``config.dt``, or the backend has < 2 Q heads.
    """

    def __init__(
        self,
        backend: Backend,
        generator: ChunkGenerator,
        config: LoopConfig = LoopConfig(),
        observe: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        spec = generator.spec
        backend.contract.check(
            robot=spec.name,
            joint_names=spec.joint_names,
            dt=config.dt,
            observation_layout=REACH_LAYOUT.name if observe is None else None,
            observation_size=backend.obs_dim,
            velocity_scale=[float(v) for v in generator.velocity_scale],
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
        self._observe: Observer = observe if observe is not None else self._reach_observation
        # A custom observation defines its own goal: only a finite vector is required then.
        self._goal_size = next(f.size for f in REACH_LAYOUT.fields if f.name == "target") if observe is None else None
        self._clock = clock
        self._rng = np.random.default_rng(config.seed)
        calls = ("plan", "plan_init", "plan_step", "policy", "generate")
        self._windows = {name: _LatencyWindow(config.latency_window, config.latency_quantile) for name in calls}
        self._counters: Counter[str] = Counter()
        self._horizon = backend.planner.horizon
        self._mean = self._zero_mean()
        self._has_plan = False
        self._command: CommandState | None = None
        self._fault = ""
        self._tick = 0
        self._backend_s = 0.0
        self._last_stats: TickStats | None = None

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

    def reset(self, q: np.ndarray) -> None:
        """Start from rest at ``q (n,)`` [rad]: command state ``generator.rest(q)``, warm start zeros,
        no fault. Counters and the noise generator carry on.

        Raises:
            InputError: ``q`` has the wrong shape or is not finite.
        """
        arr, reason = self._vector("q", q, self.generator.spec.dof)
        if arr is None:
            assert reason is not None
            raise InputError(f"reset: {reason.text}")
        self._command = self.generator.rest(arr)
        self._mean = self._zero_mean()
        self._has_plan = False
        self._fault = ""

    def step(self, t: float, q: np.ndarray, dq: np.ndarray, goal: np.ndarray, *, hold: bool = False) -> Command:
        """Run one tick; never raises for bad input or a backend fault (those become ``HOLD`` or a
        fallback, with a reason).

        Args:
            t: when ``q``, ``dq`` were measured, in the time base of ``clock`` [s].
            q, dq: ``(n,)`` measured joint positions [rad] and velocities [rad/s].
            goal: the goal the observation is built with (``(3,)`` [m] in the base frame by default).
            hold: hold requested (e-stop or pause): brake to rest until a tick without it.

        Returns:
            ``Command`` with the chunk to send and the tick's diagnostics.
        """
        start = self._clock()
        deadline = start + self.config.budget
        self._tick += 1
        self._backend_s = 0.0
        self._counters["ticks"] += 1
        age = math.nan
        fault: _Reason | None = None
        obs = np.empty(0, dtype=np.float32)
        try:
            age = start - float(t)
        except (TypeError, ValueError):
            fault = _Reason("bad input: t", "bad input: t is not a number")
        arrays, input_fault = self._check_inputs(q, dq, goal)
        fault = input_fault or fault
        if fault is None:
            if not math.isfinite(age):
                fault = _Reason("non-finite input: t", "non-finite input: t")
            elif age > self.config.stale_timeout:
                fault = _Reason("stale state", f"stale state: {age * 1e3:.1f} ms old")
            elif age < -self.config.stale_timeout:
                fault = _Reason("state from the future", f"state from the future: {-age * 1e3:.1f} ms ahead")
            elif hold:
                fault = _Reason("hold requested", "hold requested")
        if fault is None:
            try:
                obs = self._build_observation(*arrays)
            except _Fault as exc:
                fault = exc.reason
        if fault is not None:
            return self._finish(start, deadline, age, self._hold(), [fault])
        # The chunk must be ready by the deadline: planning stops early by the generator's cost.
        plan_deadline = deadline - (self._windows["generate"].predict(self._tick) or 0.0)
        decision, reasons = self._decide(obs, plan_deadline)
        return self._finish(start, deadline, age, decision, reasons)

    # --- checks ---------------------------------------------------------------------------------
    @staticmethod
    def _vector(name: str, value: object, size: int | None) -> tuple[np.ndarray | None, _Reason | None]:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return None, _Reason(f"bad input: {name}", f"bad input: {name} is not a numeric array")
        if (size is not None and arr.shape != (size,)) or arr.ndim != 1:
            expected = f"({size},)" if size is not None else "(m,)"
            return None, _Reason(
                f"wrong shape: {name}", f"wrong shape: {name} has shape {arr.shape}; expected {expected}"
            )
        if not np.isfinite(arr).all():
            return None, _Reason(f"non-finite input: {name}", f"non-finite input: {name}")
        return arr, None

    def _check_inputs(
        self, q: object, dq: object, goal: object
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], _Reason | None]:
        n = self.generator.spec.dof
        q_arr, fault = self._vector("q", q, n)
        if q_arr is not None and self._command is None:
            self.reset(q_arr)  # the command state starts at the first valid measurement
        dq_arr, dq_fault = self._vector("dq", dq, n)
        goal_arr, goal_fault = self._vector("goal", goal, self._goal_size)
        fault = fault or dq_fault or goal_fault
        if fault is not None or q_arr is None or dq_arr is None or goal_arr is None:
            empty = np.empty(0)
            return (empty, empty, empty), fault
        return (q_arr, dq_arr, goal_arr), None

    def _reach_observation(self, q: np.ndarray, dq: np.ndarray, goal: np.ndarray, cs: CommandState) -> np.ndarray:
        return reach_observation(self.generator.spec, q, dq, goal, cs.dq, cs.ddq)

    def _build_observation(self, q: np.ndarray, dq: np.ndarray, goal: np.ndarray) -> np.ndarray:
        assert self._command is not None, "set from the first valid q"
        try:
            obs = self._observe(q, dq, goal, self._command)
        except Exception as exc:  # a user-supplied builder: its failure must hold, not stop the loop
            name = type(exc).__name__
            raise _Fault(f"observation error: {name}", f"observation error: {name}: {exc}") from exc
        arr = np.asarray(obs, dtype=np.float32)
        if arr.shape != (self.backend.obs_dim,):
            raise _Fault(
                "wrong shape: observation",
                f"wrong shape: observation has shape {arr.shape}; expected ({self.backend.obs_dim},)",
            )
        if not np.isfinite(arr).all():
            raise _Fault("non-finite observation")
        return arr

    # --- the fallback chain ---------------------------------------------------------------------
    def _decide(self, obs: np.ndarray, deadline: float) -> tuple[_Decision, list[_Reason]]:
        cfg = self.config
        reasons: list[_Reason] = []
        noise = draw_noise_np(self.backend.planner, self.backend.action_dim, self.backend.num_q, self._rng)
        explore = 1.0 if cfg.explore else 0.0
        try:
            if self._fits("plan", deadline):
                return self._solve(obs, noise, explore), reasons
            if cfg.anytime:
                decision = self._solve_anytime(obs, noise, explore, deadline)
                if decision is not None:
                    return decision, [decision.reason] if decision.reason else []
            reasons.append(_BUDGET)
        except _Fault as fault:
            reasons.append(fault.reason)
        if self._fits("policy", deadline):
            try:
                out = self._call("policy", self.backend.policy, obs)
                action = self._action("policy", out)
                return _Decision(FallbackLevel.POLICY, action, _shift(self._mean), 0, math.nan), reasons
            except _Fault as fault:
                reasons.append(fault.reason)
        elif _BUDGET not in reasons:
            reasons.append(_BUDGET)
        if not self._has_plan:
            return self._hold(), [*reasons, _NO_PLAN]
        try:
            action = self._action("shifted plan", self._mean[0])
        except _Fault as fault:
            return self._hold(), [*reasons, fault.reason]
        return _Decision(FallbackLevel.SHIFTED, action, _shift(self._mean), 0, math.nan), reasons

    def _solve(self, obs: np.ndarray, noise: PlanNoiseArrays, explore: float) -> _Decision:
        H, A, I = self._horizon, self.backend.action_dim, self.backend.planner.iterations
        out = self._call("plan", self.backend.plan, obs, self._mean.copy(), noise, explore)
        with _reading("plan"):
            action = self._action("plan", out.action)
            mean = _output("plan", "mean", out.mean, (H, A))
            elite = _scalar("plan", "elite_value_mean", out.elite_value_mean)
        return _Decision(FallbackLevel.MPPI, action, mean, I, elite)

    def _solve_anytime(
        self, obs: np.ndarray, noise: PlanNoiseArrays, explore: float, deadline: float
    ) -> _Decision | None:
        """``plan_init`` + as many ``plan_step`` calls as fit; ``None`` when not one iteration fits."""
        planner, backend = self.backend.planner, self.backend
        H, A, I = self._horizon, backend.action_dim, planner.iterations
        if not self._fits("plan_init", deadline):
            return None
        out = self._call("plan_init", backend.plan_init, obs, noise.pi_eps)
        with _reading("plan_init"):
            z_out, prior_out = out
            z = _output("plan_init", "z", z_out, (backend.latent_dim,))
            prior = _output("plan_init", "prior", prior_out, (H, planner.num_pi_trajs, A))
        mean = self._mean.copy()
        std = np.full((H, A), planner.max_std, dtype=np.float32)
        done, action, elite = 0, np.zeros(A), math.nan
        while done < I and self._fits("plan_step", deadline):
            step = self._call("plan_step", backend.plan_step, z, prior, mean, std, noise.step(done), explore)
            with _reading("plan_step"):
                action = self._action("plan_step", step.action)
                mean = _output("plan_step", "mean", step.mean, (H, A))
                std = _output("plan_step", "std", step.std, (H, A))
                elite = _scalar("plan_step", "elite_value_mean", step.elite_value_mean)
            done += 1
        if done == 0:
            return None
        if done == I:
            return _Decision(FallbackLevel.MPPI, action, _shift(mean), done, elite)
        reason = _Reason("budget", f"budget: {done}/{I} iterations")
        return _Decision(FallbackLevel.PARTIAL, action, _shift(mean), done, elite, reason)

    def _hold(self) -> _Decision:
        return _Decision(FallbackLevel.HOLD, np.zeros(self.backend.action_dim), self._zero_mean(), 0, math.nan)

    # --- helpers --------------------------------------------------------------------------------
    def _zero_mean(self) -> np.ndarray:
        return np.zeros((self._horizon, self.backend.action_dim), dtype=np.float32)

    def _fits(self, call: str, deadline: float) -> bool:
        """Whether ``call`` is predicted to finish by ``deadline``; an unmeasured call is tried."""
        remaining = deadline - self._clock()
        predicted = self._windows[call].predict(self._tick)
        if predicted is None and call == "plan":
            # A full solve costs about plan_init + iterations x plan_step: use those if measured.
            init, step = self._windows["plan_init"].predict(self._tick), self._windows["plan_step"].predict(self._tick)
            if init is not None and step is not None:
                predicted = init + self.backend.planner.iterations * step
        return remaining > 0.0 if predicted is None else predicted <= remaining

    def _call(self, name: str, fn: Callable[..., _T], *args: object) -> _T:
        """Call the backend, timing it; any exception becomes a fault of the tick."""
        t0 = self._clock()
        try:
            return fn(*args)
        except Exception as exc:  # a backend fault must fall back, never stop the loop
            kind = type(exc).__name__
            raise _Fault(f"backend error: {kind}", f"backend error: {kind}: {exc}") from exc
        finally:
            elapsed = self._clock() - t0
            self._windows[name].add(self._tick, elapsed)
            self._backend_s += elapsed

    def _action(self, call: str, value: object) -> np.ndarray:
        """A backend action ``(A,)``, checked: out of [-1, 1] is the backend's fault, not clamped."""
        a = _output(call, "action", value, (self.backend.action_dim,), np.float64)
        worst = float(np.max(np.abs(a)))
        if worst > 1.0 + _ACTION_TOLERANCE:
            raise _Fault("action out of range", f"action out of range from {call}: max |a| = {worst:.4g}")
        return np.clip(a, -1.0, 1.0)

    def _finish(
        self, start: float, deadline: float, age: float, decision: _Decision, reasons: list[_Reason]
    ) -> Command:
        level = decision.level
        reason = "; ".join(r.text for r in reasons)
        if level == FallbackLevel.HOLD:
            # A held command brakes; the old plan no longer describes where it goes, so start clean.
            self._mean, self._has_plan, self._fault = self._zero_mean(), False, reason
        else:
            if self._fault:
                self._counters["recovery"] += 1
            self._mean, self._fault = decision.mean, ""
            self._has_plan = self._has_plan or level <= FallbackLevel.PARTIAL
        n = self.generator.spec.dof
        if self._command is None:  # HOLD before any valid q: nothing to brake, nothing to send
            chunk = TrajectoryChunk(np.empty((0, n)), np.empty((0, n)), self.generator.dt)
        else:
            t0 = self._clock()
            result = self.generator.generate(self._command, decision.action)
            self._windows["generate"].add(self._tick, self._clock() - t0)
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
            plan_latency_s=self._backend_s,
            iterations=decision.iterations,
            level=level,
            reason=reason,
            elite_value_mean=decision.elite_value_mean,
            deadline_miss=miss,
            state_age_s=age,
        )
        self._last_stats = stats
        return Command(chunk, decision.action, level, reason, stats)
