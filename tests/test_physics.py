"""The 1 kHz layer: gravity compensation, impedance tracking, and the reflex monitor."""

from __future__ import annotations

import numpy as np
import pytest

from sim.monitor import MonitorConfig, ReflexError, ReflexMonitor
from sim.physics import FR3Sim
from sim.scene import build_model
from sim.tracking import ImpedanceGains, TrackingController
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.errors import ConfigError, InputError
from wm_control.robot import FR3
from wm_control.trajectory import TrajectoryChunk

DT = 0.02
H = 0.001  # servo period of the 1 kHz layer [s]


@pytest.fixture(scope="module")
def fr3() -> FR3Sim:
    return FR3Sim(build_model(hand=True, scene=True))


def _pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(FR3.start_q + rng.uniform(-0.5, 0.5, 7), FR3.limits.q_min + 0.2, FR3.limits.q_max - 0.2)


@pytest.mark.parametrize("gains", ["impedance", "gravity-only"])
def test_arm_holds_pose_with_gravity_compensation(fr3: FR3Sim, gains: str) -> None:
    fr3.set_gains(ImpedanceGains() if gains == "impedance" else ImpedanceGains(kp=(0.0,) * 7, kd=(0.0,) * 7))
    try:
        for seed in range(3):
            fr3.reset(_pose(seed))
            p0 = fr3.tcp_position
            report = fr3.advance(2.0)
            assert report.reflex is None
            assert np.linalg.norm(fr3.tcp_position - p0) < 1e-3
    finally:
        fr3.set_gains(ImpedanceGains())


def test_impedance_tracks_smooth_reference(fr3: FR3Sim) -> None:
    """A 0.5 Hz, 0.2 rad sin^2 motion of every joint (peak 0.63 rad/s, 2 rad/s^2).

    The JTC gains (kp 600..50) have no inertia feed-forward, so the lag is about M a / kp plus
    friction / kp: measured RMS 3-10 mrad per joint (max 16 mrad). The bound is 20 mrad RMS, 40 max.
    """
    q0 = FR3.start_q
    fr3.reset(q0)
    w = 2 * np.pi * 0.5

    def ref(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = q0 + 0.2 * np.sin(w * t)[:, None] ** 2 * np.ones(7)
        dq = 0.2 * np.sin(2 * w * t)[:, None] * w * np.ones(7)
        return q, dq

    errors = []
    for k in range(200):
        t = (k + 1 + np.arange(5)) * DT
        q, dq = ref(t)
        fr3.send(TrajectoryChunk(q, dq, DT))
        assert fr3.advance(DT).reflex is None
        errors.append(fr3.q - q[0])
    e = np.array(errors)
    rms = np.sqrt((e**2).mean(axis=0))
    assert np.all(rms < 0.020), rms
    assert np.all(np.abs(e).max(axis=0) < 0.040)


def test_step_command_raises_reflex_with_reason(fr3: FR3Sim) -> None:
    fr3.reset(FR3.start_q)
    q = np.tile(FR3.start_q, (3, 1))
    q[:, 0] += [0.02, 0.04, 0.06]
    v = np.zeros_like(q)
    v[:, 0] = 1.0
    fr3.send(TrajectoryChunk(q, v, DT))
    report = fr3.advance(DT)
    assert report.reflex is not None
    assert report.reflex.kind == "acceleration" and report.reflex.joint == 0
    assert "fr3_joint1" in report.reflex.message and "exceeds limit 10" in report.reflex.message
    with pytest.raises(ReflexError, match="reset first"):
        fr3.advance(DT)
    with pytest.raises(ReflexError):
        fr3.send(TrajectoryChunk(q, v, DT))
    fr3.reset(FR3.start_q)
    assert fr3.reflex is None


def test_smooth_command_does_not_raise_reflex(fr3: FR3Sim) -> None:
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.8), DT)
    fr3.reset(FR3.start_q)
    state = gen.rest(FR3.start_q)
    for k in range(250):
        res = gen.generate(state, np.sin(np.arange(7) + 0.07 * k))
        fr3.send(res.chunk)
        assert fr3.advance(DT).reflex is None
        state = res.next_state


