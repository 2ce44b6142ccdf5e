"""Call-cost prediction for the deadline-aware control loop.

``LatencyWindow`` keeps the durations of one kind of backend call measured in the last ``ticks``
ticks and predicts the next one as a high quantile of them: rare spikes of a shared machine (measured
at 15-28 ms against a median solve of 7 ms) do not block full solves, a spike is forgotten after
``ticks`` ticks, and a call that is never made (predicted too slow) is probed again once its
measurements age out.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """A high quantile of the recent durations of one call, over the last ``ticks`` ticks.

    Args:
        ticks: how many ticks of history predict the cost [ticks].
        quantile: the prediction is the ``ceil(quantile * n)``-th smallest of the ``n`` kept
            durations, in (0, 1] (1.0: the worst one).
    """

    def __init__(self, ticks: int, quantile: float) -> None:
        self._ticks = ticks
        self._quantile = quantile
        self._samples: deque[tuple[int, float]] = deque()  # (tick, seconds), oldest first

    def add(self, tick: int, seconds: float) -> None:
        """Record that a call in tick ``tick`` took ``seconds`` [s]."""
        self._samples.append((tick, seconds))

    def predict(self, tick: int) -> float | None:
        """Predicted duration [s] of the call in tick ``tick``; ``None`` with no measurement in the window."""
        while self._samples and self._samples[0][0] < tick - self._ticks:
            self._samples.popleft()
        if not self._samples:
            return None
        ordered = sorted(s for _, s in self._samples)
        return ordered[max(math.ceil(self._quantile * len(ordered)) - 1, 0)]
