"""Limit tables and the FR3 position-dependent velocity limits."""

from __future__ import annotations

import numpy as np
import pytest

from wm_control.errors import ConfigError
from wm_control.robot import FR3, PANDA, JointLimits, velocity_bounds


def test_fr3_tables_match_published_values() -> None:
    lim = FR3.limits
    assert FR3.joint_names == tuple(f"fr3_joint{i}" for i in range(1, 8))
    np.testing.assert_allclose(lim.q_max[[0, 3, 5]], [2.7437, -0.1518, 4.5169])
    np.testing.assert_allclose(lim.dq_max, [2.62] * 4 + [5.26, 4.18, 5.26])
    np.testing.assert_allclose(lim.tau_max, [87] * 4 + [12] * 3)
    assert lim.dtau_max == 1000.0


def test_velocity_bounds_constant_far_from_limits_and_zero_at_them() -> None:
    lo, hi = velocity_bounds(FR3, FR3.start_q)
    np.testing.assert_allclose(hi[[0, 2, 4, 6]], FR3.limits.dq_max[[0, 2, 4, 6]] - 1e-3)
    _, hi_at_max = velocity_bounds(FR3, FR3.limits.q_max)
    lo_at_min, _ = velocity_bounds(FR3, FR3.limits.q_min)
    assert np.all(hi_at_max < 0.01) and np.all(lo_at_min > -0.01)
    # Monotone: the upper bound shrinks as a joint approaches its upper limit.
    qs = np.linspace(0.0, FR3.limits.q_max[0], 50)
    q = np.tile(FR3.start_q, (50, 1))
    q[:, 0] = qs
    assert np.all(np.diff(velocity_bounds(FR3, q)[1][:, 0]) <= 1e-12)


def test_panda_has_constant_velocity_limits() -> None:
    lo, hi = velocity_bounds(PANDA, PANDA.limits.q_max)
    np.testing.assert_allclose(hi, PANDA.limits.dq_max)
    np.testing.assert_allclose(lo, -PANDA.limits.dq_max)


def test_limit_table_validation() -> None:
    with pytest.raises(ConfigError, match="q_min must be below"):
        JointLimits(q_min=[1.0], q_max=[0.0], dq_max=[1.0], ddq_max=[1.0], dddq_max=[1.0], tau_max=[1.0], dtau_max=1.0)
    with pytest.raises(ConfigError, match=r"dq_max has shape \(2,\)"):
        JointLimits(
            q_min=[0.0], q_max=[1.0], dq_max=[1.0, 2.0], ddq_max=[1.0], dddq_max=[1.0], tau_max=[1.0], dtau_max=1.0
        )
