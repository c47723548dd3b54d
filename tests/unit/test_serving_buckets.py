"""Metric windows and the max window, case by case as knative/serving tests them.

Ported from `pkg/autoscaler/aggregation/bucketing_test.go` and
`pkg/autoscaler/aggregation/max/{window,timewindow}_test.go`, each test named after
the upstream one. Time is a number of seconds: `NOW` stands in for upstream's
`time.Now()` (not on a second boundary), `TRUNC1`/`TRUNC5`/`TRUNC3` for it truncated
to 1, 5 and 3 seconds. Upstream's test-only `forEachBucket` is `recent()` here.

Differences, and why:
- TestComputeDecayMultiplier: upstream's tolerance is 0.9999 (the weight precision
  constant); here it is 1e-4, the precision its expected values are written to.
- Weighted averages are compared to float rounding (rel 1e-12): the sums upstream
  writes out associate the products differently from the loop that computes them.
- Idempotent resizes (upstream compares the buckets slice's address) are checked by
  the contents staying the same; TestTimedFloat64BucketsWindowUpdateNoOp (upstream
  reads the private firstWrite) by the average the dropped data leaves.
- Resizing takes the time as an argument; upstream reads the clock.
- BenchmarkWindowAverage and the max window's benchmarks.
"""

from __future__ import annotations

import math

import pytest

from amimesh.serving.kpa.buckets import (
    MIN_EXPONENT,
    LinearBuckets,
    WeightedBuckets,
    round_to_digits,
    smoothing_coefficient,
)
from amimesh.serving.kpa.max_window import MaxTimeWindow, MaxWindow

NOW = 1_700_000_000.3
TRUNC1 = 1_700_000_000.0
TRUNC5 = 1_700_000_000.0
TRUNC3 = 1_700_000_001.0


def bucket_sum(buckets: LinearBuckets, now: float) -> float:
    return sum(value for _, value in buckets.recent(now))


@pytest.mark.parametrize(
    ("buckets", "want"),
    [(100, MIN_EXPONENT), (60, MIN_EXPONENT), (40, 0.20567), (6, 0.78456)],
    ids=["nb=100", "nb=60", "nb=40", "nb=6"],
)
def test_TestComputeDecayMultiplier(buckets: int, want: float) -> None:
    assert smoothing_coefficient(buckets) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize(
    ("granularity", "stats", "want"),
    [
        (
            1,
            [(TRUNC1, 1.0), (TRUNC1 + 0.1, 10.0), (TRUNC1 + 1, 1.0), (TRUNC1 + 3, 1.0)],
            {TRUNC1: 11.0, TRUNC1 + 1: 1.0, TRUNC1 + 3: 1.0},
        ),
        (
            5,
            [(TRUNC5, 1.0), (TRUNC5 + 3, 11.0), (TRUNC5 + 6, 1.0)],
            {TRUNC5: 12.0, TRUNC5 + 5: 1.0},
        ),
        (1, [], {}),
    ],
    ids=["granularity = 1s", "granularity = 5s", "empty"],
)
def test_TestTimedFloat64BucketsSimple(
    granularity: int, stats: list[tuple[float, float]], want: dict[float, float]
) -> None:
    buckets = LinearBuckets(120, granularity)
    assert buckets.is_empty(TRUNC1)
    for when, value in stats:
        buckets.record(when, value)
    got = {when: value for when, value in buckets.recent(TRUNC1 + 60) if value > 0}
    assert got == want


def test_TestTimedFloat64BucketsManyReps() -> None:
    now = TRUNC1
    buckets = LinearBuckets(60)
    for p in range(5):
        now += 1
        for t in range(5):
            buckets.record(now, p + t)
    assert bucket_sum(buckets, now) == 100
    assert bucket_sum(buckets, now) == 100  # reading changes nothing


def test_TestTimedFloat64BucketsManyRepsWithNonMonotonicalOrder() -> None:
    buckets = LinearBuckets(60)
    end = TRUNC1
    for p, offset in enumerate([0, 3, 2, 1, 4]):
        end = TRUNC1 + offset
        for t in range(5):
            buckets.record(end, p + t)
    assert bucket_sum(buckets, end) == 100
    assert bucket_sum(buckets, end) == 100


def test_TestTimedFloat64BucketsWeightedAverage() -> None:
    buckets = WeightedBuckets(5)
    m = buckets.smoothing
    buckets.record(NOW, 2)
    want = 2 * m
    assert buckets.window_average(NOW) == want
    # One second later, no writes.
    want *= 1 - m
    assert buckets.window_average(NOW + 1) == want
    buckets.record(NOW + 1, 2)
    want += 2 * m
    assert buckets.window_average(NOW + 1) == want
    # Fill the whole window with [2, 3, 4, 5, 6].
    for i in range(5):
        buckets.record(NOW + 2 + i, i + 2)
    want = (
        6 * m
        + 5 * m * (1 - m)
        + 4 * m * (1 - m) * (1 - m)
        + 3 * m * (1 - m) * (1 - m) * (1 - m)
        + 2 * m * (1 - m) * (1 - m) * (1 - m) * (1 - m)
    )
    assert buckets.window_average(NOW + 6) == pytest.approx(want, rel=1e-12)
    # An empty window.
    assert buckets.window_average(NOW + 16) == 0


