"""The deadline-aware control loop, orchestrated with a numpy fake backend and a fake clock: which
fallback level each budget and fault produces, what is counted, and that chunks continue the command
state exactly as in training (``sim/env.py``)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tests.fakes import DT, PLANNER, FakeBackend, FakeClock, fr3_control, full_solve, model_contract, refit
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.errors import ConfigError, InputError, ModelContractError
from wm_control.observation import REACH_LAYOUT, ReachObserver, reach_observation
from wm_control.planning.config import shift
from wm_control.robot import FR3
from wm_control.runtime.backend import Backend, PlanNoiseArrays
from wm_control.runtime.loop import Command, ControlLoop, FallbackLevel, LoopConfig
from wm_control.runtime.noise import draw_noise_np

GOAL = np.array([0.5, 0.1, 0.4])
Q0 = np.array(FR3.start_q)
DQ0 = np.zeros(7)
OBSERVER = ReachObserver(FR3)
PLAN_MEAN = full_solve(np.zeros((PLANNER.horizon, 7), np.float32))  # after one solve from a reset


def backend_for(clock: FakeClock, generator: ChunkGenerator, **cost: float) -> FakeBackend:
    """A fake backend whose contract says its actions were shaped by ``generator``."""
    return FakeBackend(clock, model_contract(fr3_control(generator, dt=generator.dt)), **cost)


def make_loop(config: LoopConfig | None = None, **cost: float) -> tuple[ControlLoop, FakeBackend, FakeClock]:
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    backend = backend_for(clock, generator, **cost)
    loop = ControlLoop(backend, generator, OBSERVER, config or LoopConfig(dt=DT), clock=clock)
    loop.reset(Q0)
    return loop, backend, clock


def tick(
    loop: ControlLoop, clock: FakeClock, q: object = Q0, dq: object = DQ0, goal: object = GOAL, **kw: object
) -> Command:
    """Start the next period and run one tick on a state measured just now."""
    clock.advance(DT)
    return loop.step(clock(), q, dq, goal, **kw)  # type: ignore[arg-type]


def test_loop_imports_only_numpy_and_wm_control() -> None:
    # It runs on a robot PC with onnxruntime only: no torch, ROS, hydra or simulator.
    forbidden = ("torch", "rclpy", "hydra", "omegaconf", "mujoco", "sim", "onnxruntime")
    code = (
        f"import json, sys, wm_control.runtime.loop\nprint(json.dumps([m for m in {forbidden!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# --- construction ------------------------------------------------------------------------------
def test_fake_backend_implements_the_protocol() -> None:
    _, backend, _ = make_loop()
    assert isinstance(backend, Backend)


def test_contract_dt_mismatch_is_refused_naming_dt() -> None:
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), 0.01)
    backend = FakeBackend(clock)  # contract says 0.02 s
    with pytest.raises(ModelContractError, match="'dt'"):
        ControlLoop(backend, generator, OBSERVER, LoopConfig(dt=0.01, margin=0.002), clock=clock)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"robot": "panda"}, "'robot'"),
        ({"joint_names": tuple(f"j{i}" for i in range(7))}, "'joint_names'"),
        ({"action": {**fr3_control().action, "velocity_scale": [1.0] * 7}}, "'action.velocity_scale[0]'"),
        ({"action": {**fr3_control().action, "chunk": {**fr3_control().action["chunk"], "jerk_fraction": 0.5}}},
         "'action.chunk.jerk_fraction'"),
        ({"action": {**fr3_control().action, "chunk": {**fr3_control().action["chunk"], "servo_period": 0.002}}},
         "'action.chunk.servo_period' is 0.002"),
    ],
)  # fmt: skip
def test_contract_mismatch_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    """The loop compares the recorded contract with what it drives, field by field."""
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    backend = FakeBackend(clock, model_contract(**change))
    with pytest.raises(ModelContractError, match=re.escape(field)):
        ControlLoop(backend, generator, OBSERVER, LoopConfig(dt=DT), clock=clock)


def test_observation_layout_differences_are_named_down_to_the_unit() -> None:
    layout = REACH_LAYOUT.to_dict()
    fields = [dict(f) for f in layout["fields"]]  # type: ignore[union-attr]
    fields[4]["unit"] = "m"  # tcp recorded in metres, built in decimetres
    clock = FakeClock()
    control = dataclasses.replace(fr3_control(), observation={**layout, "fields": fields})
    backend = FakeBackend(clock, model_contract(control))
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    with pytest.raises(ModelContractError, match=r"'observation.fields\[4\].unit' is 'm'; the controller builds 'dm'"):
        ControlLoop(backend, generator, OBSERVER, LoopConfig(dt=DT), clock=clock)


def test_generator_dt_must_match_the_loop() -> None:
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), 0.01)
    backend = FakeBackend(clock)
    with pytest.raises(ConfigError, match="dt"):
        ControlLoop(backend, generator, OBSERVER, LoopConfig(dt=DT), clock=clock)


@pytest.mark.parametrize(
    ("field", "value"),
    [("dt", 0.0), ("margin", 0.02), ("margin", -0.001), ("stale_timeout", 0.0), ("seed", -1), ("latency_window", 0)],
)
def test_bad_loop_config_is_rejected_by_name(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"LoopConfig.{field}"):
        LoopConfig(**{"dt": DT, field: value})


def test_loop_config_has_no_period_of_its_own() -> None:
    with pytest.raises(TypeError, match="dt"):
        LoopConfig()  # type: ignore[call-arg]


def test_reset_rejects_bad_q() -> None:
    loop, _, _ = make_loop()
    with pytest.raises(InputError, match="q"):
        loop.reset(np.full(7, np.nan))


# --- levels and budget -------------------------------------------------------------------------
def test_full_solve_when_the_budget_allows() -> None:
    loop, backend, clock = make_loop(plan=0.015)
    for n in range(1, 4):
        cmd = tick(loop, clock)
        assert cmd.level == FallbackLevel.MPPI and cmd.reason == ""
        np.testing.assert_allclose(cmd.action, 0.6, rtol=1e-6)
        assert cmd.stats.iterations == PLANNER.iterations
        assert cmd.stats.elite_value_mean == 1.5
        assert cmd.stats.plan_latency_s == pytest.approx(0.015)
        assert not cmd.stats.deadline_miss
        assert backend.names() == ["plan"] * n
    assert loop.counters == {"ticks": 3, "MPPI": 3}
    assert backend.inputs("plan")[0]["explore_scale"] == 0.0


def test_over_budget_solve_goes_anytime_with_the_iterations_that_fit() -> None:
    loop, backend, clock = make_loop(plan=0.020, plan_init=0.001, plan_step=0.004)
    first = tick(loop, clock)  # never measured: tried, late, still used
    assert first.level == FallbackLevel.MPPI and first.stats.deadline_miss
    assert loop.counters["deadline miss"] == 1
    warm = backend.inputs("plan")[0]["mean"]
    assert isinstance(warm, np.ndarray)

    cmd = tick(loop, clock)
    # 16 ms budget: 1 ms init, then 4 ms steps while they fit -> 3 of 6.
    assert cmd.level == FallbackLevel.PARTIAL
    assert cmd.reason == "budget: 3/6 iterations"
    assert cmd.stats.iterations == 3 and not cmd.stats.deadline_miss
    np.testing.assert_allclose(cmd.action, 0.3, rtol=1e-6)  # the last completed iteration's action
    assert cmd.stats.elite_value_mean == pytest.approx(0.3)
    assert backend.names()[1:] == ["plan_init"] + ["plan_step"] * 3
    c = loop.counters
    assert (c["PARTIAL"], c["budget"], c["MPPI"], c["ticks"]) == (1, 1, 1, 2)

    # The next tick starts from shift(last step's mean), with the sampling std reset.
    steps = backend.inputs("plan_step")
    last_mean = refit(steps[-1]["mean"])  # type: ignore[arg-type]
    tick(loop, clock)
    next_first = backend.inputs("plan_step")[3]
    np.testing.assert_array_equal(next_first["mean"], shift(last_mean))
    np.testing.assert_array_equal(next_first["std"], np.full((3, 7), PLANNER.max_std, dtype=np.float32))


def test_all_iterations_within_budget_in_anytime_mode_is_a_full_solve() -> None:
    loop, backend, clock = make_loop(plan=0.030, plan_init=0.001, plan_step=0.002)
    full = tick(loop, clock)
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.MPPI and cmd.reason == "" and cmd.stats.iterations == 6
    np.testing.assert_array_equal(cmd.action, full.action)  # same as the full solve
    assert backend.names()[1:] == ["plan_init"] + ["plan_step"] * 6


def test_budget_too_small_for_any_iteration_gives_the_policy() -> None:
    loop, backend, clock = make_loop(plan=0.030, plan_init=0.012, plan_step=0.005)
    levels = [tick(loop, clock).level for _ in range(2)]
    # tick 1 measures plan (late); tick 2 measures init and one step (late); from then on neither fits.
    assert levels == [FallbackLevel.MPPI, FallbackLevel.PARTIAL]
    n_calls = len(backend.calls)
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.POLICY and cmd.reason == "budget"
    np.testing.assert_allclose(cmd.action, -0.2, rtol=1e-6)
    assert backend.names()[n_calls:] == ["plan_init", "policy"]
    assert math.isnan(cmd.stats.elite_value_mean) and cmd.stats.iterations == 0
    assert loop.counters["POLICY"] == 1 and loop.counters["deadline miss"] == 2


def test_without_anytime_a_slow_solve_gives_the_policy() -> None:
    loop, backend, clock = make_loop(LoopConfig(dt=DT, anytime=False), plan=0.030)
    tick(loop, clock)
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.POLICY and cmd.reason == "budget"
    assert backend.names() == ["plan", "policy"]


def test_no_time_left_for_the_policy_falls_to_the_shifted_previous_plan() -> None:
    loop, backend, clock = make_loop(plan=0.030, plan_init=0.020, policy=0.020)
    tick(loop, clock)  # full solve (late): a plan exists
    cmd = tick(loop, clock)  # init eats the budget: no step, and no time left to try the policy
    assert cmd.level == FallbackLevel.SHIFTED and cmd.reason == "budget"
    np.testing.assert_array_equal(cmd.action, PLAN_MEAN[0])
    assert "policy" not in backend.names()
    assert loop.counters["SHIFTED"] == 1 and loop.counters["budget"] == 1


def test_policy_measured_too_slow_falls_to_the_shifted_previous_plan() -> None:
    loop, backend, clock = make_loop(policy=0.020)
    backend.fail = {"plan": "raise"}
    backend.cost["plan"] = 0.0
    assert tick(loop, clock).level == FallbackLevel.POLICY  # measures the policy: 20 ms, late
    backend.fail, backend.cost["plan"] = {}, 0.015
    assert tick(loop, clock).level == FallbackLevel.MPPI
    backend.fail = {"plan": "raise"}
    for k in range(2):
        cmd = tick(loop, clock)
        assert cmd.level == FallbackLevel.SHIFTED
        assert cmd.reason == "backend error: RuntimeError: plan broke; budget"
        np.testing.assert_array_equal(cmd.action, PLAN_MEAN[k])  # the warm start keeps advancing
    assert backend.names().count("policy") == 1


def test_raising_policy_falls_to_the_shifted_previous_plan() -> None:
    loop, backend, clock = make_loop()
    tick(loop, clock)
    backend.fail = {"plan": "raise", "policy": "raise"}
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.SHIFTED
    assert cmd.reason == "backend error: RuntimeError: plan broke; backend error: RuntimeError: policy broke"
    assert loop.counters["backend error: RuntimeError"] == 1  # counted once per tick


def test_no_previous_plan_means_hold() -> None:
    loop, backend, clock = make_loop()
    backend.fail = {"plan": "raise", "policy": "raise"}
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.HOLD
    assert cmd.reason.endswith("no previous plan")
    np.testing.assert_array_equal(cmd.action, np.zeros(7))
    assert loop.counters["HOLD"] == 1 and loop.counters["no previous plan"] == 1
    assert loop.fault == cmd.reason


@pytest.mark.parametrize(
    ("mode", "reason", "key"),
    [
        ("raise", "backend error: RuntimeError: plan broke", "backend error: RuntimeError"),
        ("nan", "non-finite output from plan", "non-finite output from plan"),
        ("range", "action out of range from plan: max |a| = 1.5", "action out of range"),
        ("shape", "bad output from plan: action has shape (6,); expected (7,)", "bad output from plan"),
    ],
)
def test_backend_fault_falls_back_to_the_policy_with_the_reason(mode: str, reason: str, key: str) -> None:
    loop, backend, clock = make_loop()
    backend.fail = {"plan": mode}
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.POLICY and cmd.reason == reason
    np.testing.assert_allclose(cmd.action, -0.2, rtol=1e-6)
    assert loop.counters[key] == 1 and loop.counters["POLICY"] == 1


def test_fault_in_an_anytime_iteration_falls_back_to_the_policy() -> None:
    loop, backend, clock = make_loop(plan=0.030)
    tick(loop, clock)
    backend.fail = {"plan_step": "nan"}
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.POLICY and cmd.reason == "non-finite output from plan_step"


# --- warm start and noise ----------------------------------------------------------------------
def test_warm_start_is_carried_across_ticks() -> None:
    loop, backend, clock = make_loop()
    for _ in range(3):
        tick(loop, clock)
    means = [i["mean"] for i in backend.inputs("plan")]
    np.testing.assert_array_equal(means[0], np.zeros((3, 7)))
    for before, after in zip(means, means[1:], strict=False):
        np.testing.assert_array_equal(after, full_solve(before))  # the shifted mean returned one tick earlier
    assert np.any(means[2] != 0)


def test_same_seed_same_noise() -> None:
    def noises(seed: int) -> list[PlanNoiseArrays]:
        loop, backend, clock = make_loop(LoopConfig(dt=DT, seed=seed))
        for _ in range(3):
            tick(loop, clock)
        return [i["noise"] for i in backend.inputs("plan")]  # type: ignore[misc]

    a, b, c = noises(3), noises(3), noises(4)
    for x, y in zip(a, b, strict=True):
        for name in PlanNoiseArrays._fields:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    assert not np.array_equal(a[0].samples, c[0].samples)
    ref = draw_noise_np(PLANNER, 7, 5, np.random.default_rng(3))  # the loop's first draw
    np.testing.assert_array_equal(a[0].samples, ref.samples)
    assert not np.array_equal(a[0].samples, a[1].samples)


# --- input faults, hold and recovery ------------------------------------------------------------
@pytest.mark.parametrize("field", ["q", "dq", "goal"])
def test_non_finite_input_holds_naming_it_then_recovers(field: str) -> None:
    loop, backend, clock = make_loop()
    tick(loop, clock)
    tick(loop, clock)
    n_calls = len(backend.calls)
    bad = {"q": Q0.copy(), "dq": DQ0.copy(), "goal": GOAL.copy()}
    bad[field][1] = np.nan
    cmd = tick(loop, clock, **bad)
    assert cmd.level == FallbackLevel.HOLD and cmd.reason == f"non-finite input: {field}"
    assert len(backend.calls) == n_calls  # the model is not asked
    assert loop.counters[f"non-finite input: {field}"] == 1

    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.MPPI and loop.fault == ""
    np.testing.assert_array_equal(backend.inputs("plan")[-1]["mean"], np.zeros((3, 7)))  # clean warm start
    assert loop.counters["recovery"] == 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"q": np.zeros(6)}, "wrong shape: q has shape (6,); expected (7,)"),
        ({"dq": np.zeros((7, 1))}, "wrong shape: dq has shape (7, 1); expected (7,)"),
        ({"goal": np.zeros(2)}, "wrong shape: goal has shape (2,); expected (3,)"),
        ({"goal": "here"}, "bad input: goal is not a numeric array"),
    ],
)
def test_wrong_input_holds_and_never_raises(kwargs: dict[str, object], reason: str) -> None:
    loop, _, clock = make_loop()
    tick(loop, clock)
    cmd = tick(loop, clock, **kwargs)
    assert cmd.level == FallbackLevel.HOLD and cmd.reason == reason


def _replaced(vector: np.ndarray, index: int, value: object) -> np.ndarray:
    out = vector.astype(np.result_type(vector, np.asarray(value)))
    out[index] = value
    return out


@pytest.mark.parametrize(
    ("kwargs", "key", "text"),
    [
        ({"q": _replaced(Q0, 3, 0.5)}, "implausible input: q",
         "q[3] (fr3_joint4) = 0.5 rad is outside [-3.0421, -0.1518]"),
        ({"q": np.degrees(Q0)}, "implausible input: q", "q[1] (fr3_joint2) = -45 rad"),
        ({"q": _replaced(Q0, 0, 1e30)}, "implausible input: q", "q[0] (fr3_joint1) = 1e+30 rad"),
        ({"dq": _replaced(DQ0, 4, 1e6)}, "implausible input: dq",
         "dq[4] (fr3_joint5) = 1e+06 rad/s exceeds the limit 5.26"),
        ({"goal": np.array([100.0, 100.0, 100.0])}, "goal outside the workspace",
         "goal[0] = 100 m is outside [0.3, 0.65]"),
        ({"goal": np.array([0.5, 0.1, 1e30])}, "goal outside the workspace",
         "goal[2] = 1e+30 m is outside [0.15, 0.55]"),
        ({"q": Q0 + 0.1j}, "bad input: q", "bad input: q is complex"),
    ],
)  # fmt: skip
def test_implausible_input_holds_naming_it_then_recovers(kwargs: dict[str, object], key: str, text: str) -> None:
    """Finite but impossible: outside the joint range or velocity limits by more than the robot's
    tolerance, in degrees, a goal outside the trained workspace, a complex number. The model is not
    asked; the loop holds with the reason and recovers on the next good state.
    """
    loop, backend, clock = make_loop()
    tick(loop, clock)
    n_calls = len(backend.calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: the imaginary part is not silently dropped
        cmd = tick(loop, clock, **kwargs)
    assert cmd.level == FallbackLevel.HOLD and text in cmd.reason, cmd.reason
    assert len(backend.calls) == n_calls
    assert loop.counters[key] == 1
    assert tick(loop, clock).level == FallbackLevel.MPPI and loop.counters["recovery"] == 1


def test_the_tolerances_are_the_robots() -> None:
    """Just inside the tolerance is a state; the tolerance is RobotSpec's, not the loop's."""
    loop, _, clock = make_loop()
    q = Q0.copy()
    q[3] = FR3.limits.q_max[3] + 0.9 * FR3.position_tolerance
    assert tick(loop, clock, q=q).level == FallbackLevel.MPPI
    q[3] = FR3.limits.q_max[3] + 1.1 * FR3.position_tolerance
    assert tick(loop, clock, q=q).level == FallbackLevel.HOLD


def test_a_repeated_or_older_state_holds_until_a_newer_one() -> None:
    loop, backend, clock = make_loop()
    tick(loop, clock)
    clock.advance(DT)
    stamp = clock()
    assert loop.step(stamp, Q0, DQ0, GOAL).level == FallbackLevel.MPPI
    clock.advance(0.01)
    cmd = loop.step(stamp, Q0, DQ0, GOAL)  # no new measurement since the last tick
    assert cmd.level == FallbackLevel.HOLD and cmd.reason.startswith("repeated state")
    clock.advance(0.01)
    cmd = loop.step(stamp - 0.005, Q0, DQ0, GOAL)  # reordered: older than the one planned from
    assert cmd.level == FallbackLevel.HOLD and cmd.reason == "state older than the last: 5.0 ms before it"
    assert loop.counters["repeated state"] == 1 and loop.counters["state older than the last"] == 1
    assert tick(loop, clock).level == FallbackLevel.MPPI
    loop.reset(Q0)  # a new episode may restart the clock
    assert loop.step(clock() - 0.01, Q0, DQ0, GOAL).level == FallbackLevel.MPPI


def test_reset_refuses_an_implausible_state() -> None:
    loop, _, _ = make_loop()
    with pytest.raises(InputError, match=r"reset: implausible input: q\[3\] \(fr3_joint4\)"):
        loop.reset(_replaced(Q0, 3, 0.5))


def test_stale_or_future_state_holds() -> None:
    loop, _, clock = make_loop()
    tick(loop, clock)
    clock.advance(DT)
    cmd = loop.step(clock() - 0.06, Q0, DQ0, GOAL)
    assert cmd.level == FallbackLevel.HOLD and cmd.reason.startswith("stale state")
    assert cmd.stats.state_age_s == pytest.approx(0.06)
    clock.advance(DT)
    cmd = loop.step(clock() + 0.06, Q0, DQ0, GOAL)
    assert cmd.level == FallbackLevel.HOLD and cmd.reason.startswith("state from the future")
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.MPPI
    assert loop.counters["stale state"] == 1 and loop.counters["recovery"] == 1


def test_hold_request_holds_until_released() -> None:
    loop, _, clock = make_loop()
    tick(loop, clock)
    assert tick(loop, clock, hold=True).reason == "hold requested"
    assert tick(loop, clock, hold=True).level == FallbackLevel.HOLD
    assert tick(loop, clock).level == FallbackLevel.MPPI


def test_hold_continues_the_command_state_and_brakes() -> None:
    loop, backend, clock = make_loop()
    for _ in range(25):  # cruise: the command reaches the 0.6 velocity target
        tick(loop, clock)
    before = loop.command_state
    assert before is not None
    assert np.all(before.ddq == 0.0) and np.all(np.abs(before.dq) > 0.1)

    cmd = tick(loop, clock, q=np.full(7, np.nan))
    assert cmd.level == FallbackLevel.HOLD
    expected = loop.generator.generate(before, np.zeros(7))
    np.testing.assert_array_equal(cmd.chunk.positions, expected.chunk.positions)  # starts from the command
    np.testing.assert_array_equal(cmd.chunk.velocities, expected.chunk.velocities)
    after = loop.command_state
    assert after is not None
    np.testing.assert_array_equal(cmd.chunk.positions[0], after.q)  # the next tick starts at this knot
    # Velocity magnitude never grows while braking and ends at rest.
    speeds = np.abs(np.vstack([before.dq, cmd.chunk.velocities]))
    assert np.all(np.diff(speeds, axis=0) <= 1e-12)
    assert np.all(cmd.chunk.velocities[-1] == 0.0)

    second = tick(loop, clock, q=np.full(7, np.nan))  # keeps braking from where the first hold left off
    assert np.all(np.abs(second.chunk.velocities[0]) < np.abs(cmd.chunk.velocities[0]))


def test_chunks_and_observations_follow_the_training_env() -> None:
    loop, backend, clock = make_loop()
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    state = generator.rest(Q0)
    q, dq = Q0 + 0.01, np.full(7, 0.05)
    for _ in range(3):
        cmd = tick(loop, clock, q=q, dq=dq)
        obs = backend.inputs("plan")[-1]["obs"]
        np.testing.assert_array_equal(obs, reach_observation(FR3, q, dq, GOAL, state.dq, state.ddq))
        result = generator.generate(state, cmd.action)
        np.testing.assert_array_equal(cmd.chunk.positions, result.chunk.positions)
        state = result.next_state
    assert loop.command_state is not None
    np.testing.assert_array_equal(loop.command_state.q, state.q)


def test_first_tick_without_reset_starts_at_rest_at_q() -> None:
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(), DT)
    backend = backend_for(clock, generator)
    loop = ControlLoop(backend, generator, OBSERVER, LoopConfig(dt=DT), clock=clock)
    cmd = tick(loop, clock, q=np.full(7, np.nan))  # no valid q yet: nothing to send
    assert cmd.level == FallbackLevel.HOLD and cmd.chunk.positions.shape == (0, 7)
    assert loop.command_state is None
    cmd = tick(loop, clock)
    assert cmd.level == FallbackLevel.MPPI
    expected = generator.generate(generator.rest(Q0), cmd.action)
    np.testing.assert_array_equal(cmd.chunk.positions, expected.chunk.positions)


def test_latency_history_forgets_old_spikes() -> None:
    loop, backend, clock = make_loop(LoopConfig(dt=DT, latency_window=3), plan=0.030)
    tick(loop, clock)  # a one-off slow solve
    backend.cost["plan"] = 0.010
    for _ in range(3):
        assert tick(loop, clock).level == FallbackLevel.MPPI  # anytime, all iterations fit
    assert backend.names().count("plan") == 1
    tick(loop, clock)  # the spike left the window: init + 6 steps predicts a full solve fits
    assert backend.names()[-1] == "plan"
    assert loop.last_stats is not None and not loop.last_stats.deadline_miss


@pytest.mark.parametrize(("quantile", "full_solves_after_spike"), [(0.9, 9), (1.0, 0)])
def test_a_rare_spike_does_not_stop_full_solves(quantile: float, full_solves_after_spike: int) -> None:
    """Of 10 solves in the window one took 30 ms (budget 16 ms): the 0.9 quantile still predicts
    the usual 10 ms and keeps calling the full solve; the worst case (1.0) plans iteration by
    iteration instead (here all iterations still fit, so those ticks are MPPI too).
    """
    loop, backend, clock = make_loop(LoopConfig(dt=DT, latency_window=20, latency_quantile=quantile), plan=0.010)
    for _ in range(9):
        assert tick(loop, clock).level == FallbackLevel.MPPI
    backend.cost["plan"] = 0.030
    spike = tick(loop, clock)
    assert spike.level == FallbackLevel.MPPI and loop.last_stats is not None and loop.last_stats.deadline_miss
    backend.cost["plan"] = 0.010
    before = backend.names().count("plan")
    levels = [tick(loop, clock).level for _ in range(9)]
    assert levels == [FallbackLevel.MPPI] * 9
    assert backend.names().count("plan") - before == full_solves_after_spike
    assert loop.counters.get("deadline miss", 0) == 1


def test_latency_quantile_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"LoopConfig.latency_quantile"):
        LoopConfig(dt=DT, latency_quantile=0.0)


def test_a_planner_slowed_past_the_budget_falls_back_to_the_policy_and_says_why() -> None:
    """``SlowedBackend`` (the controller's ``fault_planner_delay``) on a real clock: every planner call
    sleeps 30 ms, more than the 16 ms budget, so after the first measurements only the policy prior fits.
    """
    import time

    from wm_control.runtime import control_loop
    from wm_control.runtime.slowed import SlowedBackend

    inner = FakeBackend(FakeClock())
    slowed = SlowedBackend(inner, 0.03)
    assert "slowed by 30 ms" in slowed.name and slowed.contract is inner.contract
    loop = control_loop(slowed, clock=time.monotonic)
    q0 = FR3.start_q
    levels = [loop.step(time.monotonic(), q0, np.zeros(7), np.array([0.5, 0.0, 0.4])).level for _ in range(8)]
    assert levels[-3:] == [FallbackLevel.POLICY] * 3, levels
    assert loop.counters["budget"] >= 3 and loop.counters.get("MPPI", 0) <= 1
    assert inner.names().count("policy") >= 3  # the policy prior is not slowed
    with pytest.raises(ConfigError, match="delay=-0.01"):
        SlowedBackend(inner, -0.01)


def test_a_hold_brakes_to_rest_without_the_posture_pull_and_planning_keeps_it() -> None:
    """With ``ChunkConfig.posture_gain`` a planned tick pulls the joints home in the null space even
    at a zero action (as in training); a hold leaves the pull out, so the arm comes to rest where it is.
    """
    drifted = np.array([0.86, -1.56, -0.97, -2.8, 1.37, 4.02, -2.07])
    clock = FakeClock()
    generator = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3, posture_gain=0.5), DT)
    loop = ControlLoop(backend_for(clock, generator), generator, OBSERVER, LoopConfig(dt=DT), clock=clock)
    loop.reset(drifted)
    held = tick(loop, clock, q=drifted, hold=True)
    assert held.level == FallbackLevel.HOLD
    np.testing.assert_array_equal(held.chunk.positions, np.broadcast_to(drifted, held.chunk.positions.shape))
    planned = tick(loop, clock, q=drifted)
    assert planned.level == FallbackLevel.MPPI
    expected = generator.generate(generator.rest(drifted), planned.action)
    np.testing.assert_array_equal(planned.chunk.positions, expected.chunk.positions)
    unpulled = generator.generate(generator.rest(drifted), planned.action, posture=False)
    assert not np.array_equal(planned.chunk.positions, unpulled.chunk.positions)


def test_a_contract_from_before_the_posture_pull_is_one_without_it() -> None:
    """A contract that does not record ``posture_gain`` (exports made before it existed) was shaped
    without the pull: a generator without it runs it; one with it is refused, the field named.
    """
    plain = ChunkGenerator(FR3, ChunkConfig(), DT)
    control = fr3_control(plain)
    old_chunk = {k: v for k, v in control.action["chunk"].items() if k != "posture_gain"}
    old = dataclasses.replace(control, action={**control.action, "chunk": old_chunk})
    clock = FakeClock()
    ControlLoop(FakeBackend(clock, model_contract(old)), plain, OBSERVER, LoopConfig(dt=DT), clock=clock)
    pulled = ChunkGenerator(FR3, ChunkConfig(posture_gain=0.5), DT)
    with pytest.raises(ModelContractError, match=r"'action.chunk.posture_gain' is 0.0; .* with 0.5"):
        ControlLoop(FakeBackend(clock, model_contract(old)), pulled, OBSERVER, LoopConfig(dt=DT), clock=clock)
