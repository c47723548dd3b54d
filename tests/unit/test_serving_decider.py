"""The KPA decision, case by case as knative/serving tests it.

Ported from `pkg/autoscaler/scaling/autoscaler_test.go`; each test or table row is
named after the upstream one. Upstream feeds the autoscaler a fake metric client
returning stable and panic averages; here they go straight into `Decider.scale`,
with the ready count that upstream's fake pod counter returned. Time is a number:
`T0` stands in for upstream's `time.Now()`, `ZERO` for `time.Time{}`.

Not ported, and why:
- TestCantCountPods, TestNewFail: the pod counter failing. The ready count is an
  input here; whoever counts instances handles its own failure.
- TestAutoscalerNoDataNoAutoscale: the metric client failing; its equivalent, no
  sample in the window, is in test_serving_autoscaler.py under the same name.
- The OpenTelemetry gauges of TestAutoscalerStartMetrics, TestAutoscalerMetrics and
  TestAutoscalerMetricsWithRPS: Ami publishes no such gauges yet. Their decisions
  (desired scale, EBC, panic, observed values) are checked here.
- BenchmarkAutoscaler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest

from amimesh.serving.kpa.decider import Decider, excess_burst_capacity
from amimesh.serving.kpa.scaling_settings import ScalingSettings

TARGET_UTILIZATION = 0.75
STABLE_WINDOW = 60.0
ACTIVATOR_CAPACITY = 150.0
TICK = 2.0  # upstream's tickInterval
T0 = 1_700_000_000.25  # any instant; not on a second boundary, as time.Now() is not
ZERO = 0.0


def spec(target: float, tbc: float, **changes: object) -> ScalingSettings:
    """Upstream's newTestAutoscalerWithScalingMetric spec."""
    base = ScalingSettings(
        metric="concurrency",
        target=target,
        total=target / TARGET_UTILIZATION,
        target_burst_capacity=tbc,
        panic_threshold=2.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
        activator_capacity=ACTIVATOR_CAPACITY,
        stable_window_s=STABLE_WINDOW,
        reachable=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def delay_spec(**changes: object) -> ScalingSettings:
    """The spec of the scale-down-delay tests (no TBC, no total, no window)."""
    base = ScalingSettings(
        target=10.0,
        total=0.0,
        target_burst_capacity=0.0,
        max_scale_down_rate=10.0,
        max_scale_up_rate=10.0,
        panic_threshold=100.0,
        stable_window_s=0.0,
        scale_down_delay_s=300.0,
        reachable=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def expected_ebc(tot_cap: float, target_bc: float, recorded: float, pods: float) -> int:
    return math.floor(tot_cap / TARGET_UTILIZATION * pods - target_bc - recorded)


@dataclass(frozen=True)
class Step:
    now: float
    ready: int
    stable: float
    panic: float
    want: int
    ebc: int = 0
    # Set: the decider's panic_since after the step (math.nan: not in panic).
    panic_since: float | None = None


def run(decider: Decider, steps: list[Step]) -> None:
    for i, step in enumerate(steps):
        got = decider.scale(step.now, step.ready, step.stable, step.panic)
        assert (got.desired, got.excess_burst_capacity) == (step.want, step.ebc), f"step {i}"
        if step.panic_since is not None:
            want_since = None if math.isnan(step.panic_since) else step.panic_since
            assert decider.panic_since == want_since, f"step {i}"


NOT_PANICKING = math.nan


# --- sequences ---------------------------------------------------------------------

SEQUENCES: dict[str, tuple[Decider, list[Step]]] = {
    "TestAutoscalerScaleDownDelay/simple+gradual": (
        Decider(delay_spec(), ready=0),
        [
            # simple: scale up; 5 minutes at 0 hold; 5 minutes 2 seconds drop.
            Step(ZERO + 2, 0, 40, 40, 4),
            Step(ZERO + 300, 0, 0, 0, 4),
            Step(ZERO + 302, 0, 0, 0, 0),
            # gradual: the larger recent desire dominates until it scrolls out.
            Step(ZERO + 540, 0, 40, 40, 4),
            Step(ZERO + 600, 0, 30, 30, 4),
            Step(ZERO + 660, 0, 0, 0, 4),
            Step(ZERO + 840, 0, 0, 0, 3),
            Step(ZERO + 900, 0, 0, 0, 0),
        ],
    ),
    "TestAutoscalerScaleDownDelayZero": (
        Decider(delay_spec(scale_down_delay_s=0.0, reachable=False), ready=0),
        [Step(ZERO, 0, 40, 40, 4), Step(ZERO + 0.5, 0, 20, 20, 2)],
    ),
    "TestAutoscalerStableModeIncreaseWithConcurrencyDefault": (
        Decider(spec(10, 101), ready=1),
        [
            Step(T0, 1, 50, 10, 5, expected_ebc(10, 101, 10, 1)),
            Step(T0, 1, 100, 10, 10, expected_ebc(10, 101, 10, 1)),
        ],
    ),
    "TestAutoscalerStableModeIncreaseWithRPS": (
        Decider(spec(10, 101, metric="rps"), ready=1),
        [
            Step(T0, 1, 50, 50, 5, expected_ebc(10, 101, 50, 1)),
            Step(T0, 1, 100, 99, 10, expected_ebc(10, 101, 99, 1)),
        ],
    ),
    "TestAutoscalerUnpanicAfterSlowIncrease": (
        Decider(spec(1, 98), ready=1),
        [
            Step(T0, 10, 11, 25, 25, expected_ebc(1, 98, 25, 10), panic_since=T0),
            # Half the stable window later, 15 more pods; panic time does not move.
            Step(T0 + 30, 40, 30, 41, 41, expected_ebc(1, 98, 41, 40), panic_since=T0),
            # At the end of the window panic ends, and the stable desire counts.
            Step(T0 + 62, 55, 50, 56, 50, expected_ebc(1, 98, 56, 55), NOT_PANICKING),
        ],
    ),
    "TestAutoscalerExtendPanicWindow": (
        Decider(spec(1, 98), ready=1),
        [
            Step(T0, 10, 11, 25, 25, expected_ebc(1, 98, 25, 10), panic_since=T0),
            Step(T0 + 30, 40, 30, 80, 80, expected_ebc(1, 98, 80, 40), panic_since=T0 + 30),
        ],
    ),
    "TestAutoscalerStableModeDecrease": (
        Decider(spec(10, 98), ready=1),
        [
            Step(T0, 8, 100, 100, 10, expected_ebc(10, 98, 100, 8)),
            Step(T0, 8, 50, 50, 5, expected_ebc(10, 98, 50, 8)),
        ],
    ),
    "TestAutoscalerStableModeNoTrafficScaleToZero": (
        Decider(spec(10, 75), ready=1),
        [
            Step(T0, 1, 1, 0, 1, expected_ebc(10, 75, 0, 1)),
            Step(T0, 1, 0, 0, 0, expected_ebc(10, 75, 0, 1)),
        ],
    ),
    "TestAutoscalerActivationScale": (
        Decider(spec(10, 75, activation_scale=2), ready=1),
        [
            Step(T0, 1, 0, 0, 0, expected_ebc(10, 75, 0, 1)),
            Step(T0, 1, 1, 0, 2, expected_ebc(10, 75, 0, 1)),
        ],
    ),
    "TestAutoscalerPanicModeExponentialTrackAndStabilize": (
        Decider(spec(1, 101), ready=1),
        [
            Step(T0, 1, 6, 6, 6, expected_ebc(1, 101, 6, 1)),
            Step(T0, 6, 36, 36, 36, expected_ebc(1, 101, 36, 6), panic_since=T0),
            Step(T0 + 1, 36, 216, 216, 216, expected_ebc(1, 101, 216, 36), panic_since=T0 + 1),
            Step(T0 + 1, 216, 1296, 1296, 1296, expected_ebc(1, 101, 1296, 216), T0 + 1),
            Step(T0 + 2, 1296, 1296, 1296, 1296, expected_ebc(1, 101, 1296, 1296)),
        ],
    ),
    "TestAutoscalerPanicThenUnPanicScaleDown": (
        Decider(spec(10, 93), ready=1),
        [
            Step(T0, 1, 100, 100, 10, expected_ebc(10, 93, 100, 1)),
            Step(T0, 10, 100, 1000, 100, expected_ebc(10, 93, 1000, 10)),
            # Traffic dropped off; the scale stays while in panic.
            Step(T0 + 30, 10, 1, 1, 100, expected_ebc(10, 93, 1, 10)),
            # Down after the stable window.
            Step(T0 + 61, 10, 1, 1, 1, expected_ebc(10, 93, 1, 10)),
        ],
    ),
    "TestAutoscalerRateLimitScaleUp": (
        Decider(spec(10, 61), ready=1),
        [
            # 100 pods needed, but only x10 at a time.
            Step(T0, 1, 1000, 1001, 10, expected_ebc(10, 61, 1001, 1)),
            Step(T0, 10, 1000, 1001, 100, expected_ebc(10, 61, 1001, 10)),
        ],
    ),
    "TestAutoscalerRateLimitScaleDown": (
        Decider(spec(10, 61), ready=1),
        [
            # 1 pod needed, but only ÷10 at a time.
            Step(T0, 100, 1, 1, 10, expected_ebc(10, 61, 1, 100)),
            Step(T0, 10, 1, 1, 1, expected_ebc(10, 61, 1, 10)),
        ],
    ),
    "TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound": (
        Decider(spec(10, 81), ready=1),
        [Step(T0, 0, 1000, 888, 10, expected_ebc(10, 81, 888, 0))],
    ),
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_sequence(name: str) -> None:
    decider, steps = SEQUENCES[name]
    run(decider, steps)


def test_TestAutoscalerScaleDownDelayNotReachable() -> None:
    decider = Decider(delay_spec(), ready=0)
    run(decider, [Step(ZERO + 2, 0, 40, 40, 4), Step(ZERO + 60, 0, 0, 0, 4)])
    # Another revision took the traffic: no delay, no lower bound.
    decider.update(delay_spec(reachable=False))
    run(decider, [Step(ZERO + 2, 0, 0, 0, 0)])


def test_TestAutoscalerUpdateTarget() -> None:
    decider = Decider(spec(10, 77), ready=1)
    run(decider, [Step(T0, 1, 100, 101, 10, expected_ebc(10, 77, 101, 1))])
    decider.update(
        ScalingSettings(
            target=1,
            total=1 / TARGET_UTILIZATION,
            activator_capacity=21,
            target_burst_capacity=71,
            panic_threshold=2,
            max_scale_down_rate=10,
            max_scale_up_rate=10,
            stable_window_s=STABLE_WINDOW,
        )
    )
    run(decider, [Step(T0, 10, 100, 101, 100, expected_ebc(1, 71, 101, 10))])


# --- TestAutoscalerScale (the table) -----------------------------------------------


@dataclass(frozen=True)
class Row:
    settings: ScalingSettings
    stable: float
    panic: float
    base_scale: int
    want_scale: int
    want_ebc: int
    # upstream's prepFunc setting panicTime = now - 5s and maxPanicPods = 5
    panicking_with: int = 0


SCALE_TABLE: dict[str, Row] = {
    "AutoscalerNoDataAtZeroNoAutoscale": Row(
        spec(10, 100), 0, 0, 1, 0, expected_ebc(10, 100, 0, 1)
    ),
    "AutoscalerNoDataAtZeroNoAutoscaleWithExplicitEPs": Row(
        spec(10, 100), 0, 0, 1, 0, expected_ebc(10, 100, 0, 1)
    ),
    "AutoscalerStableModeUnlimitedTBC": Row(spec(181, -1), 21, 26, 1, 1, -1),
    "Autoscaler0TBC": Row(spec(10, 0), 50, 49, 1, 5, 0),
    "AutoscalerStableModeNoChange": Row(spec(10, 100), 50, 50, 1, 5, expected_ebc(10, 100, 50, 1)),
    "AutoscalerPanicStableLargerThanPanic": Row(
        spec(1, 100), 50, 30, 5, 50, expected_ebc(1, 100, 30, 5), panicking_with=5
    ),
    "AutoscalerPanicStableLessThanPanic": Row(
        spec(1, 100), 20, 30, 5, 30, expected_ebc(1, 100, 30, 5), panicking_with=5
    ),
    "AutoscalerStableModeNoChangeAlreadyScaled": Row(
        spec(10, 100), 50, 50, 5, 5, expected_ebc(10, 100, 50, 5)
    ),
    "AutoscalerStableModeIncreaseWithSmallScaleUpRate": Row(
        spec(1, 1982, max_scale_up_rate=1.1), 3, 3.1, 2, 3, expected_ebc(1, 1982, 3.1, 2)
    ),
    "AutoscalerStableModeDecreaseWithSmallScaleDownRate": Row(
        spec(10, 1982, max_scale_down_rate=1.1), 1, 1, 100, 90, expected_ebc(10, 1982, 1, 100)
    ),
    "AutoscalerStableModeDecreaseNonReachable": Row(
        spec(10, 1982, max_scale_down_rate=1.1, reachable=False),
        1,
        1,
        100,
        1,
        expected_ebc(10, 1982, 1, 100),
    ),
    "AutoscalerPanicModeDoublePodCount": Row(
        spec(10, 84), 50, 100, 1, 10, expected_ebc(10, 84, 100, 1)
    ),
}


@pytest.mark.parametrize("label", list(SCALE_TABLE))
def test_TestAutoscalerScale(label: str) -> None:
    row = SCALE_TABLE[label]
    if row.panicking_with:
        decider = Decider(row.settings, ready=row.panicking_with, now=T0 - 5)
    else:
        decider = Decider(row.settings, ready=1)
    got = decider.scale(T0, row.base_scale, row.stable, row.panic)
    assert (got.desired, got.excess_burst_capacity) == (row.want_scale, row.want_ebc)


# --- the decisions behind upstream's metrics tests ------------------------------------


def test_TestAutoscalerStartMetrics() -> None:
    # Made with two ready pods: starts in panic, before any decision.
    decider = Decider(spec(10, 100), ready=2, now=T0)
    assert decider.panic_since == T0


def test_TestAutoscalerMetrics() -> None:
    decider = Decider(spec(10, 100), ready=1)
    assert decider.panic_since is None
    got = decider.scale(T0, 1, 50, 50)
    assert (got.desired, got.excess_burst_capacity) == (5, expected_ebc(10, 100, 50, 1))
    assert got.panic
    assert (got.observed_stable, got.observed_panic) == (50, 50)


def test_TestAutoscalerMetricsWithRPS() -> None:
    decider = Decider(spec(10, 100, metric="rps"), ready=1)
    got = decider.scale(T0 + 61, 1, 100, 99)
    assert (got.desired, got.excess_burst_capacity) == (10, expected_ebc(10, 100, 99, 1))
    assert got.panic
    assert (got.observed_stable, got.observed_panic) == (100, 99)


def start_spec() -> ScalingSettings:
    return ScalingSettings(
        target=100,
        total=120,
        target_burst_capacity=11,
        panic_threshold=220,
        max_scale_up_rate=10,
        max_scale_down_rate=10,
        stable_window_s=STABLE_WINDOW,
    )


@pytest.mark.parametrize("ready", [0, 1])
def test_TestStartInPanicMode_not_below_two(ready: int) -> None:
    decider = Decider(start_spec(), ready=ready, now=T0)
    assert decider.panic_since is None


def test_TestStartInPanicMode_at_two() -> None:
    decider = Decider(start_spec(), ready=2, now=T0)
    assert decider.panic_since == T0
    # maxPanicPods is 2: no scale-down below it while the panic lasts.
    assert decider.scale(T0 + 1, 2, 10, 10).desired == 2


# --- Ami's own -----------------------------------------------------------------------


def test_starting_in_panic_needs_a_time() -> None:
    with pytest.raises(ValueError):
        Decider(start_spec(), ready=3)


def test_excess_burst_capacity_signs() -> None:
    s = spec(10, 100)
    assert excess_burst_capacity(replace(s, target_burst_capacity=0), 3, 500) == 0
    assert excess_burst_capacity(replace(s, target_burst_capacity=-1), 3, 0) == -1
    # floor, not truncation, for negative values
    assert excess_burst_capacity(replace(s, total=10.0), 1, 0.5) == -91
