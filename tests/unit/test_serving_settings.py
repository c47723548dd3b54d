"""Autoscaling settings: config-autoscaler, the annotations, and what they resolve to.

Ported from knative/serving, each case named after the upstream one:
- `pkg/autoscaler/config/config_test.go` TestNewConfig
- `pkg/apis/autoscaling/annotation_validation_test.go` TestValidateAnnotations
- `pkg/reconciler/autoscaling/resources/target_test.go` TestResolveMetricTarget
- `pkg/reconciler/autoscaling/resources/metric_test.go` TestMakeMetric (the stable
  and panic windows), TestStableWindow
- `pkg/reconciler/autoscaling/kpa/resources/decider_test.go` TestMakeDecider,
  TestGetInitialScale

Differences, and why:
- Error messages are Ami's; a failing case checks that the error names the keys
  upstream's error names, but for max-scale below min-scale, which upstream reports
  at both keys and Ami at max-scale's (the message names min-scale).
- Ami runs only the KPA, so a revision of another class (an annotation, or the
  cluster's pod-autoscaler-class) is an error; upstream leaves it to another
  autoscaler. The affected rows ("non-knative.dev domain class", "random algorithm
  on non KPA", "annotation /window is valid for other than HPA and KPA class",
  "valid class HPA with metric CPU", "other than HPA and KPA class", "valid global
  class HPA with metric CPU") expect the class error. In "invalid metric for HPA
  class" the class is reported as well as the metric.
- TestNewConfig "actual" and "example" read the ConfigMap shipped in
  `config/core/configmaps/autoscaler.yaml`; its data (only `_example`) and its
  example values are written out here.
- TestMakeMetric's object metadata, scrape target and annotation copies are not
  settings; only the windows are compared.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from amimesh.resources.knative_autoscaling import HPA as HPA_CLASS
from amimesh.resources.knative_autoscaling import KPA as KPA_CLASS
from amimesh.serving.kpa.autoscaler_config import (
    AutoscalerConfig,
    SettingsError,
    autoscaler_config,
)
from amimesh.serving.kpa.scaling_settings import (
    ScalingSettings,
    initial_scale,
    read_annotations,
    scaling_settings,
)

G = "autoscaling.knative.dev/"
CLASS = G + "class"
METRIC = G + "metric"
TARGET = G + "target"
TU = G + "target-utilization-percentage"
TBC = G + "target-burst-capacity"
MIN = G + "min-scale"
MAX = G + "max-scale"
INITIAL = G + "initial-scale"
ACTIVATION = G + "activation-scale"
WINDOW = G + "window"
PANIC_WINDOW = G + "panic-window-percentage"
PANIC_THRESHOLD = G + "panic-threshold-percentage"
DELAY = G + "scale-down-delay"
RETENTION = G + "scale-to-zero-pod-retention-period"
ALGORITHM = G + "metric-aggregation-algorithm"

# --- TestNewConfig ------------------------------------------------------------------

DEFAULT = AutoscalerConfig()
EXAMPLE = {
    "container-concurrency-target-percentage": "70",
    "container-concurrency-target-default": "100",
    "requests-per-second-target-default": "200",
    "target-burst-capacity": "211",
    "stable-window": "60s",
    "panic-window-percentage": "10.0",
    "panic-threshold-percentage": "200.0",
    "max-scale-up-rate": "1000.0",
    "max-scale-down-rate": "2.0",
    "enable-scale-to-zero": "true",
    "scale-to-zero-grace-period": "30s",
    "scale-to-zero-pod-retention-period": "0s",
    "pod-autoscaler-class": "kpa.autoscaling.knative.dev",
    "activator-capacity": "100.0",
    "initial-scale": "1",
    "allow-zero-initial-scale": "false",
    "min-scale": "0",
    "max-scale": "0",
    "scale-down-delay": "0s",
    "max-scale-limit": "0",
}

CONFIG_CASES: dict[str, tuple[dict[str, str], AutoscalerConfig | None]] = {
    "default": ({}, DEFAULT),
    "actual": ({"_example": "\n".join(f"{k}: {v!r}" for k, v in EXAMPLE.items())}, DEFAULT),
    "example": (EXAMPLE, DEFAULT),
    "overridden": (
        {
            "enable-scale-to-zero": "true",
            "max-scale-down-rate": "3.0",
            "max-scale-up-rate": "1.01",
            "container-concurrency-target-percentage": "0.71",
            "container-concurrency-target-default": "10.5",
            "requests-per-second-target-default": "10.11",
            "target-burst-capacity": "12345",
            "scale-down-delay": "15m",
            "stable-window": "5m",
            "tick-interval": "2s",
            "panic-window-percentage": "10",
            "panic-threshold-percentage": "200",
            "pod-autoscaler-class": "some.class",
            "activator-capacity": "905",
            "scale-to-zero-pod-retention-period": "2m3s",
        },
        replace(
            DEFAULT,
            target_burst_capacity=12345,
            container_concurrency_target_default=10.5,
            container_concurrency_target_fraction=0.71,
            rps_target_default=10.11,
            max_scale_down_rate=3,
            max_scale_up_rate=1.01,
            scale_down_delay_s=900,
            stable_window_s=300,
            activator_capacity=905,
            pod_autoscaler_class="some.class",
            scale_to_zero_pod_retention_period_s=123,
        ),
    ),
    "minimum": (
        {
            "max-scale-up-rate": "1.001",
            "container-concurrency-target-percentage": "0.5",
            "container-concurrency-target-default": "10.0",
            "target-burst-capacity": "0",
            "stable-window": "5m",
            "tick-interval": "2s",
            "panic-window-percentage": "10",
            "panic-threshold-percentage": "200",
            "activator-capacity": "1",
        },
        replace(
            DEFAULT,
            container_concurrency_target_fraction=0.5,
            container_concurrency_target_default=10,
            max_scale_up_rate=1.001,
            target_burst_capacity=0,
            stable_window_s=300,
            activator_capacity=1,
        ),
    ),
    "concurrency target percentage as percent": (
        {"container-concurrency-target-percentage": "55"},
        replace(DEFAULT, container_concurrency_target_fraction=0.55),
    ),
    "with -1 tbc": ({"target-burst-capacity": "-1"}, replace(DEFAULT, target_burst_capacity=-1)),
    "with toggles on strange casing": ({"enable-scale-to-zero": "TRUE"}, DEFAULT),
    "with toggles explicitly flipped": (
        {"enable-scale-to-zero": "false", "min-scale": "1", "max-scale": "2"},
        replace(DEFAULT, enable_scale_to_zero=False, min_scale=1, max_scale=2),
    ),
    "with explicit grace period": (
        {
            "enable-scale-to-zero": "false",
            "scale-to-zero-grace-period": "33s",
            "min-scale": "1",
            "max-scale": "2",
        },
        replace(
            DEFAULT,
            enable_scale_to_zero=False,
            scale_to_zero_grace_period_s=33,
            min_scale=1,
            max_scale=2,
        ),
    ),
    "malformed float": ({"max-scale-up-rate": "not a float"}, None),
    "invalid scale-down-delay": ({"scale-down-delay": "-1m23s"}, None),
    "invalid pod retention period": ({"scale-to-zero-pod-retention-period": "-4m11s"}, None),
    "malformed duration": ({"stable-window": "not a duration"}, None),
    "invalid target burst capacity": ({"target-burst-capacity": "-11"}, None),
    "invalid target %, too small": ({"container-concurrency-target-percentage": "-42"}, None),
    "invalid target %, too big": ({"container-concurrency-target-percentage": "142.4"}, None),
    "invalid RPS target, too small": ({"requests-per-second-target-default": "-5.25"}, None),
    "max scale up rate 1.0": ({"max-scale-up-rate": "1"}, None),
    "max down down rate negative": ({"max-scale-down-rate": "-55"}, None),
    "max down down rate 1.0": ({"max-scale-down-rate": "1"}, None),
    "stable window too big": ({"stable-window": "1h1s"}, None),
    "stable window too small": ({"stable-window": "1s"}, None),
    "stable not seconds": ({"stable-window": "61984ms"}, None),
    "scale-down-delay not seconds": ({"scale-down-delay": "61984ms"}, None),
    "activator-capacity invalid": ({"activator-capacity": "0.95"}, None),
    "panic window percentage too small": ({"panic-window-percentage": "0.1"}, None),
    "panic window percentage too big": (
        {"stable-window": "12s", "panic-window": "3s", "panic-window-percentage": "110"},
        None,
    ),
    "TU*CC < 0.01": (
        {
            "container-concurrency-target-percentage": "1",
            "container-concurrency-target-default": "0.001",
        },
        None,
    ),
    "grace window too small": (
        {"stable-window": "12s", "scale-to-zero-grace-period": "0s"},
        None,
    ),
    "with prohibited default initial scale": (
        {"allow-zero-initial-scale": "false", "initial-scale": "0"},
        None,
    ),
    "with negative default initial scale": (
        {"allow-zero-initial-scale": "false", "initial-scale": "-1"},
        None,
    ),
    "with non-parseable default initial scale": (
        {"allow-zero-initial-scale": "false", "initial-scale": "invalid"},
        None,
    ),
    "with valid default initial scale": (
        {"allow-zero-initial-scale": "true", "initial-scale": "0"},
        replace(DEFAULT, allow_zero_initial_scale=True, initial_scale=0),
    ),
    "with non-parseable allow-zero-initial-scale": ({"allow-zero-initial-scale": "invalid"}, None),
    "with negative default max scale": ({"max-scale": "-1"}, None),
    "with valid default max scale": ({"max-scale": "10"}, replace(DEFAULT, max_scale=10)),
    "max scale exceeding max scale limit": ({"max-scale": "10", "max-scale-limit": "9"}, None),
    "with negative max scale limit": ({"max-scale-limit": "-9"}, None),
    "with max scale limit and zero default max scale": (
        {"max-scale": "0", "max-scale-limit": "11"},
        None,
    ),
    "with max scale less than min-scale": ({"min-scale": "4", "max-scale": "3"}, None),
    "with min scale set but max-scale not set": ({"min-scale": "4"}, replace(DEFAULT, min_scale=4)),
    "with valid default max scale and max scale limit": (
        {"max-scale": "10", "max-scale-limit": "11"},
        replace(DEFAULT, max_scale=10, max_scale_limit=11),
    ),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_TestNewConfig(name: str) -> None:
    data, want = CONFIG_CASES[name]
    if want is None:
        with pytest.raises(SettingsError):
            autoscaler_config(data)
    else:
        assert autoscaler_config(data) == want


def test_config_errors_name_the_key() -> None:
    with pytest.raises(SettingsError, match="stable-window"):
        autoscaler_config({"stable-window": "61984ms"})
    with pytest.raises(SettingsError, match="max-scale-up-rate"):
        autoscaler_config({"max-scale-up-rate": "1_000"})


# --- TestValidateAnnotations --------------------------------------------------------

# name -> (annotations, config changes, keys the error must name; empty: valid)
VALIDATION_CASES: dict[str, tuple[dict[str, str], dict[str, object], tuple[str, ...]]] = {
    "nil annotations": ({}, {}, ()),
    "empty annotations": ({}, {}, ()),
    "invalid class": ({CLASS: "unsupported.knative.dev"}, {}, (CLASS,)),
    "non-knative.dev domain class": ({CLASS: "some.other.domain"}, {}, (CLASS,)),
    "minScale is 0": ({MIN: "0"}, {}, ()),
    "maxScale is 0": ({MAX: "0"}, {}, ()),
    "minScale is -1": ({MIN: "-1"}, {}, (MIN,)),
    "maxScale is huuuuuuuge": ({MAX: "2147483648"}, {}, (MAX,)),
    "maxScale is -1": ({MAX: "-1"}, {}, (MAX,)),
    "minScale is foo": ({MIN: "foo"}, {}, (MIN,)),
    "maxScale is bar": ({MAX: "bar"}, {}, (MAX,)),
    "max/minScale is bar": ({MAX: "bar", MIN: "bar"}, {}, (MAX, MIN)),
    "minScale is 5": ({MIN: "5"}, {}, ()),
    "maxScale is 2": ({MAX: "2"}, {}, ()),
    "minScale is 2, maxScale is 5": ({MIN: "2", MAX: "5"}, {}, ()),
    "minScale is 5, maxScale is 2": ({MIN: "5", MAX: "2"}, {}, (MAX,)),
    "minScale is 0, maxScale is 0": ({MIN: "0", MAX: "0"}, {}, ()),
    "maxScale is greater than MaxScaleLimit when in create": (
        {MAX: "11"},
        {"max_scale_limit": 10},
        (MAX,),
    ),
    "maxScale is greater than MaxScaleLimit when in create and default MaxScale is set": (
        {MAX: "20"},
        {"max_scale_limit": 10, "max_scale": 11},
        (MAX,),
    ),
    "maxScale is explicitly set to 0 when MaxScaleLimit and default MaxScale are set": (
        {MAX: "0"},
        {"max_scale_limit": 10, "max_scale": 1},
        (MAX,),
    ),
    "maxScale is not set when both MaxScaleLimit and default MaxScale are set": (
        {},
        {"max_scale_limit": 10, "max_scale": 11},
        (),
    ),
    "maxScale is less than MaxScaleLimit": ({MAX: "9"}, {"max_scale_limit": 10}, ()),
    "min-scale, activation-scale, max-scale all set appropriately": (
        {MIN: "1", ACTIVATION: "2", MAX: "3"},
        {},
        (),
    ),
    "min-scale is greater than activation-scale": ({MIN: "3", ACTIVATION: "2"}, {}, (ACTIVATION,)),
    "max-scale is less than activation-scale": ({MAX: "1", ACTIVATION: "2"}, {}, (ACTIVATION,)),
    "valid algorithm on KPA": ({ALGORITHM: "linear", CLASS: KPA_CLASS}, {}, ()),
    "empty algorithm": ({ALGORITHM: "", CLASS: KPA_CLASS}, {}, ()),
    "random algorithm on KPA": (
        {ALGORITHM: "random-selection", CLASS: KPA_CLASS},
        {},
        (ALGORITHM,),
    ),
    "random algorithm on non KPA": (
        {ALGORITHM: "random-selection", CLASS: "of-keys"},
        {},
        (CLASS,),
    ),
    "panic window percentage bad": ({PANIC_WINDOW: "-1"}, {}, (PANIC_WINDOW,)),
    "panic window percentage bad2": ({PANIC_WINDOW: "202"}, {}, (PANIC_WINDOW,)),
    "panic window percentage bad3": ({PANIC_WINDOW: "fifty"}, {}, (PANIC_WINDOW,)),
    "panic window percentage good": ({PANIC_THRESHOLD: "210"}, {}, ()),
    "panic threshold percentage bad2": ({PANIC_THRESHOLD: "109"}, {}, (PANIC_THRESHOLD,)),
    "panic threshold percentage bad2.5": ({PANIC_THRESHOLD: "10009"}, {}, (PANIC_THRESHOLD,)),
    "panic threshold percentage bad3": ({PANIC_THRESHOLD: "fifty"}, {}, (PANIC_THRESHOLD,)),
    "target negative": ({TARGET: "-11"}, {}, (TARGET,)),
    "target 0": ({TARGET: "0"}, {}, (TARGET,)),
    "invalid target": ({TARGET: "100}"}, {}, (TARGET,)),
    "target okay": ({TARGET: "11"}, {}, ()),
    "TBC negative": ({TBC: "-11"}, {}, (TBC,)),
    "TBC 0": ({TBC: "0"}, {}, ()),
    "TBC 19880709": ({TBC: "19870709"}, {}, ()),
    "TBC -1": ({TBC: "-1"}, {}, ()),
    "TBC invalid": ({TBC: "qarashen"}, {}, (TBC,)),
    "TU too small": ({TU: "0"}, {}, (TU,)),
    "TU too big": ({TU: "101"}, {}, (TU,)),
    "TU invalid": ({TU: "dghyak"}, {}, (TU,)),
    "window invalid": ({WINDOW: "jerry-was-a-racecar-driver"}, {}, (WINDOW,)),
    "window too short": ({WINDOW: "1s"}, {}, (WINDOW,)),
    "window too long": ({WINDOW: "365h"}, {}, (WINDOW,)),
    "window too precise": ({WINDOW: "1m9s82ms"}, {}, (WINDOW,)),
    "annotation /window is valid for class KPA": ({WINDOW: "7s", CLASS: KPA_CLASS}, {}, ()),
    "annotation /window is valid for other than HPA and KPA class": (
        {WINDOW: "7s", CLASS: "test"},
        {},
        (CLASS,),
    ),
    "value too long and valid class for /window annotation": (
        {WINDOW: "365h", CLASS: KPA_CLASS},
        {},
        (WINDOW,),
    ),
    "invalid format and valid class for /window annotation": (
        {WINDOW: "jerry-was-a-racecar-driver", CLASS: KPA_CLASS},
        {},
        (WINDOW,),
    ),
    "valid 0 last pod scaledown timeout": ({RETENTION: "0"}, {}, ()),
    "valid positive last pod scaledown timeout": ({RETENTION: "21m31s"}, {}, ()),
    "invalid positive last pod scaledown timeout": ({RETENTION: "311m"}, {}, (RETENTION,)),
    "invalid negative last pod scaledown timeout": ({RETENTION: "-42s"}, {}, (RETENTION,)),
    "invalid last pod scaledown timeout": (
        {RETENTION: "twenty-two-minutes-and-five-seconds"},
        {},
        (RETENTION,),
    ),
    "valid 0 scale down delay": ({DELAY: "0"}, {}, ()),
    "valid positive scale down delay": ({DELAY: "21m31s"}, {}, ()),
    "invalid positive scale down delay": ({DELAY: "311m"}, {}, (DELAY,)),
    "invalid positive scale down delay - too precise": ({DELAY: "42.5s"}, {}, (DELAY,)),
    "invalid negative scale down delay": ({DELAY: "-42s"}, {}, (DELAY,)),
    "invalid scale down delay": ({DELAY: "twenty-two-minutes-and-five-seconds"}, {}, (DELAY,)),
    "all together now fail": (
        {PANIC_THRESHOLD: "fifty", PANIC_WINDOW: "-11", MIN: "-4", MAX: "never"},
        {},
        (MIN, PANIC_WINDOW, PANIC_THRESHOLD, MAX),
    ),
    "all together now, succeed": (
        {PANIC_THRESHOLD: "125", PANIC_WINDOW: "75", MIN: "5", MAX: "8", WINDOW: "1984s"},
        {},
        (),
    ),
    "invalid metric for default class(KPA)": ({METRIC: "cpu"}, {}, (METRIC,)),
    "invalid metric for HPA class": ({METRIC: "", CLASS: HPA_CLASS}, {}, (CLASS, METRIC)),
    "valid class KPA with metric RPS": ({METRIC: "rps"}, {}, ()),
    "valid class KPA with metric Concurrency": ({METRIC: "concurrency"}, {}, ()),
    "valid class HPA with metric CPU": ({CLASS: HPA_CLASS, METRIC: "cpu"}, {}, (CLASS,)),
    "other than HPA and KPA class": ({CLASS: "other", METRIC: "rps"}, {}, (CLASS,)),
    "initial scale is zero but cluster doesn't allow": ({INITIAL: "0"}, {}, (INITIAL,)),
    "valid global class HPA with metric CPU": (
        {METRIC: "cpu"},
        {"pod_autoscaler_class": HPA_CLASS},
        ("pod-autoscaler-class",),
    ),
    "initial scale is zero and cluster allows": (
        {INITIAL: "0"},
        {"allow_zero_initial_scale": True},
        (),
    ),
    "initial scale is greater than 0": ({INITIAL: "2"}, {}, ()),
    "initial scale is less than 0": ({INITIAL: "-1"}, {}, (INITIAL,)),
    "initial scale non-parseable": ({INITIAL: "invalid"}, {}, (INITIAL,)),
}


@pytest.mark.parametrize("name", list(VALIDATION_CASES))
def test_TestValidateAnnotations(name: str) -> None:
    annotations, changes, keys = VALIDATION_CASES[name]
    # Upstream's defaultConfig: only these three fields set.
    base = {
        "allow_zero_initial_scale": False,
        "max_scale_limit": 0,
        "pod_autoscaler_class": KPA_CLASS,
    }
    config = replace(AutoscalerConfig(), **{**base, **changes})  # type: ignore[arg-type]
    _, problems = read_annotations(annotations, config)
    if not keys:
        assert problems == []
        return
    text = "\n".join(problems)
    for key in keys:
        assert key in text, (key, problems)
    with pytest.raises(SettingsError):
        scaling_settings(annotations, config)


def test_older_spellings_are_read() -> None:
    got = scaling_settings({G + "minScale": "2", G + "maxScale": "5", G + "initialScale": "3"})
    assert (got.min_scale, got.max_scale, got.initial_scale) == (2, 5, 3)
    # The current spelling wins over the older one.
    got = scaling_settings({MIN: "1", G + "minScale": "4"})
    assert got.min_scale == 1


# --- TestResolveMetricTarget --------------------------------------------------------

TARGET_CONFIG = AutoscalerConfig(
    enable_scale_to_zero=True,
    container_concurrency_target_fraction=1.0,
    container_concurrency_target_default=100.0,
    rps_target_default=200.0,
    target_utilization=0.7,
    max_scale_up_rate=10.0,
    stable_window_s=60,
    panic_threshold_percentage=200,
    panic_window_percentage=10,
    scale_to_zero_grace_period_s=30,
)

# name -> (annotations, containerConcurrency, config changes, target, total)
TARGET_CASES: dict[str, tuple[dict[str, str], int, dict[str, float], float, float]] = {
    "defaults": ({}, 0, {}, 100, 100),
    "default CC + 80% TU": ({}, 0, {"container_concurrency_target_fraction": 0.8}, 80, 100),
    "non-default CC and TU": (
        {},
        0,
        {"container_concurrency_target_fraction": 0.3, "container_concurrency_target_default": 2},
        0.6,
        2,
    ),
    "with container concurrency 12 and TU=80%, but TU annotation 75%": (
        {TU: "75"},
        12,
        {"container_concurrency_target_fraction": 0.8},
        9,
        12,
    ),
    "with container concurrency 10 and TU=80%": (
        {},
        10,
        {"container_concurrency_target_fraction": 0.8},
        8,
        10,
    ),
    "with container concurrency 1 and TU=80%": (
        {},
        1,
        {"container_concurrency_target_fraction": 0.8},
        0.8,
        1,
    ),
    "with container concurrency 1": ({}, 1, {}, 1, 1),
    "with container concurrency 10": ({}, 10, {}, 10, 10),
    "with target annotation 1": ({TARGET: "1"}, 0, {}, 1, 1),
    "with target annotation 1 and TU=0.1%": (
        {TARGET: "1"},
        0,
        {"container_concurrency_target_fraction": 0.001},
        0.01,
        1,
    ),
    "with target annotation 1 and TU=75%": (
        {TARGET: "1"},
        0,
        {"container_concurrency_target_fraction": 0.75},
        0.75,
        1,
    ),
    "with target annotation 10 and TU=75%": (
        {TARGET: "10"},
        0,
        {"container_concurrency_target_fraction": 0.75},
        7.5,
        10,
    ),
    "with container concurrency greater than target annotation (ok)": (
        {TARGET: "1"},
        10,
        {},
        1,
        1,
    ),
    "with target annotation greater than default (ok)": ({TARGET: "500"}, 0, {}, 500, 500),
    "with target annotation greater than container concurrency (ignore annotation for safety)": (
        {TARGET: "10"},
        1,
        {},
        1,
        1,
    ),
    "RPS: defaults": ({METRIC: "rps"}, 1, {}, 140, 200),
    "RPS: with target annotation 1": ({METRIC: "rps", TARGET: "1"}, 0, {}, 0.7, 1),
    "RPS: with TU annotation 75%": ({METRIC: "rps", TU: "75"}, 0, {}, 150, 200),
    "RPS: with target annotation greater than default": (
        {METRIC: "rps", TARGET: "300"},
        0,
        {},
        210,
        300,
    ),
}


@pytest.mark.parametrize("name", list(TARGET_CASES))
def test_TestResolveMetricTarget(name: str) -> None:
    annotations, cc, changes, target, total = TARGET_CASES[name]
    config = replace(TARGET_CONFIG, **changes)  # type: ignore[arg-type]
    got = scaling_settings({CLASS: KPA_CLASS, **annotations}, config, container_concurrency=cc)
    assert (got.target, got.total) == (target, total)


# --- TestMakeMetric, TestStableWindow -----------------------------------------------

WINDOW_CASES: dict[str, tuple[dict[str, str], float, float]] = {
    "defaults": ({}, 60, 6),
    "with too short panic window": ({WINDOW: "10s", PANIC_WINDOW: "10"}, 10, 1),
    "with longer stable window, no panic window percentage, defaults to 10%": (
        {WINDOW: "10m"},
        600,
        60,
    ),
    "with longer panic window percentage": ({PANIC_WINDOW: "50"}, 60, 30),
    "with panic window percentage+rounding": ({PANIC_WINDOW: "51"}, 60, 31),
}


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_TestMakeMetric(name: str) -> None:
    annotations, stable, panic = WINDOW_CASES[name]
    got = scaling_settings({CLASS: KPA_CLASS, **annotations}, TARGET_CONFIG)
    assert (got.stable_window_s, got.panic_window_s) == (stable, panic)


def test_TestStableWindow() -> None:
    assert scaling_settings({}, TARGET_CONFIG).stable_window_s == 60
    assert scaling_settings({WINDOW: "251s"}, TARGET_CONFIG).stable_window_s == 251


# --- TestMakeDecider, TestGetInitialScale -------------------------------------------

DECIDER_CONFIG = AutoscalerConfig(
    enable_scale_to_zero=True,
    container_concurrency_target_fraction=1.0,
    container_concurrency_target_default=100.0,
    target_burst_capacity=211.0,
    max_scale_up_rate=10.0,
    max_scale_down_rate=0.0,  # unset upstream
    rps_target_default=100,
    activator_capacity=811,
    target_utilization=1.0,
    stable_window_s=60,
    panic_threshold_percentage=200,
    panic_window_percentage=10,
    scale_to_zero_grace_period_s=30,
    initial_scale=1,
    allow_zero_initial_scale=False,
)
DECIDER = ScalingSettings(
    metric="concurrency",
    target=100,
    total=100,
    target_burst_capacity=211,
    activator_capacity=811,
    panic_threshold=2.0,
    stable_window_s=60,
    panic_window_s=6,
    max_scale_up_rate=10,
    max_scale_down_rate=0,
    initial_scale=1,
    reachable=True,
    scale_to_zero_grace_period_s=30,
)

# name -> (annotations, containerConcurrency, reachable, config changes, settings changes)
DECIDER_CASES: dict[str, tuple[dict[str, str], int, bool, dict[str, object], dict[str, object]]] = {
    "defaults": ({}, 0, True, {}, {}),
    "unreachable": ({}, 0, False, {}, {"reachable": False}),
    "explicit reachable": ({}, 0, True, {}, {}),
    "tu < 1": ({}, 0, True, {"container_concurrency_target_fraction": 0.8}, {"target": 80}),
    "scale up and scale down rates": (
        {},
        0,
        True,
        {"max_scale_up_rate": 19.84, "max_scale_down_rate": 19.88},
        {"max_scale_up_rate": 19.84, "max_scale_down_rate": 19.88},
    ),
    "with container concurrency 1": ({}, 1, True, {}, {"target": 1, "total": 1}),
    "with target annotation 1": ({TARGET: "1"}, 0, True, {}, {"target": 1, "total": 1}),
    "with container concurrency and tu < 1": (
        {},
        100,
        True,
        {"container_concurrency_target_fraction": 0.8},
        {"target": 80},
    ),
    "with burst capacity set": (
        {},
        120,
        True,
        {"target_burst_capacity": 63, "container_concurrency_target_fraction": 0.8},
        {"target": 96, "total": 120, "target_burst_capacity": 63},
    ),
    "with activator capacity override": (
        {},
        0,
        True,
        {"activator_capacity": 420},
        {"activator_capacity": 420},
    ),
    "with burst capacity set on the annotation": (
        {TBC: "211"},
        120,
        True,
        {"target_burst_capacity": 63, "container_concurrency_target_fraction": 0.8},
        {"target": 96, "total": 120, "target_burst_capacity": 211},
    ),
    "with container concurrency greater than target annotation (ok)": (
        {TARGET: "1"},
        10,
        True,
        {},
        {"target": 1, "total": 1},
    ),
    "with target annotation greater than container concurrency (ignore annotation for safety)": (
        {TARGET: "10"},
        1,
        True,
        {},
        {"target": 1, "total": 1},
    ),
    "with higher panic target": (
        {TARGET: "10", PANIC_THRESHOLD: "400"},
        0,
        True,
        {},
        {"target": 10, "total": 10, "panic_threshold": 4.0},
    ),
    "with metric annotation": ({METRIC: "rps"}, 0, True, {}, {"metric": "rps"}),
    "with scale down delay from config": (
        {},
        0,
        True,
        {"scale_down_delay_s": 300},
        {"scale_down_delay_s": 300},
    ),
    "with scale down delay from annotation": (
        {DELAY: "10m"},
        0,
        True,
        {"scale_down_delay_s": 300},
        {"scale_down_delay_s": 600},
    ),
    "with initial scale": ({INITIAL: "2"}, 0, True, {}, {"initial_scale": 2}),
    "with activation-scale": ({ACTIVATION: "3"}, 0, True, {}, {"activation_scale": 3}),
}


@pytest.mark.parametrize("name", list(DECIDER_CASES))
def test_TestMakeDecider(name: str) -> None:
    annotations, cc, reachable, config_changes, want_changes = DECIDER_CASES[name]
    config = replace(DECIDER_CONFIG, **config_changes)  # type: ignore[arg-type]
    got = scaling_settings(
        {CLASS: KPA_CLASS, METRIC: "concurrency", **annotations},
        config,
        container_concurrency=cc,
        reachable=reachable,
    )
    assert got == replace(DECIDER, **want_changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("annotations", "allow_zero", "want"),
    [
        ({}, False, 1),
        ({INITIAL: "2"}, False, 2),
        ({INITIAL: "0"}, True, 0),
        ({INITIAL: "0"}, False, 1),
    ],
    ids=[
        "revision initial scale not set",
        "revision initial scale overrides cluster initial scale",
        "cluster allows initial scale zero",
        "cluster does not allows initial scale zero",
    ],
)
def test_TestGetInitialScale(annotations: dict[str, str], allow_zero: bool, want: int) -> None:
    config = replace(autoscaler_config({}), allow_zero_initial_scale=allow_zero)
    assert initial_scale(annotations, config) == want


# --- Ami's own: the whole value -------------------------------------------------------


def test_defaults_resolve_to_the_default_settings() -> None:
    assert scaling_settings({}, {}) == ScalingSettings()


def test_from_strings() -> None:
    got = scaling_settings(
        {
            METRIC: "rps",
            TARGET: "50",
            WINDOW: "2m",
            ALGORITHM: "weightedExponential",
            RETENTION: "1m30s",
            "serving.knative.dev/progress-deadline": "90s",
        },
        {"stable-window": "90s", "scale-to-zero-grace-period": "45s", "enable-scale-to-zero": "f"},
    )
    assert got.metric == "rps"
    assert (got.target, got.total) == (35.0, 50.0)
    assert (got.stable_window_s, got.panic_window_s) == (120.0, 12.0)
    assert got.aggregation == "weighted-exponential"
    assert got.scale_to_zero_pod_retention_s == 90.0
    assert got.progress_deadline_s == 90.0
    assert got.scale_to_zero_grace_period_s == 45.0
    assert got.enable_scale_to_zero is False


def test_unreachable_has_no_floor_and_no_retention() -> None:
    got = scaling_settings({MIN: "3", RETENTION: "5m"}, reachable=False)
    assert (got.min_scale, got.scale_to_zero_pod_retention_s, got.reachable) == (0, 0.0, False)


def test_every_bad_annotation_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        scaling_settings({MIN: "x", WINDOW: "1s", TBC: "-3"})
    assert len(caught.value.problems) == 3


def test_negative_container_concurrency() -> None:
    with pytest.raises(SettingsError, match="containerConcurrency"):
        scaling_settings({}, container_concurrency=-1)


def test_numbers_must_be_finite() -> None:
    # Knative takes these (NaN passes every range check); the decider cannot use them.
    for key, value in ((TBC, "NaN"), (TARGET, "Inf"), (TBC, "+Inf"), (PANIC_WINDOW, "nan")):
        with pytest.raises(SettingsError, match=key):
            scaling_settings({key: value})


def test_algorithm_is_checked_only_when_the_class_annotation_is_the_kpa() -> None:
    # As Knative: without the class annotation anything goes, and reads as linear.
    assert scaling_settings({ALGORITHM: "random-selection"}).aggregation == "linear"
    with pytest.raises(SettingsError, match=ALGORITHM):
        scaling_settings({ALGORITHM: "random-selection", CLASS: KPA_CLASS})


def test_progress_deadline() -> None:
    deadline = "serving.knative.dev/progress-deadline"
    assert scaling_settings({deadline: "2m"}).progress_deadline_s == 120
    # Knative skips an empty one, and its autoscaler reads it as absent.
    assert scaling_settings({deadline: ""}, progress_deadline_s=90).progress_deadline_s == 90
    for bad in ("1.5s", "-5s", "soon"):
        with pytest.raises(SettingsError, match=deadline):
            scaling_settings({deadline: bad})
