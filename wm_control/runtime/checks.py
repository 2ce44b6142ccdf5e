"""What the control loop checks on the way in (measurements, goal) and on the way out (backend outputs).

Nothing here raises out of a tick: a failed check is a ``Fault`` carrying a ``Reason``, which the loop
turns into a fallback. A reason has a ``key`` (a bounded set, for counters and diagnostics: no
numbers, no messages) and a ``text`` (what the command reports).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from wm_control.robot import RobotSpec

__all__ = [
    "ACTION_TOLERANCE",
    "Fault",
    "Reason",
    "StampCheck",
    "check_action",
    "check_goal",
    "check_output",
    "check_plausible",
    "check_scalar",
    "check_vector",
    "reading",
]

# Same tolerance as ChunkGenerator.action_to_velocity: float rounding, not a fault.
ACTION_TOLERANCE = 1e-6


class Reason(NamedTuple):
    """Why a tick is not a full solve: ``key`` is what counters count, ``text`` what the tick reports."""

    key: str
    text: str


class Fault(Exception):
    """A fault of the input, the observation or the backend in this tick."""

    def __init__(self, key: str, text: str | None = None) -> None:
        super().__init__(text or key)
        self.reason = Reason(key, text or key)


def check_vector(name: str, value: object, size: int | None) -> tuple[np.ndarray | None, Reason | None]:
    """``value`` as a float64 vector of ``size`` entries (any size when ``None``), or the reason why not:
    complex or not numeric, wrong shape, or not finite.
    """
    if np.iscomplexobj(value):  # type: ignore[arg-type]  # converting would silently drop the imaginary part
        return None, Reason(f"bad input: {name}", f"bad input: {name} is complex")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None, Reason(f"bad input: {name}", f"bad input: {name} is not a numeric array")
    if (size is not None and arr.shape != (size,)) or arr.ndim != 1:
        expected = f"({size},)" if size is not None else "(m,)"
        return None, Reason(f"wrong shape: {name}", f"wrong shape: {name} has shape {arr.shape}; expected {expected}")
    if not np.isfinite(arr).all():
        return None, Reason(f"non-finite input: {name}", f"non-finite input: {name}")
    return arr, None


class StampCheck:
    """Freshness and order of the measurement times a loop plans from.

    Args:
        stale_timeout: a state measured more than this before the tick, or stamped more than this
            after it (clock mismatch), is refused [s].
    """

    def __init__(self, stale_timeout: float) -> None:
        self._timeout = stale_timeout
        self._last: float | None = None  # the newest stamp inside the window seen so far [s]

    def reset(self) -> None:
        """Forget the last stamp (a new episode's clock may start over)."""
        self._last = None

    def check(self, t: object, now: float) -> tuple[float, Reason | None]:
        """The state's age at ``now`` [s] and why it cannot be planned from: not a number, stale, from
        the future, or not newer than the last one (a repeated or reordered message).
        """
        try:
            stamp = float(t)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return math.nan, Reason("bad input: t", "bad input: t is not a number")
        age = now - stamp
        if not math.isfinite(age):
            return age, Reason("non-finite input: t", "non-finite input: t")
        if age > self._timeout:
            return age, Reason("stale state", f"stale state: {age * 1e3:.1f} ms old")
        if age < -self._timeout:
            return age, Reason("state from the future", f"state from the future: {-age * 1e3:.1f} ms ahead")
        # Only stamps inside the window count as "the last": a future stamp (a clock fault) must not
        # make every later, correct state look old.
        last, self._last = self._last, stamp if self._last is None else max(stamp, self._last)
        if last is not None and stamp == last:
            return age, Reason(
                "repeated state", "repeated state: the same timestamp as the last tick's (no new measurement)"
            )
        if last is not None and stamp < last:
            return age, Reason(
                "state older than the last", f"state older than the last: {(last - stamp) * 1e3:.1f} ms before it"
            )
        return age, None


def check_plausible(spec: RobotSpec, q: np.ndarray, dq: np.ndarray) -> Reason | None:
    """Why a finite measurement ``q (n,)`` [rad], ``dq (n,)`` [rad/s] cannot be a state of robot
    ``spec``: outside the joint range or the velocity limits by more than the robot's tolerances
    (``RobotSpec.position_tolerance``, ``.velocity_tolerance``). ``None`` when plausible.
    """
    lim, names = spec.limits, spec.joint_names
    tol = spec.position_tolerance
    outside = np.flatnonzero((q < lim.q_min - tol) | (q > lim.q_max + tol))
    if outside.size:
        i = int(outside[0])
        return Reason(
            "implausible input: q",
            f"implausible input: q[{i}] ({names[i]}) = {q[i]:.6g} rad is outside [{lim.q_min[i]:.4f}, "
            f"{lim.q_max[i]:.4f}] by more than {tol} rad",
        )
    fast = np.flatnonzero(np.abs(dq) > lim.dq_max + spec.velocity_tolerance)
    if fast.size:
        i = int(fast[0])
        return Reason(
            "implausible input: dq",
            f"implausible input: dq[{i}] ({names[i]}) = {dq[i]:.6g} rad/s exceeds the limit {lim.dq_max[i]} rad/s "
            f"by more than {spec.velocity_tolerance} rad/s",
        )
    return None


def check_goal(goal: np.ndarray, space: dict[str, Any]) -> Reason | None:
    """Why ``goal`` lies outside the task's goal space (a contract's ``goal``: the box ``low`` /
    ``high`` the model was trained to reach, in ``unit``); ``None`` inside it or for a task without one.
    """
    if "low" not in space or "high" not in space:
        return None
    low, high = np.asarray(space["low"], np.float64), np.asarray(space["high"], np.float64)
    if goal.shape != low.shape:
        return Reason("wrong shape: goal", f"wrong shape: goal has shape {goal.shape}; expected {low.shape}")
    outside = np.flatnonzero((goal < low) | (goal > high))
    if outside.size:
        i, unit = int(outside[0]), space.get("unit", "")
        return Reason(
            "goal outside the workspace",
            f"goal outside the workspace: goal[{i}] = {goal[i]:.6g} {unit} is outside [{low[i]}, {high[i]}] "
            f"(the {space.get('frame', '')} box the model was trained on)",
        )
    return None


@contextlib.contextmanager
def reading(call: str) -> Iterator[None]:
    """Turn a malformed backend output (wrong type or arity) into a fault of that call."""
    try:
        yield
    except (AttributeError, TypeError, ValueError) as exc:
        raise Fault(f"bad output from {call}", f"bad output from {call}: {type(exc).__name__}: {exc}") from exc


def check_output(call: str, name: str, value: object, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A backend output of ``shape``, finite; otherwise a ``Fault`` of ``call``."""
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.shape != shape:
        raise Fault(
            f"bad output from {call}", f"bad output from {call}: {name} has shape {arr.shape}; expected {shape}"
        )
    if not np.isfinite(arr).all():
        raise Fault(f"non-finite output from {call}")
    return arr


def check_scalar(call: str, name: str, value: object) -> float:
    """A finite scalar backend output."""
    return float(check_output(call, name, np.reshape(np.asarray(value, dtype=np.float64), -1), (1,), np.float64)[0])


def check_action(call: str, value: object, action_dim: int) -> np.ndarray:
    """A backend action ``(A,)`` in [-1, 1] (float64). Out of range is the backend's fault, not clamped;
    only rounding (``ACTION_TOLERANCE``) is clipped.
    """
    a = check_output(call, "action", value, (action_dim,), np.float64)
    worst = float(np.max(np.abs(a)))
    if worst > 1.0 + ACTION_TOLERANCE:
        raise Fault("action out of range", f"action out of range from {call}: max |a| = {worst:.4g}")
    return np.clip(a, -1.0, 1.0)