def test_TestTimedFloat64BucketsWindowAverage() -> None:
    now = NOW
    buckets = LinearBuckets(5)
    # Averaged since the first write: without that this would be 0.2.
    buckets.record(now, 1)
    assert buckets.window_average(now) == 1
    for i in range(1, 5):
        buckets.record(now + i, i + 1)
    assert buckets.window_average(now + 4) == 15 / 5
    # `now` lagging behind.
    assert buckets.window_average(now + 3.6) == 15 / 5
    # A short hole.
    assert buckets.window_average(now + 6) == (15 - 1 - 2) / (5 - 2)
    # A long hole.
    assert buckets.window_average(now + 10) == 0
    # A write after a hole.
    buckets.record(now + 6, 91)
    assert buckets.window_average(now + 6) == (15 - 1 - 2 + 91) / 5
    # Much farther on.
    now += 60
    buckets.record(now, 1984)
    assert buckets.window_average(now) == 1984
    # An earlier time.
    buckets.record(now - 3, 4)
    assert buckets.window_average(now) == (4 + 1984) / 4
    # One more second.
    now += 1
    buckets.record(now, 5)
    assert buckets.window_average(now) == (4 + 1984 + 5) / 5
    # An earlier time again.
    buckets.record(now - 3, 10)
    assert buckets.window_average(now) == (4 + 10 + 1984 + 5) / 5
    # Too early: ignored.
    buckets.record(now - 6, 10)
    assert buckets.window_average(now) == (4 + 10 + 1984 + 5) / 5
    # Exactly a window early: ignored.
    buckets.record(now - 5, 10)
    assert buckets.window_average(now) == (4 + 10 + 1984 + 5) / 5
    # No data for exactly a window: cleared.
    buckets.record(now + 5, 10)
    assert buckets.window_average(now + 5) == 10


def test_TestDescendingRecord() -> None:
    buckets = LinearBuckets(5)
    for i in range(8, -1, -1):
        buckets.record(NOW + i, 5)
    assert buckets.window_average(NOW + 5) == 5


def test_TestTimedFloat64BucketsHoles() -> None:
    buckets = LinearBuckets(5)
    for i in range(5):
        buckets.record(NOW + i, i + 1)
    assert bucket_sum(buckets, NOW + 4) == 15
    assert buckets.window_average(NOW + 4) == 15 / 5
    # A write at the 9th second zeroes seconds 5, 6 and 7.
    buckets.record(NOW + 8, 2)
    assert bucket_sum(buckets, NOW + 8) == 7


def test_TestWeightedFloat64BucketsResizeWindow() -> None:
    buckets = WeightedBuckets(5)
    assert buckets.smoothing == pytest.approx(smoothing_coefficient(5))
    for i in range(6):
        buckets.record(NOW + i, i + 1)
    now = NOW + 5
    assert bucket_sum(buckets, now) == 2 + 3 + 4 + 5 + 6
    assert round_to_digits(buckets.window_average(now), 3) == 5.812
    buckets.resize_window(10, now)
    assert len(buckets.recent(now)) == 10
    assert buckets.window_s == 10
    assert buckets.smoothing == pytest.approx(smoothing_coefficient(10))


def test_TestTimedFloat64BucketsResizeWindow() -> None:
    buckets = LinearBuckets(5)
    for i in range(6):
        buckets.record(NOW + i, i + 1)
    now = NOW + 5
    initial = 2 + 3 + 4 + 5 + 6
    assert bucket_sum(buckets, now) == initial
    assert buckets.window_average(now) == initial / 5

    buckets.resize_window(10, now)
    assert len(buckets.recent(now)) == 10
    assert buckets.window_s == 10
    assert bucket_sum(buckets, now) == initial
    # At most 5 buckets were written: the average does not change.
    assert buckets.window_average(now) == initial / 5

    now += 1
    buckets.record(now, 7)
    updated = initial + 7
    assert bucket_sum(buckets, now) == updated
    assert buckets.window_average(now) == round_to_digits(updated / 6, 6)

    buckets.resize_window(4, now)
    assert len(buckets.recent(now)) == 4
    shrunk = updated - 2 - 3
    assert bucket_sum(buckets, now) == shrunk
    assert buckets.window_average(now) == shrunk / 4

    before = buckets.recent(now)
    buckets.resize_window(4, now)
    assert buckets.recent(now) == before


