"""The KPA reconciler's decisions: final scale, scale to zero, status, activator path.

Ported from knative/serving, each case named after the upstream one:
- `pkg/reconciler/autoscaling/kpa/scaler_test.go` TestScaler, TestDisableScaleToZero
- `pkg/reconciler/autoscaling/kpa/kpa_test.go` TestComputeActivatorNum,
  TestComputeStatus, TestResolveScrapeTarget

Upstream drives a scaler with fake Kubernetes clients; here its inputs are values:
the Deployment's replicas are `current`, the PodAutoscaler's `Active` condition and
its transition time are a `PodAutoscalerStatus`, the ServerlessService's mode and
`ActivatorEndpointsPopulated` time, and the activator probe's answer, are an
`ActivatorPath`. "wantScaling" is `ScaleStep.apply`, the enqueue callback count is
whether `requeue_after_s` is set, the async probe count is `probe_activator`.
Upstream's `time.Now()` is `NOW`, and its configuration is kpa_test.go's
`defaultConfig()` (stable window 5m, grace period 60s, progress deadline 121s).

Not ported, and why:
- TestActivatorProbe: the HTTP probe itself is I/O; its answer is an input here.
- TestReconcile, TestGlobalResyncOnUpdateAutoscalerConfigMap,
  TestReconcileDeciderCreatesAndDeletes, TestUpdate, TestController*Error,
  TestScaleFailure, TestMetricsReporter: reconciler plumbing over Kubernetes objects
  and clients. The rules they exercise through it, `computeActiveCondition` and the
  SKS mode, are tested below from their own definitions (the table in
  `computeActiveCondition`'s doc comment, and `ReconcileKind`'s mode switch).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from amimesh.serving.kpa.scaler import ActivatorPath, ScaleStep, scale
from amimesh.serving.kpa.scaling_settings import ScalingSettings, scaling_settings
from amimesh.serving.kpa.status import (
    MIN_ACTIVATORS,
    PodAutoscalerStatus,
    activator_count,
    activator_in_path,
    new_status,
    next_status,
)

NOW = 1_700_000_000.25
G = "autoscaling.knative.dev/"
STABLE_WINDOW = 300.0
PA_STABLE_WINDOW = 45.0
GRACE_PERIOD = 60.0
PROGRESS_DEADLINE = 121.0
ACTIVATION_TIMEOUT = PROGRESS_DEADLINE + 30.0


def default_config_map() -> dict[str, str]:
    """kpa_test.go's defaultConfigMapData."""
    return {
        "max-scale-up-rate": "12.0",
        "container-concurrency-target-percentage": "0.5",
        "container-concurrency-target-default": "10",
        "stable-window": "5m0s",
        "panic-window": "10s",
        "scale-to-zero-grace-period": "1m0s",
        "tick-interval": "2s",
        "min-scale": "0",
        "target-burst-capacity": "200",
    }


def active(since: float) -> PodAutoscalerStatus:
    return PodAutoscalerStatus(active="active", since=since)


def inactive(since: float) -> PodAutoscalerStatus:
    return PodAutoscalerStatus(active="inactive", since=since)


def activating(since: float) -> PodAutoscalerStatus:
    return PodAutoscalerStatus(active="activating", since=since)


@dataclass(frozen=True)
class Case:
    start_replicas: int
    scale_to: int
    want_replicas: int = 0
    want_scaling: bool = False
    min_scale: int = 0
    max_scale: int = 0
    status: PodAutoscalerStatus = field(default_factory=lambda: new_status(NOW))
    annotations: dict[str, str] = field(default_factory=dict)
    reachable: bool = True
    config: dict[str, str] = field(default_factory=dict)
    path: ActivatorPath = ActivatorPath()
    want_cb: bool = False
    want_async_probe: bool = False


