"""A scripted reference controller for ``fr3-reach``: resolved-rate inverse kinematics.

It reads only the observation (joint state, TCP, target), so it runs unchanged on the real robot.
Its success rate and time-to-target are the reference the learned controller is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_control.errors import check_range
from wm_control.kinematics import tcp_jacobian
from wm_control.observation import POSITION_SCALE, REACH_LAYOUT
from wm_control.robot import FR3, RobotSpec

__all__ = ["ResolvedRateConfig", "ResolvedRateController"]


@dataclass(frozen=True)
class ResolvedRateConfig:
    """gain: TCP velocity per metre of error [1/s]; max_speed: TCP speed cap [m/s]; damping: damped
    least-squares lambda [m]; posture_gain: null-space pull towards the start pose [1/s].
    """

    gain: float = 5.0
    max_speed: float = 0.6
    damping: float = 0.05
    posture_gain: float = 0.5

    def __post_init__(self) -> None:
        check_range("ResolvedRateConfig.gain", self.gain, 0.0, 100.0, low_inclusive=False)
        check_range("ResolvedRateConfig.max_speed", self.max_speed, 0.0, 3.0, low_inclusive=False)
        check_range("ResolvedRateConfig.damping", self.damping, 0.0, 1.0)
        check_range("ResolvedRateConfig.posture_gain", self.posture_gain, 0.0, 100.0)


class ResolvedRateController:
    """``obs -> action``: a proportional TCP velocity mapped to joint velocities through the damped
    pseudo-inverse of the position Jacobian, plus a null-space posture term, expressed as a
    normalised action (scaled uniformly so every entry stays in [-1, 1]).

    Args:
        velocity_scale: ``(7,)`` joint velocity [rad/s] that action 1.0 commands (the env's
            ``generator.velocity_scale``).
    """

    def __init__(
        self, velocity_scale: np.ndarray, config: ResolvedRateConfig = ResolvedRateConfig(), spec: RobotSpec = FR3
    ) -> None:
        self.config = config
        self.spec = spec
        self.velocity_scale = np.asarray(velocity_scale, dtype=np.float64)
        self._slices = REACH_LAYOUT.slices()
        assert spec.start_q is not None
        self._posture = spec.start_q.copy()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Action ``(7,)`` float32 in [-1, 1] for a ``REACH_LAYOUT`` observation."""
        c = self.config
        q = obs[self._slices["q"]].astype(np.float64)
        err = obs[self._slices["target_minus_tcp"]].astype(np.float64) / POSITION_SCALE  # [m]
        v = c.gain * err
        speed = np.linalg.norm(v)
        if speed > c.max_speed:
            v *= c.max_speed / speed
        J = tcp_jacobian(self.spec, q)[:3]
        JJt = J @ J.T + (c.damping**2) * np.eye(3)
        J_pinv = J.T @ np.linalg.solve(JJt, np.eye(3))
        null = np.eye(self.spec.dof) - J_pinv @ J
        dq = J_pinv @ v + null @ (c.posture_gain * (self._posture - q))
        action = dq / self.velocity_scale
        peak = np.max(np.abs(action))
        if peak > 1.0:
            action /= peak
        return action.astype(np.float32)