def test_velocity_jump_inside_chunk_raises_velocity_or_acceleration_reflex(fr3: FR3Sim) -> None:
    fr3.reset(FR3.start_q)
    q = FR3.start_q + np.outer(DT * np.arange(1, 4) * 3.0, np.eye(7)[3])  # joint 4 at 3 rad/s > 2.62
    v = np.outer(np.full(3, 3.0), np.eye(7)[3])
    fr3.send(TrajectoryChunk(q, v, DT))
    report = fr3.advance(3 * DT)
    assert report.reflex is not None and report.reflex.joint == 3
    assert report.reflex.kind in ("velocity", "acceleration")


def test_leaving_the_position_range_raises_position_reflex() -> None:
    # Without the command checks, a target beyond the joint range drives the joint out of it.
    sim = FR3Sim(build_model(hand=True, scene=True), monitor=MonitorConfig(command_limits=False))
    start = FR3.start_q.copy()
    start[6] = FR3.limits.q_max[6] - 0.02
    sim.reset(start)
    sim.send(TrajectoryChunk((start + np.eye(7)[6] * 0.2)[None].repeat(50, 0), np.zeros((50, 7)), DT))
    report = sim.advance(1.0)
    assert report.reflex is not None and report.reflex.kind == "position" and report.reflex.joint == 6


def test_driving_into_the_table_raises_collision_reflex() -> None:
    sim = FR3Sim(build_model(hand=True, scene=True))
    gen = ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.5), DT)
    sim.reset(FR3.start_q)
    state = gen.rest(FR3.start_q)
    action = np.zeros(7)
    action[1] = 1.0  # shoulder forward and elbow open: the hand goes down into the table
    action[3] = 1.0
    for _ in range(200):
        res = gen.generate(state, action)
        sim.send(res.chunk)
        report = sim.advance(DT)
        state = res.next_state
        if report.reflex is not None:
            break
    assert report.reflex is not None and report.reflex.kind == "collision", report
    assert "contact torque" in report.reflex.message


def test_torque_saturation_is_counted(fr3: FR3Sim) -> None:
    fr3.set_gains(ImpedanceGains(kp=(20000.0,) * 7, kd=(30.0,) * 7))
    try:
        fr3.reset(FR3.start_q)
        fr3.monitor = MonitorConfig(command_limits=False, position_limits=False, collision_torque=None)
        target = FR3.start_q + 0.05
        fr3.send(TrajectoryChunk(target[None], np.zeros((1, 7)), DT))
        assert fr3.advance(DT).torque_saturated_ticks > 0
    finally:
        fr3.monitor = MonitorConfig()
        fr3.set_gains(ImpedanceGains())


