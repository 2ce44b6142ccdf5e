"""Cubic Hermite interpolation of trajectory chunks, plain and stamped."""

from __future__ import annotations

import numpy as np
import pytest

from wm_control.errors import InputError
from wm_control.trajectory import StampedChunk, TrajectoryChunk, sample_hermite


def _chunk(rng: np.random.Generator, n: int = 4) -> TrajectoryChunk:
    return TrajectoryChunk(rng.normal(size=(n, 7)), rng.normal(size=(n, 7)), 0.02)


def test_passes_through_knots_with_their_velocities() -> None:
    rng = np.random.default_rng(0)
    q0, dq0, chunk = rng.normal(size=7), rng.normal(size=7), _chunk(rng)
    times = np.array([0.0, 0.02, 0.04, 0.06, 0.08])
    s = sample_hermite(q0, dq0, chunk, times)
    np.testing.assert_allclose(s.q, np.vstack([q0, chunk.positions]), atol=1e-12)
    np.testing.assert_allclose(s.dq, np.vstack([dq0, chunk.velocities]), atol=1e-9)


def test_velocity_and_acceleration_are_derivatives() -> None:
    rng = np.random.default_rng(1)
    q0, dq0, chunk = rng.normal(size=7), rng.normal(size=7), _chunk(rng)
    t = np.linspace(0.001, 0.079, 200)
    h = 1e-6
    s, sp, sm = (sample_hermite(q0, dq0, chunk, t + d) for d in (0.0, h, -h))
    np.testing.assert_allclose(s.dq, (sp.q - sm.q) / (2 * h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.ddq, (sp.dq - sm.dq) / (2 * h), rtol=1e-4, atol=1e-3)


def test_reproduces_constant_acceleration_exactly() -> None:
    # Knots sampled from a parabola: the cubic Hermite spline is that parabola.
    a, v0, q0 = 3.0, -0.5, 0.2
    ts = 0.02 * np.arange(1, 6)
    chunk = TrajectoryChunk(
        np.tile((q0 + v0 * ts + 0.5 * a * ts**2)[:, None], (1, 7)), np.tile((v0 + a * ts)[:, None], (1, 7)), 0.02
    )
    t = np.linspace(0, 0.1, 101)
    s = sample_hermite(np.full(7, q0), np.full(7, v0), chunk, t)
    np.testing.assert_allclose(s.q[:, 0], q0 + v0 * t + 0.5 * a * t**2, atol=1e-12)
    np.testing.assert_allclose(s.ddq, a, atol=1e-6)


def test_holds_last_point_after_the_end() -> None:
    rng = np.random.default_rng(2)
    chunk = _chunk(rng)
    s = sample_hermite(rng.normal(size=7), rng.normal(size=7), chunk, np.array([0.1, 0.5]))
    np.testing.assert_allclose(s.q, np.tile(chunk.positions[-1], (2, 1)))
    assert np.all(s.dq == 0.0) and np.all(s.ddq == 0.0)


def test_validate_names_the_problem() -> None:
    good = np.zeros((3, 7))
    with pytest.raises(InputError, match=r"positions have shape \(3, 6\)"):
        TrajectoryChunk(np.zeros((3, 6)), np.zeros((3, 6)), 0.02).validate(7)
    with pytest.raises(InputError, match="velocities have shape"):
        TrajectoryChunk(good, np.zeros((2, 7)), 0.02).validate(7)
    with pytest.raises(InputError, match="dt=0"):
        TrajectoryChunk(good, good, 0.0).validate(7)
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        TrajectoryChunk(bad, good, 0.02).validate(7)


def test_stamped_chunk_samples_at_absolute_times() -> None:
    rng = np.random.default_rng(3)
    q0, dq0, chunk = rng.normal(size=7), rng.normal(size=7), _chunk(rng)
    stamped = StampedChunk(12.5, q0, dq0, chunk)
    assert stamped.duration == pytest.approx(4 * 0.02) and stamped.end == pytest.approx(12.58)
    # The knots lie at stamp + dt, stamp + 2 dt, ...; the start state at the stamp.
    s = stamped.sample(12.5 + np.array([0.0, 0.02, 0.04, 0.06, 0.08]))
    np.testing.assert_allclose(s.q, np.vstack([q0, chunk.positions]), atol=1e-9)
    # (Not the last knot's velocity: 12.58 - 12.5 rounds past the end, where the hold has zero velocity.)
    np.testing.assert_allclose(s.dq[:4], np.vstack([dq0, chunk.velocities[:3]]), atol=1e-6)
    t = np.linspace(0.0, 0.1, 23)
    ref = sample_hermite(q0, dq0, chunk, t)
    got = stamped.sample(12.5 + t)
    np.testing.assert_allclose(got.q, ref.q, atol=1e-9)
    # After the last knot: its position at zero velocity and acceleration.
    late = stamped.sample(np.array([12.59, 20.0]))
    np.testing.assert_array_equal(late.q, np.tile(chunk.positions[-1], (2, 1)))
    assert np.all(late.dq == 0.0) and np.all(late.ddq == 0.0)
    with pytest.raises(InputError, match=r"times\[1\]=12.49 s is before the stamp 12.5 s"):
        stamped.sample(np.array([12.5, 12.49]))


def test_stamped_chunk_keeps_a_read_only_copy() -> None:
    rng = np.random.default_rng(4)
    q0, dq0, chunk = rng.normal(size=7), rng.normal(size=7), _chunk(rng)
    stamped = StampedChunk(np.float64(1.0), q0, dq0, chunk)
    before = stamped.sample(np.array([1.03]))
    q0[:] = 0.0
    chunk.positions[:] = 0.0
    np.testing.assert_array_equal(stamped.sample(np.array([1.03])).q, before.q)
    assert type(stamped.stamp) is float
    for array in (stamped.start_q, stamped.start_dq, stamped.chunk.positions, stamped.chunk.velocities):
        assert array.dtype == np.float64 and not array.flags.writeable


def test_stamped_chunk_validation_names_the_field() -> None:
    good = _chunk(np.random.default_rng(5))
    z = np.zeros(7)
    with pytest.raises(InputError, match=r"StampedChunk.stamp=nan must be a finite time"):
        StampedChunk(float("nan"), z, z, good)
    with pytest.raises(InputError, match=r"StampedChunk.stamp='0' must be a finite time"):
        StampedChunk("0", z, z, good)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"StampedChunk.start_q has shape \(1, 7\)"):
        StampedChunk(0.0, z[None], z, good)
    with pytest.raises(InputError, match=r"StampedChunk.start_dq has shape \(6,\); expected \(7,\)"):
        StampedChunk(0.0, z, z[:6], good)
    with pytest.raises(InputError, match=r"StampedChunk.start_dq contains NaN or inf at index 2"):
        StampedChunk(0.0, z, np.array([0, 0, np.inf, 0, 0, 0, 0.0]), good)
    with pytest.raises(InputError, match=r"StampedChunk.start_q has dtype <U1"):
        StampedChunk(0.0, np.array(list("abcdefg")), z, good)
    with pytest.raises(InputError, match=r"chunk positions have shape \(4, 7\); expected \(N >= 1, 6\)"):
        StampedChunk(0.0, z[:6], z[:6], good)
    bad = TrajectoryChunk(good.positions, good.velocities.copy(), 0.02)
    bad.velocities[2, 1] = np.nan
    with pytest.raises(InputError, match="chunk velocities contains NaN"):
        StampedChunk(0.0, z, z, bad)
    with pytest.raises(InputError, match="dt=-0.02"):
        StampedChunk(0.0, z, z, TrajectoryChunk(good.positions, good.velocities, -0.02))
