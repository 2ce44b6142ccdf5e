"""The MJCF matches the published FR3 frame table; the Jacobian matches MuJoCo's."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sim.scene import build_model
from wm_control.errors import ConfigError, InputError
from wm_control.kinematics import forward_kinematics, tcp_jacobian, tcp_position, transform_from_xyz_rpy
from wm_control.robot import FR3, get_robot


def _random_q(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(FR3.limits.q_min, FR3.limits.q_max, size=(n, 7))


def _dh_flange(q: np.ndarray) -> np.ndarray:
    """Independent reference: modified (Craig) DH parameters from FRANKA.md."""
    a = [0, 0, 0, 0.0825, -0.0825, 0, 0.088]
    d = [0.333, 0, 0.316, 0, 0.384, 0, 0]
    alpha = [0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]
    T = np.eye(4)
    for i in range(7):
        ca, sa, ct, st = np.cos(alpha[i]), np.sin(alpha[i]), np.cos(q[i]), np.sin(q[i])
        T = T @ np.array(
            [[ct, -st, 0, a[i]], [st * ca, ct * ca, -sa, -sa * d[i]], [st * sa, ct * sa, ca, ca * d[i]], [0, 0, 0, 1]]
        )
    return T @ transform_from_xyz_rpy(np.array([0, 0, 0.107]), np.zeros(3))


@pytest.mark.parametrize("hand", [False, True])
def test_mjcf_forward_kinematics_matches_frame_table(hand: bool) -> None:
    model = build_model(hand=hand, scene=False)
    data = mujoco.MjData(model)
    spec = FR3 if hand else FR3.with_tcp(np.eye(4))
    site = model.site("fr3_hand_tcp" if hand else "fr3_flange").id
    for q in _random_q(np.random.default_rng(0), 100):
        data.qpos[:7] = q
        mujoco.mj_kinematics(model, data)
        T = forward_kinematics(spec, q)
        assert np.linalg.norm(data.site_xpos[site] - T[:3, 3]) < 1e-3
        assert np.abs(data.site_xmat[site].reshape(3, 3) - T[:3, :3]).max() < 1e-6


def test_frame_table_matches_modified_dh() -> None:
    flange = FR3.with_tcp(np.eye(4))
    for q in _random_q(np.random.default_rng(1), 100):
        np.testing.assert_allclose(forward_kinematics(flange, q), _dh_flange(q), atol=1e-9)


def test_fk_is_batched() -> None:
    q = _random_q(np.random.default_rng(2), 12).reshape(3, 4, 7)
    batched = tcp_position(FR3, q)
    assert batched.shape == (3, 4, 3)
    np.testing.assert_allclose(batched[1, 2], tcp_position(FR3, q[1, 2]))


def test_jacobian_matches_mujoco_and_finite_differences() -> None:
    model = build_model(hand=True, scene=False)
    data = mujoco.MjData(model)
    site = model.site("fr3_hand_tcp").id
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    for q in _random_q(np.random.default_rng(3), 20):
        data.qpos[:7] = q
        mujoco.mj_forward(model, data)
        mujoco.mj_jacSite(model, data, jacp, jacr, site)
        J = tcp_jacobian(FR3, q)
        np.testing.assert_allclose(J[:3], jacp[:, :7], atol=1e-9)
        np.testing.assert_allclose(J[3:], jacr[:, :7], atol=1e-9)
        eps = 1e-6
        fd = np.stack(
            [(tcp_position(FR3, q + eps * e) - tcp_position(FR3, q - eps * e)) / (2 * eps) for e in np.eye(7)], 1
        )
        np.testing.assert_allclose(J[:3], fd, atol=1e-6)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InputError, match=r"q has shape \(6,\)"):
        tcp_position(FR3, np.zeros(6))
    with pytest.raises(ConfigError, match="unknown robot 'ur5'; valid"):
        get_robot("ur5")
