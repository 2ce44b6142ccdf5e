"""The fallback chain: what a tick's action comes from when time or the model runs short.

``MPPI`` (full solve) -> ``PARTIAL`` (the iterations that fit, best-so-far kept) -> ``POLICY``
(policy prior) -> ``SHIFTED`` (the previous plan, advanced one tick) -> ``HOLD`` (zero velocity
target: the chunk generator brakes the command smoothly to rest).

``FallbackChain.decide`` walks down the chain until something is predicted to fit the deadline
(``wm_control.runtime.latency``) and succeeds. It owns the warm start: ``MPPI`` and ``PARTIAL`` store
the solve's shifted mean; ``POLICY`` and ``SHIFTED`` shift the stored one (it stays aligned with
time); ``HOLD`` zeroes it, so planning after a fault starts clean. A fault in any backend call of a
solve (including a ``plan_step`` after others succeeded) discards that solve and falls to ``POLICY``.
Backend exceptions and malformed outputs become ``Fault`` reasons (``wm_control.runtime.checks``).

A solve can be prepared (``prepare``): between ticks, the first iterations of the next tick's solve
run on an observation predicted for that tick; ``decide`` then encodes the measured observation and
runs only the remaining iterations on it, starting from the prepared mean and std. This is the
real-time-iteration idea of MPC (most of the work before the measurement, the last correction after
it): the time from the measurement to the action drops by the prepared iterations, the work per
period does not. Every sample of the last iteration, and the action, is evaluated on the measured
state; only the sampling distribution it starts from was fitted on the prediction.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np

from wm_control.planning.config import shift
from wm_control.runtime.backend import Backend, PlanNoiseArrays
from wm_control.runtime.checks import Fault, Reason, check_action, check_output, check_scalar, reading
from wm_control.runtime.latency import LatencyWindow
from wm_control.runtime.noise import draw_noise_np

__all__ = ["CALLS", "Decision", "FallbackChain", "FallbackLevel", "Prepared"]

_T = TypeVar("_T")

# The timed calls: the backend's four, and the chunk generation (timed by the loop).
CALLS = ("plan", "plan_init", "plan_step", "policy", "generate")
_BUDGET = Reason("budget", "budget")
_NO_PLAN = Reason("no previous plan", "no previous plan")


class FallbackLevel(enum.IntEnum):
    """What produced a tick's action; ordered, lower is better."""

    MPPI = 0  # full solve, all iterations
    PARTIAL = 1  # anytime: the iterations that fit the budget (>= 1), best-so-far kept
    POLICY = 2  # policy prior action
    SHIFTED = 3  # first action of the previous plan's (already shifted) warm-start mean
    RETREAT = 4  # not planned: a joint-space move back to the start pose after a stall (``wm_control.runtime.retreat``)
    HOLD = 5  # zero velocity target: the chunk generator brakes the command smoothly to rest


class Decision(NamedTuple):
    """The chain's answer for one tick: the level, the action ``(A,)`` (float64, in [-1, 1]), the warm
    start for the next tick ``(H, A)`` (float32), the MPPI iterations completed, the elite value mean
    of the solve used (NaN without one), and the reason a solve stopped early (``PARTIAL``).
    """

    level: FallbackLevel
    action: np.ndarray
    mean: np.ndarray
    iterations: int
    elite_value_mean: float
    reason: Reason | None = None


class Prepared(NamedTuple):
    """A solve prepared between ticks (``FallbackChain.prepare``): the next tick's noise, the refit
    (unshifted) mean and std ``(H, A)`` after ``iterations`` iterations on the predicted observation.
    """

    noise: PlanNoiseArrays
    mean: np.ndarray
    std: np.ndarray
    iterations: int