SCALER_CASES: dict[str, Case] = {
    "waits to scale to zero (just before idle period)": Case(
        1, 0, want_replicas=1, status=active(NOW - STABLE_WINDOW + 1), want_cb=True
    ),
    "waits to scale to zero (just before idle period), custom PA window": Case(
        1,
        0,
        want_replicas=1,
        annotations={G + "window": "45s"},
        status=active(NOW - PA_STABLE_WINDOW + 1),
        want_cb=True,
    ),
    "custom PA window, check for standard window, no probe": Case(
        1, 0, annotations={G + "window": "45s"}, status=active(NOW - STABLE_WINDOW)
    ),
    "scale to 1 waiting for idle expires": Case(
        10,
        0,
        want_replicas=1,
        want_scaling=True,
        status=active(NOW - STABLE_WINDOW + 1),
        want_cb=True,
    ),
    "waits to scale to zero after idle period": Case(1, 0, status=active(NOW - STABLE_WINDOW)),
    "waits to scale to zero after idle period; sks in proxy mode": Case(
        1,
        0,
        status=active(NOW - STABLE_WINDOW),
        path=ActivatorPath(proxy_mode=True),
        want_cb=True,
    ),
    "waits to scale to zero after idle period (custom PA window)": Case(
        1, 0, annotations={G + "window": "45s"}, status=active(NOW - PA_STABLE_WINDOW)
    ),
    "can scale to zero after grace period, but 0 PA retention": Case(
        1,
        0,
        want_scaling=True,
        status=inactive(NOW - GRACE_PERIOD),
        annotations={G + "scale-to-zero-pod-retention-period": "0"},
        config={"scale-to-zero-pod-retention-period": "2m0s"},
    ),
    "can't scale to zero after grace period, but before last pod retention": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD),
        config={"scale-to-zero-pod-retention-period": "2m0s"},
        want_cb=True,
    ),
    "can't scale to zero after grace period, but before last pod retention, pa defined": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD),
        annotations={G + "scale-to-zero-pod-retention-period": "2m0s"},
        config={"scale-to-zero-pod-retention-period": "0s"},
        want_cb=True,
    ),
    "scale to zero after grace period, and after last pod retention": Case(
        1,
        0,
        want_scaling=True,
        status=inactive(NOW - GRACE_PERIOD),
        config={"scale-to-zero-pod-retention-period": "1m0s"},
    ),
    "scale to zero after grace period": Case(
        1, 0, want_scaling=True, status=inactive(NOW - GRACE_PERIOD)
    ),
    "waits to scale to zero (just before grace period)": Case(
        1, 0, status=inactive(NOW - GRACE_PERIOD + 1), want_cb=True
    ),
    "waits to scale to zero (just before grace period, sks short)": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD + 1),
        path=ActivatorPath(since=NOW - (GRACE_PERIOD - 1)),
        want_cb=True,
    ),
    "waits to scale to zero (just before grace period, sks in proxy long) "
    "and last pod timeout positive": Case(
        1,
        0,
        want_scaling=True,
        status=inactive(NOW - GRACE_PERIOD + 1),
        config={"scale-to-zero-pod-retention-period": "42s"},
        path=ActivatorPath(since=NOW - GRACE_PERIOD),
    ),
    "waits to scale to zero (just before grace period, sks in proxy long)": Case(
        1,
        0,
        want_scaling=True,
        status=inactive(NOW - GRACE_PERIOD + 1),
        path=ActivatorPath(since=NOW - GRACE_PERIOD),
    ),
    "scale to zero with TBC=-1": Case(
        1,
        0,
        want_scaling=True,
        annotations={G + "target-burst-capacity": "-1"},
        status=inactive(NOW - GRACE_PERIOD),
        # The probe's answer must not matter: upstream's prober panics if called.
        path=ActivatorPath(reached=False),
    ),
    "scale to zero after grace period, but fail prober": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD),
        path=ActivatorPath(reached=False),
        want_async_probe=True,
    ),
    "scale to zero after grace period, but wrong prober response": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD),
        path=ActivatorPath(reached=False),
        want_async_probe=True,
    ),
    "waits to scale to zero while activating until after deadline exceeded": Case(
        1, 0, want_replicas=-1, status=activating(NOW - ACTIVATION_TIMEOUT / 2), want_cb=True
    ),
    "scale to zero while activating after deadline exceeded": Case(
        1, 0, want_scaling=True, status=activating(NOW - (ACTIVATION_TIMEOUT + 1))
    ),
    "scale to zero while activating after revision deadline exceeded": Case(
        1,
        0,
        want_scaling=True,
        annotations={"serving.knative.dev/progress-deadline": "5s"},
        status=activating(NOW - (5 + 30 + 1)),
    ),
    "scale down to minScale before grace period": Case(
        10,
        0,
        want_replicas=2,
        want_scaling=True,
        min_scale=2,
        status=inactive(NOW - GRACE_PERIOD + 1),
    ),
    "scale down to minScale after grace period": Case(
        10, 0, want_replicas=2, want_scaling=True, min_scale=2, status=inactive(NOW - GRACE_PERIOD)
    ),
    "scale to zero ignore last pod retention if  revision is unreachable": Case(
        1,
        0,
        want_scaling=True,
        status=inactive(NOW - GRACE_PERIOD),
        reachable=False,
        config={"scale-to-zero-pod-retention-period": "10m0s"},
    ),
    "can't scale to zero if revision is unreachable, but before deadline": Case(
        1,
        0,
        status=inactive(NOW - GRACE_PERIOD + 1),
        reachable=False,
        config={"scale-to-zero-pod-retention-period": "10m0s"},
        want_cb=True,
    ),
    "ignore minScale if unreachable": Case(
        10, 0, want_scaling=True, min_scale=2, status=inactive(NOW - GRACE_PERIOD), reachable=False
    ),
    "observe minScale if reachability unknown": Case(
        10, 0, want_replicas=2, want_scaling=True, min_scale=2, status=inactive(NOW - GRACE_PERIOD)
    ),
    "scales up": Case(1, 10, want_replicas=10, want_scaling=True),
    "scales up to maxScale": Case(1, 10, want_replicas=8, want_scaling=True, max_scale=8),
    "scale up inactive revision": Case(
        1, 10, want_replicas=10, want_scaling=True, status=inactive(NOW - GRACE_PERIOD / 2)
    ),
    "does not scale up from zero with no metrics": Case(
        0, -1, want_replicas=-1, status=inactive(NOW)
    ),
    "scales up from zero to desired one": Case(0, 1, want_replicas=1, want_scaling=True),
    "scales up from zero to desired high scale": Case(0, 10, want_replicas=10, want_scaling=True),
    "negative scale does not scale": Case(12, -1, want_replicas=-1, status=active(NOW)),
    "initial scale attained, but now time to scale down": Case(
        2,
        0,
        want_replicas=1,
        want_scaling=True,
        want_cb=True,
        status=replace(active(NOW - 120), scale_target_initialized=True),
        annotations={G + "initial-scale": "2"},
    ),
    "haven't scaled to initial scale, override desired scale with initial scale": Case(
        0,
        1,
        want_replicas=2,
        want_scaling=True,
        status=activating(NOW),
        annotations={G + "initial-scale": "2"},
    ),
    "initial scale reached for the first time": Case(
        5, 1, want_replicas=5, status=activating(NOW), annotations={G + "initial-scale": "5"}
    ),
    "reaching initial scale zero": Case(
        0,
        0,
        want_cb=True,
        status=inactive(NOW),
        annotations={G + "initial-scale": "0"},
        config={"allow-zero-initial-scale": "true"},
    ),
    "unreachable revision with initialScale > 1 can scale to 0": Case(
        2,
        0,
        want_replicas=1,
        want_scaling=True,
        want_cb=True,
        status=active(NOW - 120),
        annotations={G + "initial-scale": "2"},
        reachable=False,
    ),
}


