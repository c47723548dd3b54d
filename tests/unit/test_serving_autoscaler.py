"""The autoscaler as a whole: samples in, decisions out, on a fake clock (numbers).

TestAutoscalerNoDataNoAutoscale is upstream's (`pkg/autoscaler/scaling/
autoscaler_test.go`): no data, no decision. The rest are Ami's: they run the
windows and the decider together the way the collector and the decider run in
Knative, one sample per second.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from amimesh.serving.kpa.autoscaler import Autoscaler
from amimesh.serving.kpa.decider import initial_excess_burst_capacity
from amimesh.serving.kpa.scaling_settings import ScalingSettings, scaling_settings

T0 = 1_700_000_000.0
SETTINGS = ScalingSettings(target=10.0, total=10 / 0.7)


def feed(scaler: Autoscaler, start: float, seconds: int, value: float) -> float:
    """One sample a second for `seconds` seconds from `start`; returns the next second."""
    for i in range(seconds):
        scaler.record(start + i, value)
    return start + seconds


def test_TestAutoscalerNoDataNoAutoscale() -> None:
    scaler = Autoscaler(SETTINGS)
    assert scaler.observed(T0) is None
    assert scaler.scale(T0, 1) is None


def test_no_data_is_no_load_when_the_activator_is_always_in_path() -> None:
    scaler = Autoscaler(replace(SETTINGS, target_burst_capacity=-1))
    got = scaler.scale(T0, 1)
    assert got is not None
    assert (got.desired, got.excess_burst_capacity) == (0, -1)


def test_steady_load() -> None:
    scaler = Autoscaler(SETTINGS)
    now = feed(scaler, T0, 30, 50.0)
    got = scaler.scale(now - 1, 5)
    assert got is not None
    assert (got.desired, got.panic) == (5, False)
    assert (got.observed_stable, got.observed_panic) == (50.0, 50.0)


def test_a_burst_panics_and_the_scale_holds_until_a_stable_window_passes() -> None:
    scaler = Autoscaler(SETTINGS)
    now = feed(scaler, T0, 60, 10.0)
    got = scaler.scale(now - 1, 1)
    assert got is not None and (got.desired, got.panic) == (1, False)
    # Six seconds at 100: the panic window (6 s) sees 100, the stable one much less.
    now = feed(scaler, now, 6, 100.0)
    got = scaler.scale(now - 1, 1)
    assert got is not None
    assert got.panic
    assert got.observed_panic == 100.0
    assert got.desired == 10
    # Load gone: the panic holds the scale for a stable window after the last burst.
    panic_at = now - 1
    now = feed(scaler, now, 30, 0.0)
    got = scaler.scale(now - 1, 10)
    assert got is not None and (got.desired, got.panic) == (10, True)
    now = feed(scaler, now, 31, 0.0)
    got = scaler.scale(now - 1, 10)
    assert got is not None and now - 1 > panic_at + 60
    assert got.panic is False
    assert got.desired == 5  # no faster than max-scale-down-rate (2) per decision


def test_scales_to_zero_after_a_window_of_zeros() -> None:
    scaler = Autoscaler(SETTINGS)
    now = feed(scaler, T0, 10, 5.0)
    now = feed(scaler, now, 59, 0.0)
    got = scaler.scale(now - 1, 1)
    assert got is not None and got.desired == 1  # the 5s are still in the window
    now = feed(scaler, now, 1, 0.0)
    got = scaler.scale(now - 1, 1)
    assert got is not None and got.desired == 0


def test_weighted_aggregation_follows_recent_samples_faster() -> None:
    linear = Autoscaler(SETTINGS)
    weighted = Autoscaler(replace(SETTINGS, aggregation="weighted-exponential"))
    for scaler in (linear, weighted):
        now = feed(scaler, T0, 50, 10.0)
        feed(scaler, now, 10, 100.0)
    at = T0 + 59
    lin, wei = linear.observed(at), weighted.observed(at)
    assert lin is not None and wei is not None
    assert lin[0] == pytest.approx((50 * 10 + 10 * 100) / 60)
    assert wei[0] > lin[0]


def test_starts_in_panic_with_ready_instances() -> None:
    scaler = Autoscaler(SETTINGS, ready=4, now=T0)
    feed(scaler, T0, 5, 0.0)
    got = scaler.scale(T0 + 4, 4)
    assert got is not None and (got.desired, got.panic) == (4, True)
    with pytest.raises(ValueError):
        Autoscaler(SETTINGS, ready=4)


def test_update_resizes_the_windows() -> None:
    scaler = Autoscaler(SETTINGS)
    now = feed(scaler, T0, 20, 10.0)
    now = feed(scaler, now, 10, 40.0)
    shorter = replace(SETTINGS, stable_window_s=10.0, panic_window_s=1.0)
    scaler.update(shorter, now - 1)
    assert scaler.settings is shorter
    assert scaler.observed(now - 1) == (40.0, 40.0)


def test_settings_from_annotations_drive_the_windows() -> None:
    settings = scaling_settings(
        {"autoscaling.knative.dev/window": "10s", "autoscaling.knative.dev/target": "1"}
    )
    scaler = Autoscaler(settings)
    now = feed(scaler, T0, 10, 3.0)
    now = feed(scaler, now, 10, 1.0)
    got = scaler.scale(now - 1, 3)
    assert got is not None and got.observed_stable == 1.0


def test_initial_excess_burst_capacity() -> None:
    s = ScalingSettings(total=100, target_burst_capacity=211, initial_scale=1)
    assert initial_excess_burst_capacity(s) == -111
    assert initial_excess_burst_capacity(replace(s, initial_scale=3)) == 89
    assert initial_excess_burst_capacity(replace(s, target_burst_capacity=0)) == 0
    assert initial_excess_burst_capacity(replace(s, target_burst_capacity=-1)) == -1
    # truncated toward zero, as Go converts a float to an integer
    assert initial_excess_burst_capacity(replace(s, total=100.5, target_burst_capacity=200)) == -99
