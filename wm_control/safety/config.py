"""Configuration of the safety layer: how much room it keeps from the robot's limits.

The limits themselves are the robot's (``wm_control.robot.RobotSpec.limits`` and
``wm_control.robot.velocity_bounds``); this config only narrows them. It is deliberately looser
than the chunk generator's shaping (``position_margin`` 0.02 rad against the generator's 0.05 rad,
the full acceleration and jerk limits against its 80 %), so that chunks the generator shapes pass
with room, and a chunk that fails here is one the robot must not receive.
"""

from __future__ import annotations

from dataclasses import dataclass

from wm_control.errors import ConfigError, check_range

__all__ = ["SafetyConfig"]


def _check_number(name: str, value: object) -> float:
    # check_range compares with < and >; a string or None would raise a TypeError that names nothing.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}={value!r} must be a number")
    return float(value)


@dataclass(frozen=True)
class SafetyConfig:
    """How close to the robot's limits a verified chunk may come.

    Attributes:
        position_margin: distance [rad] kept from every position limit: the interpolated command
            stays inside ``[q_min + position_margin, q_max - position_margin]``; in [0, 0.5].
        velocity_margin: distance [rad/s] kept below the position-dependent velocity limits
            (``velocity_bounds(spec, q)``, upper bound minus it, lower bound plus it); in [0, 1].
        acceleration_fraction: fraction of each joint's ``ddq_max`` [rad/s^2] the command may use;
            in (0, 1].
        jerk_fraction: fraction of each joint's ``dddq_max`` [rad/s^3] the command may use, both
            inside a segment and across a knot; in (0, 1].
        tolerance: relative rounding allowance; a value counts as outside its limit only when it
            exceeds the limit by more than ``tolerance`` times the joint's scale of that quantity
            (``q_max - q_min`` [rad], ``dq_max`` [rad/s], ``ddq_max`` [rad/s^2], ``dddq_max``
            [rad/s^3]); in [0, 1e-3]. The default 1e-9 is far above float64 rounding of a cubic
            through knots near 3 rad (about 1e-12 relative on the jerk) and far below anything a
            robot could feel.
        floor_height: height [m] of the surface the robot stands on, in the base frame (z up);
            ``None``: no floor check. With it, no knot may bring the arm's lowest point
            (``wm_control.safety.workspace``) below ``floor_height + floor_clearance``; in [-2, 0.5].
        floor_clearance: distance [m] kept from the floor; in [0, 0.5].
        base_clearance: distance [m] kept between the forearm, wrist and hand and the robot's base
            column (``wm_control.safety.workspace.BaseGuard``); ``None``: no base check; in [0, 0.3].
        self_clearance: distance [m] kept between the forearm, wrist and hand and the upper arm
            (links 2-4, ``wm_control.safety.workspace.SelfGuard``); ``None``: no self-collision
            check; in [0, 0.3].
    """

    position_margin: float = 0.02
    velocity_margin: float = 0.0
    acceleration_fraction: float = 1.0
    jerk_fraction: float = 1.0
    tolerance: float = 1e-9
    floor_height: float | None = None
    floor_clearance: float = 0.03
    base_clearance: float | None = None
    self_clearance: float | None = None

    def __post_init__(self) -> None:
        for name, low, high, low_inclusive in (
            ("position_margin", 0.0, 0.5, True),
            ("velocity_margin", 0.0, 1.0, True),
            ("acceleration_fraction", 0.0, 1.0, False),
            ("jerk_fraction", 0.0, 1.0, False),
            ("tolerance", 0.0, 1e-3, True),
            ("floor_clearance", 0.0, 0.5, True),
        ):
            field = f"SafetyConfig.{name}"
            value = _check_number(field, getattr(self, name))
            check_range(field, value, low, high, low_inclusive=low_inclusive)
        for name in ("base_clearance", "self_clearance"):
            value = getattr(self, name)
            if value is not None:
                field = f"SafetyConfig.{name}"
                check_range(field, _check_number(field, value), 0.0, 0.3)
        if self.floor_height is not None:
            check_range(
                "SafetyConfig.floor_height", _check_number("SafetyConfig.floor_height", self.floor_height), -2.0, 0.5
            )
