"""Prepared solves (``LoopConfig.prepare``, ``ControlLoop.prepare``): all MPPI iterations but the last
run between ticks on the measured state extrapolated one period ahead; the tick runs the last one on
its own measurement. What is prepared, from which observation and noise, what the tick then calls, when
a prepared solve is dropped, and (with the shipped model through onnxruntime) that a prepared solve
whose prediction was exact is the full solve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fakes import DT, PLANNER, FakeBackend, FakeClock, fr3_control, model_contract, refit
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.observation import ReachObserver, reach_observation
from wm_control.planning.config import shift
from wm_control.robot import FR3
from wm_control.runtime.fallback import FallbackChain
from wm_control.runtime.loop import ControlLoop, FallbackLevel, LoopConfig

GOAL = np.array([0.5, 0.1, 0.4])
Q0 = np.array(FR3.start_q)
I = PLANNER.iterations  # the fake planner's iterations (6)


def make_loop(prepare: bool = True, **cost: float) -> tuple[ControlLoop, FakeBackend, FakeClock]:
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    backend = FakeBackend(clock, model_contract(fr3_control(generator, dt=DT)), **cost)
    loop = ControlLoop(backend, generator, ReachObserver(FR3), LoopConfig(dt=DT, prepare=prepare), clock=clock)
    loop.reset(Q0)
    return loop, backend, clock


def start_period(clock: FakeClock, t0: float, k: int) -> float:
    """Move the clock to the start of period ``k`` after ``t0`` (a state measured just then)."""
    clock.t = t0 + k * DT
    return clock()


def test_the_tick_after_a_prepared_solve_runs_only_its_last_iteration_on_the_measured_state() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    first = loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    assert first.level == FallbackLevel.MPPI and backend.names() == ["plan"]
    spent = loop.prepare()
    # The first I - 1 iterations, from the warm start the tick left, at full sampling std.
    assert backend.names()[1:] == ["plan_init"] + ["plan_step"] * (I - 1)
    assert spent == pytest.approx(0.001 + (I - 1) * 0.002)
    steps = backend.inputs("plan_step")
    np.testing.assert_array_equal(steps[0]["mean"], shift(refit_n(np.zeros((PLANNER.horizon, 7)), I)))
    np.testing.assert_array_equal(steps[0]["std"], np.full((PLANNER.horizon, 7), PLANNER.max_std, np.float32))

    n = len(backend.calls)
    cmd = loop.step(start_period(clock, t0, 2), Q0, np.zeros(7), GOAL)
    assert cmd.level == FallbackLevel.MPPI and cmd.reason == "" and cmd.stats.iterations == I
    assert backend.names()[n:] == ["plan_init", "plan_step"]
    assert cmd.stats.plan_latency_s == pytest.approx(0.001 + 0.002)  # one encode, one iteration
    last = backend.inputs("plan_step")[-1]
    prepared_mean = refit_n(steps[0]["mean"], I - 1)  # type: ignore[arg-type]
    np.testing.assert_array_equal(last["mean"], prepared_mean)
    np.testing.assert_allclose(last["std"], PLANNER.max_std * 0.5 ** (I - 1))
    # The warm start it leaves is the full solve's: the shifted mean after all I iterations.
    loop.prepare()
    np.testing.assert_array_equal(backend.inputs("plan_step")[-(I - 1)]["mean"], shift(refit(prepared_mean)))


def refit_n(mean: object, n: int) -> np.ndarray:
    out = np.asarray(mean, dtype=np.float32)
    for _ in range(n):
        out = refit(out)
    return out


def test_the_prepared_observation_is_the_measured_state_extrapolated_one_period() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    dq1, dq2 = np.full(7, 0.10), np.full(7, 0.14)
    q2 = Q0 + 0.003
    loop.step(start_period(clock, t0, 1), Q0, dq1, GOAL)
    loop.step(start_period(clock, t0, 2), q2, dq2, GOAL)
    command = loop.command_state  # where the next chunk starts: the next tick's command part
    assert command is not None
    loop.prepare()
    ddq = (dq2 - dq1) / DT  # 2 rad/s^2, within the limits
    expected = reach_observation(FR3, q2 + DT * dq2 + 0.5 * DT**2 * ddq, dq2 + DT * ddq, GOAL, command.dq, command.ddq)
    np.testing.assert_allclose(backend.inputs("plan_init")[-1]["obs"], expected, rtol=1e-6)  # type: ignore[arg-type]


def test_an_acceleration_estimate_past_the_limits_is_clipped_to_them() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    dq = np.full(7, 1.0)  # 50 rad/s^2 in one period: a glitch, not an acceleration of this arm
    loop.step(start_period(clock, t0, 2), Q0, dq, GOAL)
    command = loop.command_state
    assert command is not None
    loop.prepare()
    ddq = FR3.limits.ddq_max
    expected = reach_observation(FR3, Q0 + DT * dq + 0.5 * DT**2 * ddq, dq + DT * ddq, GOAL, command.dq, command.ddq)
    np.testing.assert_allclose(backend.inputs("plan_init")[-1]["obs"], expected, rtol=1e-6)  # type: ignore[arg-type]


def test_the_prepared_solve_uses_the_noise_the_next_tick_would_have_drawn() -> None:
    loop, backend, clock = make_loop()
    plain, plain_backend, plain_clock = make_loop(prepare=False)
    for lp, c in ((loop, clock), (plain, plain_clock)):
        t0 = c()
        lp.step(start_period(c, t0, 1), Q0, np.zeros(7), GOAL)
        lp.prepare()
        lp.step(start_period(c, t0, 2), Q0, np.zeros(7), GOAL)
    full = plain_backend.inputs("plan")[1]["noise"]
    prepared = [i["noise"] for i in backend.inputs("plan_step")]
    for k in range(I):  # I - 1 prepared iterations, then the tick's
        np.testing.assert_array_equal(prepared[k].samples, full.step(k).samples)  # type: ignore[union-attr]
    np.testing.assert_array_equal(backend.inputs("plan_init")[-1]["pi_eps"], full.pi_eps)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"goal": GOAL + np.array([0.0, 0.05, 0.0])}, "another goal"),
        ({"period": 2}, "a state measured a period later than predicted"),
    ],
)
def test_a_prepared_solve_for_another_goal_or_time_is_dropped_and_counted(change: dict[str, object], why: str) -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    loop.prepare()
    n = len(backend.calls)
    goal = change.get("goal", GOAL)
    cmd = loop.step(start_period(clock, t0, 1 + int(change.get("period", 1))), Q0, np.zeros(7), goal)  # type: ignore[call-overload]
    assert cmd.level == FallbackLevel.MPPI, why
    assert backend.names()[n:] == ["plan"], why  # solved from scratch
    assert loop.counters["prepared solve discarded"] == 1


def test_a_reset_or_a_new_command_state_drops_the_prepared_solve() -> None:
    for drop in ("reset", "override"):
        loop, backend, clock = make_loop()
        t0 = clock()
        loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
        loop.prepare()
        if drop == "reset":
            loop.reset(Q0)
        else:
            state = loop.command_state
            assert state is not None
            loop.override_command(state)  # a brake of the safety layer went out instead
        n = len(backend.calls)
        loop.step(start_period(clock, t0, 2), Q0, np.zeros(7), GOAL)
        assert backend.names()[n:] == ["plan"], drop


def test_nothing_is_prepared_after_a_hold_with_the_option_off_or_with_one_iteration() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL, hold=True)
    assert loop.prepare() == 0.0 and backend.calls == []

    plain, plain_backend, plain_clock = make_loop(prepare=False)
    plain.step(start_period(plain_clock, plain_clock(), 1), Q0, np.zeros(7), GOAL)
    assert plain.prepare() == 0.0 and plain_backend.names() == ["plan"]

    one, one_backend, one_clock = make_loop()
    one_backend.planner = PLANNER.__class__(**{**PLANNER.__dict__, "iterations": 1})
    one.step(start_period(one_clock, one_clock(), 1), Q0, np.zeros(7), GOAL)
    assert one.prepare() == 0.0 and one_backend.names() == ["plan"]


def test_a_fault_while_preparing_is_counted_and_the_next_tick_solves_from_scratch() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    backend.fail["plan_step"] = "nan"
    loop.prepare()
    assert loop.counters["prepare failed: non-finite output from plan_step"] == 1
    del backend.fail["plan_step"]
    n = len(backend.calls)
    cmd = loop.step(start_period(clock, t0, 2), Q0, np.zeros(7), GOAL)
    assert cmd.level == FallbackLevel.MPPI and backend.names()[n:] == ["plan"]


def test_a_solve_is_prepared_unless_the_next_tick_is_due_before_it_could_start() -> None:
    # Prepared iterations that end after the next tick is due delay it by less than they save it:
    # 1 + 5 x 4 = 21 ms of preparing still runs; an encode predicted to end after the next tick's
    # start does not.
    loop, backend, clock = make_loop(plan_step=0.004)
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    assert loop.prepare() == pytest.approx(0.021)
    loop.step(start_period(clock, t0, 2), Q0, np.zeros(7), GOAL)
    assert loop.prepare() == pytest.approx(0.021)
    loop.step(start_period(clock, t0, 3), Q0, np.zeros(7), GOAL)
    clock.advance(DT - 0.0005 - 0.005)  # the tick (5 ms) and this leave 0.5 ms before the next is due
    n = len(backend.calls)
    assert loop.prepare() == 0.0 and len(backend.calls) == n
    assert loop.counters["prepare skipped: budget"] == 1
    n = len(backend.calls)
    loop.step(start_period(clock, t0, 4), Q0, np.zeros(7), GOAL)
    assert backend.names()[n] in ("plan", "plan_init") and "prepared solve discarded" not in loop.counters


def test_a_fault_in_the_tick_that_finishes_a_prepared_solve_falls_back_to_the_policy() -> None:
    loop, backend, clock = make_loop()
    t0 = clock()
    loop.step(start_period(clock, t0, 1), Q0, np.zeros(7), GOAL)
    loop.prepare()
    backend.fail["plan_init"] = "raise"
    cmd = loop.step(start_period(clock, t0, 2), Q0, np.zeros(7), GOAL)
    assert cmd.level == FallbackLevel.POLICY and cmd.reason == "backend error: RuntimeError: plan_init broke"
    assert backend.names()[-2:] == ["plan_init", "policy"]


def test_a_prepared_solve_with_an_exact_prediction_is_the_full_solve(shipped_export: Path) -> None:
    """With the shipped model through onnxruntime: a chain prepared on the observation the tick then
    measures gives the action and warm start of a chain that solves that observation in one call, from
    the same warm start and noise.
    """
    from wm_control.runtime.load import load_backend

    backend = load_backend(shipped_export, "onnxruntime", threads=1)
    obs = np.random.default_rng(3).uniform(-0.5, 0.5, backend.obs_dim).astype(np.float32)
    chains = [
        FallbackChain(
            backend, FakeClock(), anytime=True, explore=False, seed=7, latency_window=50, latency_quantile=0.9
        )
        for _ in range(2)
    ]
    for chain in chains:  # the same warm start in both: one solve from zeros
        chain.begin_tick()
        chain.commit(chain.decide(obs, float("inf"))[0])
    prepared, full = chains
    assert prepared.prepare(obs, backend.planner.iterations - 1, float("inf"))
    a, _ = prepared.decide(obs, float("inf"))
    b, _ = full.decide(obs, float("inf"))
    assert a.level == b.level == FallbackLevel.MPPI and a.iterations == b.iterations
    np.testing.assert_allclose(a.action, b.action, atol=1e-5)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-5)