def test_TestTimedFloat64BucketsWindowUpdate3sGranularity() -> None:
    buckets = LinearBuckets(5, 3)
    assert len(buckets.recent(TRUNC3)) == 0
    for offset, value in [(0, 10), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]:
        buckets.record(TRUNC3 + offset, value)
    # ceil(5 / 3) = 2 buckets; the 7 overwrote the first (10 + 2 + 3).
    assert len(buckets.recent(TRUNC3 + 6)) == 2
    want = (4 + 5 + 6) + 7
    assert bucket_sum(buckets, TRUNC3 + 6) == want

    buckets.resize_window(10, TRUNC3 + 6)
    assert len(buckets.recent(TRUNC3 + 6)) == 4
    assert buckets.window_s == 10
    assert bucket_sum(buckets, TRUNC3 + 6) == want

    buckets.record(TRUNC3 + 9.3, 42)
    want += 42
    assert bucket_sum(buckets, TRUNC3 + 9) == want

    buckets.resize_window(4, TRUNC3 + 9)
    assert len(buckets.recent(TRUNC3 + 9)) == 2
    # The oldest bucket and the one not yet used are dropped.
    assert bucket_sum(buckets, TRUNC3 + 9) == 42 + 7

    before = buckets.recent(TRUNC3 + 9)
    buckets.resize_window(4, TRUNC3 + 9)
    assert buckets.recent(TRUNC3 + 9) == before


def test_TestTimedFloat64BucketsWindowUpdateNoOp() -> None:
    start = NOW - 60
    buckets = LinearBuckets(5)
    buckets.record(start, 19.82)
    assert buckets.window_average(start) == 19.82
    # Resized a minute after the only write: nothing is kept.
    buckets.resize_window(10, NOW)
    assert buckets.window_average(start) == 0


@pytest.mark.parametrize(
    ("digits", "value", "want"),
    [
        (6, 3.6e-17, 0.0),
        (3, -3.6e-17, 0.0),
        (3, 0.0004, 0.0),
        (3, 1.2345, 1.235),
        (4, 1.2345, 1.2345),
        (6, 12345, 12345.0),
    ],
)
def test_TestRoundToNDigits(digits: int, value: float, want: float) -> None:
    assert round_to_digits(value, digits) == want


# --- max window ------------------------------------------------------------------------


def shifted_after_three(i: int) -> int:
    return i + 3 if i >= 3 else i


@pytest.mark.parametrize(
    ("values", "index", "expect"),
    [
        ([1], None, [1]),
        ([1, 2], None, [1, 2]),
        ([2, 1], None, [2, 2]),
        ([1, 2, 1], None, [1, 2, 2]),
        ([5, 6, 5, 5, 5, 5, 5], None, [5, 6, 6, 6, 6, 6, 5]),
        ([6, 5, 2, 1], shifted_after_three, [6, 6, 6, 2]),
        ([5, 6, 5, 7, 5, 5, 1], None, [5, 6, 6, 7, 7, 7, 7]),
        ([5, 8, 5, 7, 5, 5], None, [5, 8, 8, 8, 8, 8]),
        ([5, 8, 5, 7, 5, 5, 1], None, [5, 8, 8, 8, 8, 8, 7]),
        ([5, 8, 5, 7, 5, 5, 1, 4, 4, 4], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5]),
        ([5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4]),
        ([5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9]),
        (
            [5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9, 3, 4, 2, 1, 0],
            None,
            [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9, 9, 9, 9, 9, 4],
        ),
        ([1, 2, 3, 4, 5, 6, 7], lambda _: 1, [1, 2, 3, 4, 5, 6, 7]),
        ([7, 6, 5, 4, 3, 2, 1], lambda _: 1, [7, 7, 7, 7, 7, 7, 7]),
    ],
    ids=[
        "single value",
        "ascending values",
        "descending values",
        "up, down, up",
        "windowing out",
        "windowing out with gaps",
        "windowing out 2",
        "windowing out 3",
        "windowing out 4",
        "windowing out 5",
        "windowing out 6",
        "windowing out 7",
        "windowing out 8",
        "multiple with same index, ascending",
        "multiple with same index, descending",
    ],
)
def test_TestWindowMax(values: list[int], index: object, expect: list[int]) -> None:
    window = MaxWindow(5)
    current = []
    for i, value in enumerate(values):
        window.record(index(i) if callable(index) else i, value)
        current.append(window.current())
    assert current == expect


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        ([(NOW, 5)], 5),
        ([(NOW, 6), (NOW + 0.5, 5)], 6),
        ([(NOW, 5), (NOW + 1, 8)], 8),
        ([(NOW, 5), (NOW + 6, 4)], 4),
    ],
    ids=["single value", "two values in same second", "two values", "time gap"],
)
def test_TestTimedWindowMax(values: list[tuple[float, int]], expect: int) -> None:
    window = MaxTimeWindow(5, 1)
    for when, value in values:
        window.record(when, value)
    assert window.current() == expect


def test_window_sizes_round_up() -> None:
    assert len(LinearBuckets(4.5).recent(0)) == 0
    buckets = LinearBuckets(4.5)
    buckets.record(10, 1)
    assert len(buckets.recent(10)) == math.ceil(4.5)