def settings_for(case: Case, **config: str) -> ScalingSettings:
    annotations = dict(case.annotations)
    if case.min_scale:
        annotations[G + "min-scale"] = str(case.min_scale)
    if case.max_scale:
        annotations[G + "max-scale"] = str(case.max_scale)
    return scaling_settings(
        annotations,
        {**default_config_map(), **case.config, **config},
        reachable=case.reachable,
        progress_deadline_s=PROGRESS_DEADLINE,
    )


def step_for(case: Case, settings: ScalingSettings) -> ScaleStep:
    return scale(
        settings,
        case.status,
        case.scale_to,
        current=case.start_replicas,
        now=NOW,
        path=case.path,
    )


@pytest.mark.parametrize("label", list(SCALER_CASES))
def test_TestScaler(label: str) -> None:
    case = SCALER_CASES[label]
    step = step_for(case, settings_for(case))
    assert step.scale == case.want_replicas
    assert step.apply == case.want_scaling
    assert (step.requeue_after_s is not None) == case.want_cb
    assert step.probe_activator == case.want_async_probe


DISABLED_CASES: dict[str, Case] = {
    "EnableScaleToZero == false and minScale == 0": Case(
        10, 0, want_replicas=1, want_scaling=True, status=active(NOW)
    ),
    "EnableScaleToZero == false and minScale == 2": Case(
        10, 0, want_replicas=2, want_scaling=True, min_scale=2, status=active(NOW)
    ),
    "EnableScaleToZero == false and desire pod is -1(initial value)": Case(
        10, -1, want_replicas=-1, status=active(NOW)
    ),
}


