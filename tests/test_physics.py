"""The 1 kHz layer: gravity compensation, impedance tracking, stamped chunks, and the reflex monitor."""

from __future__ import annotations

import numpy as np
import pytest

from sim.monitor import MonitorConfig, ReflexError, ReflexMonitor
from sim.physics import FR3Sim
from sim.scene import build_model
from sim.tracking import JOIN_TIME, ImpedanceGains, TrackingController
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.errors import ConfigError, InputError
from wm_control.robot import FR3
from wm_control.runtime.commander import command_state_at
from wm_control.trajectory import StampedChunk, TrajectoryChunk

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


# --- stamped chunks (joint_trajectory_controller header-stamp semantics) ----------------------------
PLAYOUT = 0.015  # playout delay of the late-delivery tests [s]: the worst delivery delay they draw


def _generator(sim: FR3Sim) -> ChunkGenerator:
    return ChunkGenerator(FR3, ChunkConfig(velocity_fraction=0.3), DT, servo_period=sim.h)


def _aggressive_actions(ticks: int = 50) -> list[np.ndarray]:
    """20 action sequences: all +1, all -1, bang-bang (every joint flips every 2, 4, 8 ticks, both
    signs) and uniform random; each runs 50 ticks from ``FR3.start_q`` without a reflex when on time.
    """
    seqs = [np.ones((ticks, 7)), -np.ones((ticks, 7))]
    for period in (2, 4, 8):
        bang = np.where((np.arange(ticks) // period) % 2 == 0, 1.0, -1.0)[:, None] * np.ones(7)
        seqs += [bang, -bang]
    rng = np.random.default_rng(0)
    seqs += [rng.uniform(-1.0, 1.0, (ticks, 7)) for _ in range(20 - len(seqs))]
    return seqs


def _drive(sim: FR3Sim, actions: np.ndarray, delays_ms: np.ndarray, stamped: bool) -> list[np.ndarray]:
    """Run one action per control tick, each chunk delivered ``delays_ms[k]`` ms after tick k starts.

    The chunk of tick k starts from the command state the generator used, stamped at tick k's start.
    Returns the command position at the end of every tick; stops at a reflex (``sim.reflex``).
    """
    gen = _generator(sim)
    sim.reset(FR3.start_q)
    state = gen.rest(FR3.start_q)
    commands = []
    for action, delay_ms in zip(actions, delays_ms, strict=True):
        stamp = sim.time
        res = gen.generate(state, action)
        if delay_ms and sim.advance(delay_ms * H).reflex is not None:
            break
        if stamped:
            sim.send_stamped(StampedChunk(stamp, state.q, state.dq, res.chunk))  # refusals: sim.refused_chunks
        else:
            sim.send(res.chunk)
        if sim.advance(DT - delay_ms * H).reflex is not None:
            break
        commands.append(sim.command[0])
        state = res.next_state
    return commands


def test_stamped_chunks_at_zero_delay_reproduce_send_exactly() -> None:
    """``send(chunk)`` is ``send_stamped`` of the chunk stamped now from the current command: bit for bit,
    in the samples of the tracking layer and in the physics. Stamped from the generator's own state
    (what a controller sends) they differ only by the rounding of the spline's end velocity.
    """
    plain, stamped, own = (FR3Sim(build_model(hand=True, scene=True)) for _ in range(3))
    trackers = [TrackingController(H, ImpedanceGains()) for _ in range(2)]
    gen = _generator(plain)
    rng = np.random.default_rng(3)
    state = gen.rest(FR3.start_q)
    for sim in (plain, stamped, own):
        sim.reset(FR3.start_q)
    for tracker in trackers:
        tracker.reset(FR3.start_q)
    for k in range(60):
        res = gen.generate(state, rng.uniform(-1.0, 1.0, 7))
        plain.send(res.chunk)
        assert stamped.send_stamped(StampedChunk(stamped.time, *stamped.command, res.chunk)) is None
        assert own.send_stamped(StampedChunk(own.time, state.q, state.dq, res.chunk)) is None
        trackers[0].send(res.chunk)
        assert trackers[1].send_stamped(StampedChunk(k * DT, *trackers[1].command, res.chunk), k * DT) is None
        ref, sp = (t.setpoints(20) for t in trackers)
        for a, b in zip(ref, sp, strict=True):
            np.testing.assert_array_equal(a, b)
        for tracker, s in zip(trackers, (ref, sp), strict=True):
            tracker.commit(s, 20)
        for sim in (plain, stamped, own):
            assert sim.advance(DT).reflex is None
        np.testing.assert_array_equal(stamped.command[0], plain.command[0])
        np.testing.assert_array_equal(stamped.command[1], plain.command[1])
        np.testing.assert_array_equal(stamped.data.qpos, plain.data.qpos)
        np.testing.assert_array_equal(stamped.data.qvel, plain.data.qvel)
        np.testing.assert_allclose(own.command[0], plain.command[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(own.data.qpos, plain.data.qpos, rtol=0, atol=1e-9)
        state = res.next_state
    assert stamped.refused_chunks == {"future": 0, "expired": 0, "out_of_order": 0, "unjoinable": 0}


def test_late_stamped_chunks_within_the_playout_delay_trip_no_reflex() -> None:
    """Chunks delivered 0-15 ms late with random jitter (20 aggressive sequences x 50 ticks, 30 % velocity).

    Stamped, with a 15 ms playout delay, no chunk is refused, no reflex fires and the command is the
    one of on-time delivery: each chunk takes over exactly at the previous chunk's first knot. Plain
    ``send`` trips the acceleration / jerk reflexes (each chunk starts from wherever the command is
    when it arrives). Stamped delivery without a playout delay joins every chunk late: the join offset
    absorbs the difference within its share of the limits where it can decay within
    ``JOIN_TIME_MAX``, and a chunk that would need longer is refused as unjoinable (the active chunk
    brakes instead), so no reflex fires either; but the command is no longer the on-time one.
    """
    model = build_model(hand=True, scene=True)
    buffered, unbuffered = FR3Sim(model, playout_delay=PLAYOUT), FR3Sim(model)
    rng = np.random.default_rng(7)
    reflexes = {"stamped, playout 15 ms": 0, "stamped, playout 0": 0, "send": 0}
    kinds = set()
    for i, actions in enumerate(_aggressive_actions()):
        delays = rng.integers(0, 16, len(actions))  # [ms], 0..15
        late = _drive(buffered, actions, delays, stamped=True)
        reflexes["stamped, playout 15 ms"] += buffered.reflex is not None
        if i < 2:  # the command does not depend on the delivery delay: compare with on-time delivery
            on_time = _drive(buffered, actions, np.zeros_like(delays), stamped=True)
            np.testing.assert_allclose(np.array(late), np.array(on_time), rtol=0, atol=1e-12)
        for sim, stamped, key in ((unbuffered, True, "stamped, playout 0"), (unbuffered, False, "send")):
            _drive(sim, actions, delays, stamped)
            if sim.reflex is not None:
                reflexes[key] += 1
                kinds.add(sim.reflex.kind)
    assert buffered.refused_chunks == {"future": 0, "expired": 0, "out_of_order": 0, "unjoinable": 0}
    assert reflexes["stamped, playout 15 ms"] == 0 and reflexes["stamped, playout 0"] == 0, reflexes
    assert unbuffered.refused_chunks["unjoinable"] >= 20, unbuffered.refused_chunks
    assert reflexes["send"] >= 15, reflexes
    assert kinds <= {"acceleration", "jerk"}, kinds
    actions, delays = _aggressive_actions()[0], rng.integers(0, 16, 50)
    late, on_time = (_drive(unbuffered, actions, d, stamped=True) for d in (delays, np.zeros_like(delays)))
    assert np.abs(np.array(late) - np.array(on_time)).max() > 1e-4


def _stamped_rest(q: np.ndarray, stamp: float, knots: int = 5, offset: float = 0.0) -> StampedChunk:
    """A chunk that starts at rest at ``q`` and holds ``q + offset`` at its knots (0: a hold)."""
    return StampedChunk(
        stamp, q, np.zeros(7), TrajectoryChunk(np.tile(q + offset, (knots, 1)), np.zeros((knots, 7)), DT)
    )


def test_refused_stamped_chunks_are_counted_and_the_active_trajectory_continues() -> None:
    model = build_model(hand=True, scene=True)
    sim, twin = FR3Sim(model), FR3Sim(model)
    gen = _generator(sim)
    state = gen.rest(FR3.start_q)
    for s in (sim, twin):
        s.reset(FR3.start_q)
    for k in range(10):
        res = gen.generate(state, np.ones(7))
        for s in (sim, twin):
            assert s.send_stamped(StampedChunk(k * DT, state.q, state.dq, res.chunk)) is None
        if k == 5:  # refused: a stamp two servo periods ahead, a chunk that ended, an older stamp
            now = sim.time
            future = sim.send_stamped(_stamped_rest(FR3.start_q, now + 2 * H))
            expired = sim.send_stamped(_stamped_rest(FR3.start_q, now - 5 * DT - H))
            older = sim.send_stamped(StampedChunk(now - DT, state.q, state.dq, res.chunk))
            assert future is not None and future.reason == "future" and future.stamp == now + 2 * H
            assert "more than one servo period after the clock" in future.message
            assert expired is not None and expired.reason == "expired" and "before it would start" in expired.message
            assert older is not None and older.reason == "out_of_order" and older.now == now
            assert sim.refused_chunks == {"future": 1, "expired": 1, "out_of_order": 1, "unjoinable": 0}
            assert sim.last_refusal == older
        for s in (sim, twin):
            assert s.advance(DT).reflex is None
        np.testing.assert_array_equal(sim.command[0], twin.command[0])
        np.testing.assert_array_equal(sim.data.qpos, twin.data.qpos)
        state = res.next_state
    # The edges, after a reset (stamp order starts afresh): a chunk that ends exactly now is accepted,
    # and so is a stamp one servo period ahead.
    sim.reset(FR3.start_q)
    assert sim.advance(0.2).reflex is None
    assert sim.send_stamped(_stamped_rest(FR3.start_q, sim.time - 5 * DT)) is None
    assert sim.send_stamped(_stamped_rest(FR3.start_q, sim.time + H)) is None
    assert sim.refused_chunks == {"future": 1, "expired": 1, "out_of_order": 1, "unjoinable": 0}
    assert sim.advance(DT).reflex is None
    np.testing.assert_array_equal(sim.command[0], FR3.start_q)
    with pytest.raises(InputError, match=r"stamped chunk start_q has shape \(6,\); expected \(7,\)"):
        sim.send_stamped(
            StampedChunk(sim.time, np.zeros(6), np.zeros(6), TrajectoryChunk(np.zeros((2, 6)), np.zeros((2, 6)), DT))
        )


def test_a_burst_of_old_chunks_from_a_command_never_executed_is_refused_not_joined_into_a_reflex() -> None:
    """What a restarted robot received over DDS in the killed-sim fault test (issue 13): the controller
    planned 10 chunks from rest while the new sim did not listen yet, each from where the previous one
    left the command, and the reliable writer delivered them at once, 100-300 ms late, to a sim at rest.
    Joined, the later ones (planned at speed) need a longer decay than ``JOIN_TIME_MAX`` and tripped the
    acceleration reflex; they are refused as unjoinable, the arm stays within the limits, and a chunk
    from rest at the held position afterwards is accepted and joined exactly.
    """
    sim = FR3Sim(build_model(hand=True, scene=True), playout_delay=0.03)
    sim.reset(FR3.start_q)
    gen = ChunkGenerator(FR3, ChunkConfig(), DT, servo_period=sim.h)
    state, chunks = gen.rest(FR3.start_q), []
    for k in range(10):
        res = gen.generate(state, np.ones(7))
        chunks.append(StampedChunk(0.1 + k * DT, state.q, state.dq, res.chunk))
        state = res.next_state
    assert sim.advance(0.4).reflex is None
    refusals = []
    for chunk in chunks:
        refusals.append(sim.send_stamped(chunk))
        assert sim.advance(0.002).reflex is None
    unjoinable = [r for r in refusals if r is not None]
    assert len(unjoinable) >= 8 and {r.reason for r in unjoinable} == {"unjoinable"}, refusals
    assert "away from the command where it takes over" in unjoinable[-1].message
    assert "more than 0.4 s" in unjoinable[-1].message
    assert sim.advance(1.0).reflex is None
    assert np.abs(sim.dq).max() < 0.05  # the accepted chunks (if any) ended at rest
    q = sim.command[0]
    fresh = gen.generate(gen.rest(q), np.ones(7))
    assert sim.send_stamped(StampedChunk(sim.time, q, np.zeros(7), fresh.chunk)) is None
    assert sim.advance(0.5).reflex is None
    assert sim.refused_chunks["unjoinable"] == len(unjoinable)


def test_tracking_switches_to_a_pending_chunk_at_its_stamp_plus_the_playout_delay() -> None:
    tracker = TrackingController(H, ImpedanceGains(), playout_delay=PLAYOUT)
    q0 = FR3.start_q
    tracker.reset(q0)
    rng = np.random.default_rng(4)
    knots = q0 + np.cumsum(rng.uniform(-0.01, 0.01, (3, 7)), axis=0)
    first = StampedChunk(0.0, q0, np.zeros(7), TrajectoryChunk(knots, rng.uniform(-0.5, 0.5, (3, 7)), DT))
    # Arrives at 4 ms (clock 0.004): pending until 15 ms, the command holds q0 until then.
    tracker.commit(tracker.setpoints(4), 4)
    assert tracker.send_stamped(first, 0.004) is None and tracker.pending == 1
    sp = tracker.setpoints(30)  # ticks ending at 5..34 ms
    np.testing.assert_array_equal(sp.q[:10], np.tile(q0, (10, 1)))
    expected = first.sample(np.arange(15, 35) * H - PLAYOUT)
    np.testing.assert_allclose(sp.q[10:], expected.q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sp.dq[10:], expected.dq, rtol=0, atol=1e-9)
    # A second chunk from the first one's state at 20 ms, arriving at 27 ms (late by 7 ms, within the
    # playout delay): the first governs until 35 ms, then the second, sampled at its own times.
    tracker.commit(sp, 23)
    assert tracker.pending == 0
    start = first.sample(np.array([0.02]))
    second = StampedChunk(0.02, start.q[0], start.dq[0], TrajectoryChunk(knots[::-1], np.zeros((3, 7)), DT))
    assert tracker.send_stamped(second, 0.027) is None and tracker.pending == 1
    sp = tracker.setpoints(20)  # ticks ending at 28..47 ms
    np.testing.assert_allclose(sp.q[:7], first.sample(np.arange(28, 35) * H - PLAYOUT).q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sp.q[7:], second.sample(np.arange(35, 48) * H - PLAYOUT).q, rtol=0, atol=1e-12)
    tracker.commit(sp, 20)
    assert tracker.pending == 0
    np.testing.assert_allclose(tracker.command[0], second.sample(np.array([0.047 - PLAYOUT])).q[0], atol=1e-12)
    # A re-plan with the same stamp replaces a pending chunk; ``send`` drops pending chunks.
    start = second.sample(np.array([0.04]))
    third = StampedChunk(0.04, start.q[0], start.dq[0], TrajectoryChunk(knots, np.zeros((3, 7)), DT))
    assert tracker.send_stamped(third, 0.047) is None and tracker.send_stamped(third, 0.047) is None
    assert tracker.pending == 1
    tracker.send(TrajectoryChunk(knots, np.zeros((3, 7)), DT))
    assert tracker.pending == 0


def _commanded_jerk(
    tracker: TrackingController, chunks: list[tuple[StampedChunk, float]], until: float
) -> tuple[float, float]:
    """Run ``tracker`` from time 0, handing it each ``(chunk, arrival time)``; the largest commanded
    acceleration [rad/s^2] and jerk [rad/s^3] over all joints, from the 1 kHz velocity setpoints.
    """
    h, now, dqs = tracker.h, 0.0, [tracker.command[1]]
    for chunk, arrival in [*chunks, (None, until)]:
        n = int(round((arrival - now) / h))
        if n > 0:
            sp = tracker.setpoints(n)
            tracker.commit(sp, n)
            now += n * h
            dqs += list(sp.dq)
        if chunk is not None:
            assert tracker.send_stamped(chunk, now) is None
    acc = np.diff(np.array(dqs), axis=0) / h
    return float(np.abs(acc).max()), float(np.abs(np.diff(acc, axis=0) / h).max())


def test_stamps_between_servo_ticks_and_late_arrivals_within_the_delay_keep_the_shaped_limits() -> None:
    """Stamps 0.4 ms off the 1 kHz grid (a controller's clock is not the servo's), chunks arriving
    0-15 ms after them: the layer joins each chunk from its own command (JTC's interpolation from the
    state before the message), and the command stays within the generator's shaping (80 % of the
    FR3's acceleration and jerk limits) with a 5 % allowance for the joins between ticks.
    """
    gen = ChunkGenerator(FR3, ChunkConfig(), DT, 0.001)
    rng = np.random.default_rng(3)
    assert FR3.start_q is not None
    for trial in range(4):
        tracker = TrackingController(0.001, playout_delay=PLAYOUT)
        tracker.reset(FR3.start_q)
        state, last, chunks = gen.rest(FR3.start_q), None, []
        for k in range(40):
            stamp = 0.1 + k * DT + 0.0004
            if last is not None:
                state = command_state_at(last, last.stamp + DT)
            last = StampedChunk(stamp, state.q, state.dq, gen.generate(state, rng.uniform(-1, 1, 7)).chunk)
            chunks.append((last, stamp + rng.uniform(0.0, PLAYOUT)))
        acc, jerk = _commanded_jerk(tracker, chunks, 1.5)
        assert acc <= 0.8 * FR3.limits.ddq_max.max() * 1.05, (trial, acc)
        assert jerk <= 0.8 * FR3.limits.dddq_max.max() * 1.05, (trial, jerk)


def test_a_chunk_from_rest_starts_from_the_held_position_not_the_measured_one() -> None:
    """A controller starting from rest plans from the position it measured, a few micro-radians from
    the held command (the tracking error); a step of that size within one servo period would be a
    jerk reflex. From rest the layer starts the chunk at its own held position and meets the chunk's
    knots from the first one on.
    """
    assert FR3.start_q is not None
    gen = ChunkGenerator(FR3, ChunkConfig(), DT, 0.001)
    measured = FR3.start_q + 2e-5
    chunk = gen.generate(gen.rest(measured), np.full(7, 0.5)).chunk
    tracker = TrackingController(0.001, playout_delay=PLAYOUT)
    tracker.reset(FR3.start_q)
    acc, jerk = _commanded_jerk(tracker, [(StampedChunk(0.1, measured, np.zeros(7), chunk), 0.1)], 0.2)
    # 20 urad made up over the first segment instead of within one tick (a jerk of 20,000 rad/s^3).
    assert jerk < FR3.limits.dddq_max.max(), jerk
    tracker = TrackingController(0.001, playout_delay=PLAYOUT)
    tracker.reset(FR3.start_q)
    tracker.send_stamped(StampedChunk(0.0, measured, np.zeros(7), chunk), 0.0)
    sp = tracker.setpoints(int(round((PLAYOUT + 2 * DT) / 0.001)))
    # The 20 urad are made up over the join time: the first knot is met to within them, and every
    # knot after the join time exactly.
    knot = int(round((PLAYOUT + DT) / 0.001)) - 1
    np.testing.assert_allclose(sp.q[knot], chunk.positions[0], rtol=0, atol=2e-5)
    after = int(round(JOIN_TIME / DT))
    sp = tracker.setpoints(int(round((PLAYOUT + (after + 2) * DT) / 0.001)))
    np.testing.assert_allclose(sp.q[knot + after * 20], chunk.positions[after], rtol=0, atol=1e-12)


def test_a_join_offset_adds_at_most_its_share_of_the_acceleration_and_jerk_limits() -> None:
    """``join_time``: small offsets decay over ``JOIN_TIME``; larger ones (a chunk past its playout delay)
    more slowly, so that the offset's own acceleration and jerk, sampled at 1 kHz, stay within
    ``JOIN_BUDGET`` of the FR3's limits on every joint; never slower than ``JOIN_TIME_MAX``."""
    from sim.tracking import _JOIN_EPS, JOIN_BUDGET, JOIN_TIME_MAX, _offset

    tracker = TrackingController(0.001)
    assert tracker.join_time(np.zeros(7), np.full(7, 1e-3)) == JOIN_TIME
    rng = np.random.default_rng(3)
    slow = 0
    assert tracker.join_time(np.full(7, 0.2), np.full(7, 1.5)) == JOIN_TIME_MAX
    for scale_p, scale_v in [(1e-4, 1e-3), (0.005, 0.04), (0.01, 0.06), (0.02, 0.07)] * 5:
        p, v = rng.uniform(-scale_p, scale_p, 7), rng.uniform(-scale_v, scale_v, 7)
        T = tracker.join_time(p, v)
        slow += T > JOIN_TIME + _JOIN_EPS
        tau = np.arange(0.0, T + 0.01, 1e-4)
        _, vel = _offset(p, v, tau, T)
        acc = np.diff(vel, axis=0) / 1e-4
        jerk = np.diff(acc, axis=0) / 1e-4
        assert np.all(np.abs(acc).max(axis=0) <= JOIN_BUDGET * FR3.limits.ddq_max * 1.01), (p, v, T)
        assert np.all(np.abs(jerk).max(axis=0) <= JOIN_BUDGET * FR3.limits.dddq_max * 1.01), (p, v, T)
    assert slow >= 10  # the large offsets did need longer