class FallbackChain:
    """The planner side of the control loop for one backend.

    Args:
        backend: the loaded model.
        clock: monotonic time [s].
        anytime: allow ``PARTIAL`` solves.
        explore: add exploration noise to the executed action (training only).
        seed: seed of the ``numpy.random.Generator`` that draws the planner noise.
        latency_window, latency_quantile: see ``LatencyWindow``.
    """

    def __init__(
        self,
        backend: Backend,
        clock: Callable[[], float],
        *,
        anytime: bool,
        explore: bool,
        seed: int,
        latency_window: int,
        latency_quantile: float,
    ) -> None:
        self.backend = backend
        self._clock = clock
        self._anytime = anytime
        self._explore = 1.0 if explore else 0.0
        self._rng = np.random.default_rng(seed)
        self._windows = {name: LatencyWindow(latency_window, latency_quantile) for name in CALLS}
        self._horizon = backend.planner.horizon
        self._mean = self._zero_mean()
        self._has_plan = False
        self._prepared: Prepared | None = None
        self._tick = 0
        self.backend_s = 0.0  # time spent in backend calls this tick [s]

    # --- the tick's bookkeeping --------------------------------------------------------------------
    def begin_tick(self) -> None:
        """Start a tick: latency history ages by one tick, backend time restarts at zero."""
        self._tick += 1
        self.backend_s = 0.0

    def predict(self, call: str) -> float | None:
        """Predicted duration of ``call`` (one of ``CALLS``) in this tick [s]; ``None``: unmeasured."""
        return self._windows[call].predict(self._tick)

    def record(self, call: str, seconds: float) -> None:
        """Measure ``call`` (the loop times the chunk generation this way)."""
        self._windows[call].add(self._tick, seconds)

    def reset(self) -> None:
        """Forget the plan: warm start zeros, no prepared solve (after a reset of the command state)."""
        self._mean, self._has_plan, self._prepared = self._zero_mean(), False, None

    @property
    def prepared(self) -> Prepared | None:
        """The solve prepared for the next tick (``None``: none)."""
        return self._prepared

    def discard_prepared(self) -> None:
        """Drop the prepared solve: the next ``decide`` solves from scratch."""
        self._prepared = None

    def prepare(self, obs: np.ndarray, iterations: int, deadline: float) -> bool:
        """Run ``plan_init`` and the first ``iterations`` (>= 1, < ``planner.iterations``) iterations of
        the next tick's solve on the predicted observation ``obs (O,)``, from the current warm start,
        with the next tick's noise; ``decide`` finishes it on the measured observation. Nothing is run
        (``False``) when ``plan_init`` is predicted to end after ``deadline`` (clock time [s]: the next
        tick's start). That is the break-even: iterations prepared past it delay the next tick by less
        than they save it. A fault leaves nothing prepared and raises it (``Fault``). The calls are
        timed like the tick's.
        """
        planner, backend = self.backend.planner, self.backend
        if not 1 <= iterations < planner.iterations:
            raise ValueError(f"prepare: iterations={iterations}; valid: 1 .. {planner.iterations - 1}")
        self._prepared = None
        if not self._fits("plan_init", deadline):
            return False
        noise = draw_noise_np(planner, backend.action_dim, backend.num_q, self._rng)
        z, prior = self._init(obs, noise)
        mean = self._mean.copy()
        std = np.full((self._horizon, backend.action_dim), planner.max_std, dtype=np.float32)
        for i in range(iterations):
            mean, std, _, _ = self._step(z, prior, mean, std, noise, i)
        self._prepared = Prepared(noise, mean, std, iterations)
        return True

    def commit(self, decision: Decision) -> None:
        """Keep the warm start of the decision that was sent (``HOLD``, ``RETREAT``: start clean)."""
        if decision.level >= FallbackLevel.RETREAT:
            # A held command brakes, a retreat goes elsewhere: the old plan no longer describes where it goes.
            self.reset()
        else:
            self._mean = decision.mean
            self._has_plan = self._has_plan or decision.level <= FallbackLevel.PARTIAL

    def hold(self) -> Decision:
        """The ``HOLD`` decision: zero velocity target."""
        return Decision(FallbackLevel.HOLD, np.zeros(self.backend.action_dim), self._zero_mean(), 0, math.nan)

    def retreat(self, action: np.ndarray) -> Decision:
        """The ``RETREAT`` decision: ``action`` ``(A,)`` in [-1, 1], chosen outside the planner."""
        return Decision(FallbackLevel.RETREAT, action, self._zero_mean(), 0, math.nan)

    # --- the chain -------------------------------------------------------------------------------------
    def decide(self, obs: np.ndarray, deadline: float) -> tuple[Decision, list[Reason]]:
        """The best decision for observation ``obs (O,)`` that is predicted to be ready by ``deadline``
        (clock time [s]), and the reasons it is not a full solve.
        """
        reasons: list[Reason] = []
        prepared, self._prepared = self._prepared, None
        try:
            if prepared is not None:
                decision = self._solve_prepared(obs, prepared, deadline)
                if decision is not None:
                    return decision, [decision.reason] if decision.reason else []
                noise = prepared.noise
            else:
                noise = draw_noise_np(self.backend.planner, self.backend.action_dim, self.backend.num_q, self._rng)
            if self._fits("plan", deadline):
                return self._solve(obs, noise), reasons
            if self._anytime:
                decision = self._solve_anytime(obs, noise, deadline)
                if decision is not None:
                    return decision, [decision.reason] if decision.reason else []
            reasons.append(_BUDGET)
        except Fault as fault:
            reasons.append(fault.reason)
        if self._fits("policy", deadline):
            try:
                out = self._call("policy", self.backend.policy, obs)
                action = check_action("policy", out, self.backend.action_dim)
                return Decision(FallbackLevel.POLICY, action, shift(self._mean), 0, math.nan), reasons
            except Fault as fault:
                reasons.append(fault.reason)
        elif _BUDGET not in reasons:
            reasons.append(_BUDGET)
        if not self._has_plan:
            return self.hold(), [*reasons, _NO_PLAN]
        try:
            action = check_action("shifted plan", self._mean[0], self.backend.action_dim)
        except Fault as fault:
            return self.hold(), [*reasons, fault.reason]
        return Decision(FallbackLevel.SHIFTED, action, shift(self._mean), 0, math.nan), reasons

    def _solve(self, obs: np.ndarray, noise: PlanNoiseArrays) -> Decision:
        H, A, I = self._horizon, self.backend.action_dim, self.backend.planner.iterations
        out = self._call("plan", self.backend.plan, obs, self._mean.copy(), noise, self._explore)
        with reading("plan"):
            action = check_action("plan", out.action, A)
            mean = check_output("plan", "mean", out.mean, (H, A))
            elite = check_scalar("plan", "elite_value_mean", out.elite_value_mean)
        return Decision(FallbackLevel.MPPI, action, mean, I, elite)

    def _solve_anytime(self, obs: np.ndarray, noise: PlanNoiseArrays, deadline: float) -> Decision | None:
        """``plan_init`` + as many ``plan_step`` calls as fit; ``None`` when not one iteration fits."""
        if not self._fits("plan_init", deadline):
            return None
        z, prior = self._init(obs, noise)
        std = np.full((self._horizon, self.backend.action_dim), self.backend.planner.max_std, dtype=np.float32)
        return self._iterate(z, prior, self._mean.copy(), std, 0, noise, deadline)

    def _solve_prepared(self, obs: np.ndarray, prepared: Prepared, deadline: float) -> Decision | None:
        """Finish a prepared solve on the measured ``obs``: ``plan_init`` on it, then the remaining
        iterations from the prepared mean and std; ``None`` when ``plan_init`` and one of them do not fit.
        """
        if not self._fits("plan_init", deadline, then="plan_step"):
            return None
        z, prior = self._init(obs, prepared.noise)
        return self._iterate(z, prior, prepared.mean, prepared.std, prepared.iterations, prepared.noise, deadline)

    def _init(self, obs: np.ndarray, noise: PlanNoiseArrays) -> tuple[np.ndarray, np.ndarray]:
        """``plan_init``, checked: the latent ``(Z,)`` and the policy prior ``(H, pi_trajs, A)``."""
        backend = self.backend
        out = self._call("plan_init", backend.plan_init, obs, noise.pi_eps)
        with reading("plan_init"):
            z_out, prior_out = out
            z = check_output("plan_init", "z", z_out, (backend.latent_dim,))
            prior = check_output(
                "plan_init", "prior", prior_out, (self._horizon, backend.planner.num_pi_trajs, backend.action_dim)
            )
        return z, prior

    def _step(
        self, z: np.ndarray, prior: np.ndarray, mean: np.ndarray, std: np.ndarray, noise: PlanNoiseArrays, i: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Iteration ``i`` (``plan_step``), checked: the refit mean and std, the action, the elite value."""
        H, A = self._horizon, self.backend.action_dim
        step = self._call("plan_step", self.backend.plan_step, z, prior, mean, std, noise.step(i), self._explore)
        with reading("plan_step"):
            action = check_action("plan_step", step.action, A)
            mean = check_output("plan_step", "mean", step.mean, (H, A))
            std = check_output("plan_step", "std", step.std, (H, A))
            elite = check_scalar("plan_step", "elite_value_mean", step.elite_value_mean)
        return mean, std, action, elite

    def _iterate(
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        done: int,
        noise: PlanNoiseArrays,
        deadline: float,
    ) -> Decision | None:
        """Iterations ``done ..`` as long as they fit; ``None`` when not one of them does."""
        first, total = done, self.backend.planner.iterations
        action, elite = np.zeros(self.backend.action_dim), math.nan
        while done < total and self._fits("plan_step", deadline):
            mean, std, action, elite = self._step(z, prior, mean, std, noise, done)
            done += 1
        if done == first:
            return None
        if done == total:
            return Decision(FallbackLevel.MPPI, action, shift(mean), done, elite)
        reason = Reason("budget", f"budget: {done}/{total} iterations")
        return Decision(FallbackLevel.PARTIAL, action, shift(mean), done, elite, reason)

    # --- helpers ---------------------------------------------------------------------------------------
    def _zero_mean(self) -> np.ndarray:
        return np.zeros((self._horizon, self.backend.action_dim), dtype=np.float32)

    def _fits(self, call: str, deadline: float, then: str | None = None) -> bool:
        """Whether ``call`` (followed by ``then``) is predicted to finish by ``deadline``; an unmeasured
        call is tried.
        """
        remaining = deadline - self._clock()
        predicted = self.predict(call)
        after = self.predict(then) if then is not None else None
        if predicted is not None and after is not None:
            predicted += after
        if predicted is None and call == "plan":
            # A full solve costs about plan_init + iterations x plan_step: use those if measured.
            init, step = self.predict("plan_init"), self.predict("plan_step")
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
            raise Fault(f"backend error: {kind}", f"backend error: {kind}: {exc}") from exc
        finally:
            elapsed = self._clock() - t0
            self.record(name, elapsed)
            self.backend_s += elapsed