@pytest.mark.parametrize("label", list(DISABLED_CASES))
def test_TestDisableScaleToZero(label: str) -> None:
    case = DISABLED_CASES[label]
    step = step_for(case, settings_for(case, **{"enable-scale-to-zero": "false"}))
    assert (step.scale, step.apply) == (case.want_replicas, case.want_scaling)


def test_requeue_times() -> None:
    """How long the scaler asks to wait, in the cases upstream only counts."""
    cases = SCALER_CASES
    waits = {
        label: step_for(cases[label], settings_for(cases[label])).requeue_after_s
        for label in (
            "waits to scale to zero (just before idle period)",
            "waits to scale to zero after idle period; sks in proxy mode",
            "can't scale to zero after grace period, but before last pod retention",
            "waits to scale to zero (just before grace period, sks short)",
            "waits to scale to zero while activating until after deadline exceeded",
        )
    }
    assert list(waits.values()) == [1.0, 3.0, 60.0, 1.0, ACTIVATION_TIMEOUT]


# --- kpa_test.go -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pods", "tbc", "want"),
    [(0, 200, MIN_ACTIVATORS), (1, 200, 3), (100, 0, MIN_ACTIVATORS), (5, -1, 5), (15, 200, 17)],
    ids=["default", "1 pod", "tbc = 0", "tbc = -1", "many pods"],
)
def test_TestComputeActivatorNum(pods: int, tbc: float, want: int) -> None:
    settings = ScalingSettings(total=100, target_burst_capacity=tbc, activator_capacity=100)
    assert activator_count(settings, pods) == want


@pytest.mark.parametrize(
    ("have_actual", "have_desired", "ready", "want", "want_actual", "want_desired"),
    [
        (None, None, 0, 1, 0, 1),
        (0, 1, 1, 1, 1, 1),
        (1, 1, 1, 1, 1, 1),
        (1, 2, 2, -1, 2, 2),
    ],
    ids=["initial", "ready", "stable", "no metrics"],
)
def test_TestComputeStatus(
    have_actual: int | None,
    have_desired: int | None,
    ready: int,
    want: int,
    want_actual: int,
    want_desired: int,
) -> None:
    settings = scaling_settings({}, default_config_map())
    status = PodAutoscalerStatus(actual_scale=have_actual, desired_scale=have_desired)
    got = next_status(settings, status, want=want, ready=ready, now=NOW)
    assert (got.actual_scale, got.desired_scale) == (want_actual, want_desired)


def test_TestResolveScrapeTarget() -> None:
    assert not scaling_settings({}, default_config_map()).activator_always_in_path
    config = {**default_config_map(), "target-burst-capacity": "-1"}
    assert scaling_settings({}, config).activator_always_in_path
    annotations = {G + "target-burst-capacity": "-1"}
    assert scaling_settings(annotations, default_config_map()).activator_always_in_path


