"""Time-bucketed metric windows, as Knative's autoscaler averages them (pure).

Follows knative/serving `pkg/autoscaler/aggregation/bucketing.go`. Samples add into
buckets of `granularity_s` (the KPA uses one second); a window is a ring of
ceil(window / granularity) buckets. Time is a number of seconds handed in by the
caller: nothing here reads a clock.

`LinearBuckets` averages over the window (Knative's default, `linear`): over the
part of the window since the first write when that is shorter, leaving out buckets
newer than the last write, and 0 once a whole window passes without a write.
`WeightedBuckets` (`weighted-exponential`) weighs each bucket by a coefficient that
decays with its age; its coefficient is computed as Knative computes it, so results
agree to float rounding.
"""

from __future__ import annotations

import math

# The weighted average's coefficients sum to at least this; never decay slower
# than MIN_EXPONENT per bucket.
WEIGHT_PRECISION = 0.9999
MIN_EXPONENT = 0.2
_DIGITS = 6


def smoothing_coefficient(buckets: float) -> float:
    """The weighted average's per-bucket decay for a window of that many buckets."""
    return max(1 - math.pow(1 - WEIGHT_PRECISION, 1 / buckets), MIN_EXPONENT)


def round_to_digits(value: float, digits: int) -> float:
    """Round half away from zero at that many decimals (Go's `math.Round` scaled)."""
    scale = math.pow(10, digits)
    scaled = value * scale
    whole = math.trunc(scaled)
    if abs(scaled - whole) >= 0.5:
        whole += 1 if scaled > 0 else -1
    return whole / scale


class LinearBuckets:
    """A window of buckets averaged with equal weights."""

    def __init__(self, window_s: float, granularity_s: int = 1) -> None:
        if granularity_s < 1 or window_s <= 0:
            raise ValueError("granularity must be at least 1 s and the window positive")
        self._granularity = granularity_s
        self._window = window_s
        self._buckets = [0.0] * math.ceil(window_s / granularity_s)
        # Bucket numbers (time // granularity) of the first and last write.
        self._first: int | None = None
        self._last: int | None = None
        # Sum of all buckets in the ring, including ones not yet averaged over.
        self._total = 0.0

    @property
    def window_s(self) -> float:
        return self._window

    def _bucket(self, now: float) -> int:
        return math.floor(now / self._granularity)

    def _span(self, buckets: int) -> float:
        return buckets * self._granularity

    def is_empty(self, now: float) -> bool:
        """No write in the window that ends at `now`."""
        return self._last is None or self._span(self._bucket(now) - self._last) > self._window

    def record(self, now: float, value: float) -> None:
        """Add `value` to the bucket of `now`. A gap since the last write is zeros; a
        write a whole window after the last starts afresh; a write older than the
        window before the last write is dropped."""
        bucket = self._bucket(now)
        size = len(self._buckets)
        if self._last != bucket:
            if self._last is not None and self._span(bucket) + self._window <= self._span(
                self._last
            ):
                return
            if self._first is None or self._first > bucket:
                self._first = bucket
            if self._last is None or bucket > self._last:
                if self._last is None or self._span(bucket - self._last) >= self._window:
                    self._first = bucket
                    self._buckets = [0.0] * size
                    self._total = 0.0
                else:
                    for i in range(self._last + 1, bucket + 1):
                        self._total -= self._buckets[i % size]
                        self._buckets[i % size] = 0.0
                self._last = bucket
        self._buckets[bucket % size] += value
        self._total += value

    def window_average(self, now: float) -> float:
        """The average bucket value over the window ending at `now`."""
        if self._last is None or self._first is None:
            return 0.0
        size = len(self._buckets)
        now_bucket = self._bucket(now)
        gap = self._span(now_bucket - self._last)
        if gap <= 0:
            count = min(self._last - self._first + 1, size)
            return round_to_digits(self._total / count, _DIGITS)
        if gap < self._window:
            total = self._total
            for i in range(self._last + 1, now_bucket + 1):
                total -= self._buckets[i % size]
            count = min(self._last - self._first + 1, size - (now_bucket - self._last))
            return round_to_digits(total / count, _DIGITS)
        return 0.0

    def resize_window(self, window_s: float, now: float) -> None:
        """Change the window, keeping the newest buckets that still fit."""
        if window_s == self._window:
            return
        size = math.ceil(window_s / self._granularity)
        buckets = [0.0] * size
        total = 0.0
        old = self._buckets
        if self._last is not None and self._span(self._bucket(now) - self._last) <= self._window:
            index = self._last
            for _ in range(min(size, len(old))):
                buckets[index % size] = old[index % len(old)]
                total += old[index % len(old)]
                index -= 1
            self._first = self._last - (len(old) - 1)
        else:
            self._first = None
        self._window = window_s
        self._buckets = buckets
        self._total = total

    def recent(self, now: float) -> list[tuple[float, float]]:
        """(bucket start time, value) from the last write back over the window that
        ends at `now`, newest first; zeros included."""
        if self._last is None:
            return []
        size = len(self._buckets)
        count = size - (self._bucket(now) - self._last)
        out = []
        for i in range(max(0, count)):
            bucket = self._last - i
            out.append((self._span(bucket), self._buckets[bucket % size]))
        return out


class WeightedBuckets(LinearBuckets):
    """A window of buckets averaged with exponentially decaying weights."""

    def __init__(self, window_s: float, granularity_s: int = 1) -> None:
        super().__init__(window_s, granularity_s)
        self._smoothing = smoothing_coefficient(math.ceil(window_s / granularity_s))

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def window_average(self, now: float) -> float:
        """The weighted average at `now`: the newest bucket weighs `smoothing`, each
        older one (1 - smoothing) times the next; buckets since the last write are
        zeros."""
        if self.is_empty(now) or self._last is None:
            return 0.0
        size = len(self._buckets)
        count = size
        multiplier = self._smoothing
        now_bucket = self._bucket(now)
        if now_bucket > self._last:
            zeros = now_bucket - self._last
            multiplier *= math.pow(1 - self._smoothing, zeros)
            count -= zeros
        start = self._last + size
        average = 0.0
        for i in range(count):
            average += self._buckets[(start - i) % size] * multiplier
            multiplier *= 1 - self._smoothing
        return average

    def resize_window(self, window_s: float, now: float) -> None:
        super().resize_window(window_s, now)
        self._smoothing = smoothing_coefficient(math.ceil(window_s / self._granularity))