def test_bad_inputs(fr3: FR3Sim) -> None:
    with pytest.raises(InputError, match=r"reset q\[3\] \(fr3_joint4\) = 0.5000 rad is outside"):
        fr3.reset(np.array([0, 0, 0, 0.5, 0, 1.5, 0]))
    with pytest.raises(InputError, match="NaN"):
        fr3.reset(np.full(7, np.nan))
    with pytest.raises(InputError, match="shorter than one physics tick"):
        fr3.reset(FR3.start_q)
        fr3.advance(0.0001)
    with pytest.raises(ConfigError, match=r"ImpedanceGains.kp has 3 values"):
        ImpedanceGains(kp=(1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match=r"collision_torque\[0\]=-1.0 is out of range"):
        MonitorConfig(collision_torque=(-1.0,) * 7)


def test_monitor_alone_flags_a_velocity_step_and_passes_a_smooth_command() -> None:
    monitor = ReflexMonitor(FR3, H)
    monitor.reset(FR3.start_q)
    ticks = np.arange(1, 21)[:, None]
    # Joint 3 jumps from rest to 1 rad/s at the first tick: 1000 rad/s^2 > ddq_max (and a jerk spike at the
    # same tick; ties go to the acceleration check).
    step = FR3.start_q + ticks * H * 1.0 * np.eye(7)[2]
    reflex = monitor.check_command(step, time=0.5)
    assert reflex is not None and reflex.kind == "acceleration" and reflex.joint == 2
    assert reflex.time == pytest.approx(0.5 + H) and reflex.value == pytest.approx(1.0 / H)
    assert "fr3_joint3" in reflex.message and "exceeds limit 10" in reflex.message
    # 0.01 rad sin^2 over 200 ms on every joint: peak 0.16 rad/s, 4.9 rad/s^2, 155 rad/s^3, all inside.
    t = np.arange(1, 201)[:, None] * H
    smooth = FR3.start_q + 0.01 * np.sin(np.pi * t / 0.2) ** 2 * np.ones(7)
    assert monitor.check_command(smooth, time=0.0) is None
    # The history continues across calls: the same smooth command in two pieces passes too.
    monitor.record(smooth[:100])
    assert monitor.check_command(smooth[100:], time=0.1) is None
    # A position past the joint range is reported at its tick; with the check off nothing is.
    qlog = np.tile(FR3.start_q, (10, 1))
    qlog[4:, 6] = FR3.limits.q_max[6] + 0.01
    pos = monitor.check_position(qlog, time=1.0)
    assert pos is not None and pos.kind == "position" and pos.joint == 6
    assert pos.time == pytest.approx(1.0 - 10 * H + 5 * H) and pos.limit == FR3.limits.q_max[6]
    monitor.config = MonitorConfig(command_limits=False, position_limits=False)
    assert monitor.check_command(step, time=0.5) is None and monitor.check_position(qlog, time=1.0) is None


def test_tracking_alone_passes_through_the_knots_and_holds_the_last() -> None:
    tracker = TrackingController(H, ImpedanceGains())
    q0 = FR3.start_q
    tracker.reset(q0)
    rng = np.random.default_rng(0)
    knots = q0 + np.cumsum(rng.uniform(-0.01, 0.01, (3, 7)), axis=0)
    vels = rng.uniform(-0.5, 0.5, (3, 7))
    tracker.send(TrajectoryChunk(knots, vels, DT))
    sp = tracker.setpoints(80)  # 60 ticks of chunk, then 20 of hold
    knot_rows = [19, 39, 59]  # ticks ending at DT, 2 DT, 3 DT
    np.testing.assert_allclose(sp.q[knot_rows], knots, atol=1e-12)
    np.testing.assert_allclose(sp.dq[knot_rows], vels, atol=1e-9)
    np.testing.assert_array_equal(sp.q[60:], np.repeat(knots[-1:], 20, axis=0))
    np.testing.assert_array_equal(sp.dq[60:], 0.0)
    kp, kd = np.array(ImpedanceGains().kp), np.array(ImpedanceGains().kd)
    np.testing.assert_array_equal(sp.ctrl, kp * sp.q + kd * sp.dq)
    # Executing in pieces gives the same setpoints as one piece (up to rounding of the sample times), and the
    # command state follows.
    tracker.commit(sp, 0)
    np.testing.assert_array_equal(tracker.command[0], q0)
    tracker.commit(tracker.setpoints(25), 25)
    np.testing.assert_allclose(tracker.setpoints(55).q, sp.q[25:], atol=1e-12)
    np.testing.assert_array_equal(tracker.command[0], sp.q[24])
    with pytest.raises(InputError, match=r"commit ticks=81 is out of range; valid: \[0, 80\]"):
        tracker.commit(sp, 81)
    with pytest.raises(InputError, match="chunk positions have shape"):
        tracker.send(TrajectoryChunk(knots[:, :6], vels[:, :6], DT))
