"""The largest value seen over a sliding time window (pure): how the KPA holds a
scale-down back for `scale-down-delay`.

Follows knative/serving `pkg/autoscaler/aggregation/max/` (a descending-maxima
queue). Time is bucketed by `granularity_s`; `current()` is the largest value
recorded in the window's worth of buckets ending at the latest one recorded (not at
any "now": a window only moves when something is recorded).
"""

from __future__ import annotations

import math
from collections import deque


class MaxWindow:
    """Maximum over the last `size` indexes, for indexes recorded in increasing order."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a max window needs at least one bucket")
        self._size = size
        # (index, value), indexes increasing and values decreasing front to back.
        self._maxima: deque[tuple[int, int]] = deque()

    def record(self, index: int, value: int) -> None:
        # An older value no larger than the new one can never be the maximum again.
        while self._maxima and value >= self._maxima[-1][1]:
            self._maxima.pop()
        while self._maxima and index - self._maxima[0][0] >= self._size:
            self._maxima.popleft()
        # Two values at one index: keep the larger.
        if self._maxima and self._maxima[-1][0] == index:
            value = max(value, self._maxima.pop()[1])
        self._maxima.append((index, value))

    def current(self) -> int:
        """The maximum; 0 before anything is recorded."""
        return self._maxima[0][1] if self._maxima else 0


class MaxTimeWindow:
    """Maximum over the last `duration_s`, bucketed by `granularity_s`."""

    def __init__(self, duration_s: float, granularity_s: int = 1) -> None:
        self._granularity = granularity_s
        self._window = MaxWindow(math.ceil(duration_s / granularity_s))

    def record(self, now: float, value: int) -> None:
        self._window.record(math.floor(now / self._granularity), value)

    def current(self) -> int:
        return self._window.current()
