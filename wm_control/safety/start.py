"""The command state a trajectory chunk starts from.

A chunk's first segment starts where the 1 kHz layer's command is when the chunk becomes active:
the previous chunk's state at its first knot (``SafetyLayer.next_start``), or rest after a reset.
The safety layer needs the whole state, not only position and velocity: the acceleration step and
the jerk at the boundary with the previous chunk are part of what the robot sees.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wm_control.errors import InputError, check_finite

__all__ = ["ChunkStart"]


class ChunkStart(NamedTuple):
    """Commanded joint state at a chunk's start (time 0), each field ``(n,)``.

    Attributes:
        q: position [rad].
        dq: velocity [rad/s].
        ddq: acceleration [rad/s^2] just before the start (the end of the previous segment).
        dddq: jerk [rad/s^3] of the segment that ended at the start; ``None`` means zero (at rest,
            or after a segment of constant acceleration). The 1 kHz layer's finite-difference jerk
            across the start mixes it with the first segment's, so the verifier needs it.
    """

    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray
    dddq: np.ndarray | None = None

    @classmethod
    def rest(cls, q: np.ndarray) -> ChunkStart:
        """At rest at ``q`` ``(n,)`` [rad]: zero velocity, acceleration and jerk."""
        q = np.array(q, dtype=np.float64)
        zero = np.zeros_like(q)
        return cls(q, zero, zero.copy(), zero.copy())


def check_start(
    start: ChunkStart, joint_names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the start state as four float64 arrays ``(n,)`` (``dddq`` zeros when ``None``).

    Raises:
        InputError: ``start`` is not a ``ChunkStart``, or a field is not a real array of shape
            ``(n,)`` or holds NaN or inf (the field and joint are named). A start state is the
            layer's own previous command, so a malformed one is a programming error, not a chunk
            to be replaced.
    """
    if not isinstance(start, ChunkStart):
        raise InputError(f"start is a {type(start).__name__}; expected a ChunkStart (q, dq, ddq, dddq)")
    n = len(joint_names)
    q, dq, ddq, dddq = start
    if dddq is None:
        dddq = np.zeros(n)
    # The common case in one test per field; the messages only when it fails.
    fields = (q, dq, ddq, dddq)
    if all(
        isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (n,) and np.isfinite(x).all() for x in fields
    ):
        return q, dq, ddq, dddq
    out = []
    for field, value in zip(("q", "dq", "ddq", "dddq"), start, strict=True):
        arr = np.zeros(n) if value is None and field == "dddq" else np.asarray(value)
        if arr.dtype.kind not in "fiu" or arr.shape != (n,):
            raise InputError(f"start.{field} has shape {arr.shape} and dtype {arr.dtype}; expected ({n},) floats")
        arr = arr.astype(np.float64, copy=False)
        check_finite(f"start.{field}", arr, joint_names)
        out.append(arr)
    return out[0], out[1], out[2], out[3]