# --- computeActiveCondition's table, and the activator's place -----------------------

ZERO_THRESHOLD = ScalingSettings(initial_scale=0, min_scale=0)  # not yet initialized
ONE_THRESHOLD = ScalingSettings()


@pytest.mark.parametrize(
    ("want", "ready", "settings", "before", "after"),
    [
        (0, 3, ONE_THRESHOLD, "active", "inactive"),
        (2, 0, ONE_THRESHOLD, "inactive", "activating"),
        (2, 1, ONE_THRESHOLD, "activating", "active"),
        (-1, 0, ONE_THRESHOLD, "inactive", "inactive"),
        (-1, 0, ONE_THRESHOLD, "activating", "activating"),
        (-1, 0, ONE_THRESHOLD, "active", "activating"),
        (-1, 1, ONE_THRESHOLD, "inactive", "inactive"),
        (-1, 0, ZERO_THRESHOLD, "activating", "inactive"),
        (-1, 0, ZERO_THRESHOLD, "active", "inactive"),
        (-1, 1, ONE_THRESHOLD, "activating", "active"),
        (-1, 1, ONE_THRESHOLD, "active", "active"),
    ],
    ids=[
        "want 0 -> inactive",
        "want >0, got < min -> activating",
        "want >0, got >= min -> active",
        "want -1, got < min, inactive -> inactive",
        "want -1, got < min, activating -> activating",
        "want -1, got < min, active -> activating",
        "want -1, got >= min, inactive -> inactive",
        "want -1, got >= min, min 0, activating -> inactive",
        "want -1, got >= min, min 0, active -> inactive",
        "want -1, got >= min, min >0, activating -> active",
        "want -1, got >= min, min >0, active -> active",
    ],
)
def test_computeActiveCondition_table(
    want: int, ready: int, settings: ScalingSettings, before: str, after: str
) -> None:
    reason = {"active": "", "activating": "Queued", "inactive": "NoTraffic"}[before]
    status = PodAutoscalerStatus(active=before, since=NOW - 10, reason=reason)  # type: ignore[arg-type]
    got = next_status(settings, status, want=want, ready=ready, now=NOW)
    assert got.active == after
    assert got.since == (NOW - 10 if after == before else NOW)


def test_activation_timing_out_is_told_apart() -> None:
    got = next_status(ONE_THRESHOLD, activating(NOW - 200), want=0, ready=0, now=NOW)
    assert (got.active, got.reason) == ("inactive", "TimedOut")
    got = next_status(ONE_THRESHOLD, active(NOW - 200), want=0, ready=1, now=NOW)
    assert (got.active, got.reason) == ("inactive", "NoTraffic")


def test_initial_scale_is_the_threshold_until_reached() -> None:
    settings = ScalingSettings(initial_scale=3)
    status = next_status(settings, new_status(NOW), want=3, ready=2, now=NOW)
    assert (status.active, status.scale_target_initialized) == ("activating", False)
    status = next_status(settings, status, want=3, ready=3, now=NOW + 1)
    assert (status.active, status.scale_target_initialized) == ("active", True)
    # From then on one ready instance is enough.
    status = next_status(settings, status, want=1, ready=1, now=NOW + 2)
    assert status.active == "active"
    # Without an address the target does not count as reached.
    status = next_status(settings, new_status(NOW), want=3, ready=3, now=NOW, has_address=False)
    assert (status.active, status.scale_target_initialized) == ("active", False)


@pytest.mark.parametrize(
    ("want", "ebc", "in_path"),
    [(-1, 5, True), (0, 5, True), (3, -1, True), (3, 0, False), (3, 40, False)],
    ids=["unknown", "scaled to zero", "short of burst capacity", "exactly enough", "plenty"],
)
def test_activator_in_path(want: int, ebc: int, in_path: bool) -> None:
    assert activator_in_path(want, ebc) is in_path
