"""A revision's `autoscaling.knative.dev/*` annotations: their keys, lookup and
checks (pure).

The checks are Knative's (`pkg/apis/autoscaling/annotation_validation.go` and, for
the progress deadline, `pkg/apis/serving/v1/revision_validation.go`), every problem
reported at once with the annotation's key. Where Ami is stricter: it has only the
KPA, so any other class (the `class` annotation or `pod-autoscaler-class`) is an
error rather than a revision nobody scales; and `metric-aggregation-algorithm` is
checked whatever the class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from amimesh.serving.kpa import goparse
from amimesh.serving.kpa.autoscaler_config import (
    KPA_CLASS,
    PANIC_THRESHOLD_PERCENTAGE_MAX,
    PANIC_THRESHOLD_PERCENTAGE_MIN,
    PANIC_WINDOW_PERCENTAGE_MAX,
    PANIC_WINDOW_PERCENTAGE_MIN,
    TARGET_MIN,
    WINDOW_MAX_S,
    WINDOW_MIN_S,
    AutoscalerConfig,
)

_G = "autoscaling.knative.dev/"
# Each setting's annotation keys, the current spelling first (Knative's KeyPriority).
CLASS = (_G + "class",)
METRIC = (_G + "metric",)
TARGET = (_G + "target",)
TARGET_UTILIZATION = (_G + "target-utilization-percentage", _G + "targetUtilizationPercentage")
TARGET_BURST_CAPACITY = (_G + "target-burst-capacity", _G + "targetBurstCapacity")
MIN_SCALE = (_G + "min-scale", _G + "minScale")
MAX_SCALE = (_G + "max-scale", _G + "maxScale")
INITIAL_SCALE = (_G + "initial-scale", _G + "initialScale")
ACTIVATION_SCALE = (_G + "activation-scale",)
WINDOW = (_G + "window",)
PANIC_WINDOW_PERCENTAGE = (_G + "panic-window-percentage", _G + "panicWindowPercentage")
PANIC_THRESHOLD_PERCENTAGE = (
    _G + "panic-threshold-percentage",
    _G + "panicThresholdPercentage",
)
SCALE_DOWN_DELAY = (_G + "scale-down-delay", _G + "scaleDownDelay")
SCALE_TO_ZERO_POD_RETENTION = (
    _G + "scale-to-zero-pod-retention-period",
    _G + "scaleToZeroPodRetentionPeriod",
)
AGGREGATION = (_G + "metric-aggregation-algorithm", _G + "metricAggregationAlgorithm")
PROGRESS_DEADLINE = ("serving.knative.dev/progress-deadline",)

_INT32_MAX = (1 << 31) - 1
_WINDOW_MAX_NS = int(WINDOW_MAX_S) * goparse.SECOND


class Annotations:
    """Lookups by a setting's keys, current spelling first (Knative's KeyPriority).
    Values are read as checked by `validate`: a value that does not parse raises."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw

    def get(self, keys: tuple[str, ...]) -> tuple[str, str] | None:
        """(the key found, its value), or None."""
        for key in keys:
            if key in self.raw:
                return key, self.raw[key]
        return None

    def text(self, keys: tuple[str, ...]) -> str | None:
        found = self.get(keys)
        return found[1] if found else None

    def number(self, keys: tuple[str, ...], default: float) -> float:
        found = self.get(keys)
        return goparse.parse_float(found[1]) if found else default

    def integer(self, keys: tuple[str, ...], default: int) -> int:
        found = self.get(keys)
        return goparse.parse_int(found[1], 32) if found else default

    def duration(self, keys: tuple[str, ...], default_ns: int) -> int:
        found = self.get(keys)
        return goparse.parse_duration(found[1]) if found else default_ns


def validate(annotations: Mapping[str, str], config: AutoscalerConfig) -> list[str]:
    """Every problem with a revision's autoscaling annotations, as `key: why`."""
    a = Annotations(annotations)
    problems: list[str] = []
    found_class = a.get(CLASS)
    cls = found_class[1] if found_class else config.pod_autoscaler_class
    if cls != KPA_CLASS:
        key = found_class[0] if found_class else "config-autoscaler pod-autoscaler-class"
        problems.append(f"{key}: class {cls!r} is not supported; Ami scales with {KPA_CLASS}")
    min_scale = _int_at_least_zero(a, MIN_SCALE, problems)
    max_scale = _int_at_least_zero(a, MAX_SCALE, problems)
    if max_scale and max_scale < min_scale:
        problems.append(
            f"{MAX_SCALE[0]}, {MIN_SCALE[0]}: max-scale={max_scale} is less than "
            f"min-scale={min_scale}"
        )
    found = a.get(MAX_SCALE)
    if found is not None and config.max_scale_limit > 0:
        if max_scale > config.max_scale_limit:
            problems.append(
                f"{found[0]}: {max_scale} is outside [1, {config.max_scale_limit}] "
                "(max-scale-limit)"
            )
        if max_scale == 0:
            problems.append(
                f"{found[0]}: 0 (unlimited) is not allowed, the cluster's max-scale-limit "
                f"is {config.max_scale_limit}"
            )
    _check_activation_scale(a, min_scale, max_scale, problems)
    _check_number(
        a,
        PANIC_WINDOW_PERCENTAGE,
        problems,
        PANIC_WINDOW_PERCENTAGE_MIN,
        PANIC_WINDOW_PERCENTAGE_MAX,
    )
    _check_number(
        a,
        PANIC_THRESHOLD_PERCENTAGE,
        problems,
        PANIC_THRESHOLD_PERCENTAGE_MIN,
        PANIC_THRESHOLD_PERCENTAGE_MAX,
    )
    _check_number(a, TARGET, problems, TARGET_MIN, math.inf)
    _check_number(a, TARGET_UTILIZATION, problems, 1.0, 100.0)
    found = a.get(TARGET_BURST_CAPACITY)
    if found is not None:
        try:
            tbc = goparse.parse_float(found[1])
        except ValueError:
            tbc = -2.0
        if tbc < 0 and tbc != -1:
            problems.append(f"{found[0]}: {found[1]!r} must be a number >= 0, or -1")
    _check_duration(
        a, WINDOW, problems, int(WINDOW_MIN_S) * goparse.SECOND, _WINDOW_MAX_NS, whole=True
    )
    _check_duration(a, SCALE_TO_ZERO_POD_RETENTION, problems, 0, _WINDOW_MAX_NS, whole=False)
    _check_duration(a, SCALE_DOWN_DELAY, problems, 0, _WINDOW_MAX_NS, whole=True)
    _check_duration(a, PROGRESS_DEADLINE, problems, 0, 1 << 63, whole=True)
    found = a.get(METRIC)
    if found is not None and found[1] not in ("concurrency", "rps"):
        problems.append(f"{found[0]}: {found[1]!r} is not a KPA metric (concurrency, rps)")
    found = a.get(AGGREGATION)
    if found is not None and found[1] not in (
        "",
        "linear",
        "weighted-exponential",
        "weightedExponential",
    ):
        problems.append(
            f"{found[0]}: {found[1]!r} is not linear, weighted-exponential or weightedExponential"
        )
    found = a.get(INITIAL_SCALE)
    if found is not None:
        try:
            value = goparse.parse_int(found[1], 64)
        except ValueError:
            problems.append(f"{found[0]}: {found[1]!r} is not an integer")
        else:
            if value < 0:
                problems.append(f"{found[0]}: must be at least 0, was {value}")
            elif value == 0 and not config.allow_zero_initial_scale:
                problems.append(
                    f"{found[0]}: 0 is not allowed by the cluster (allow-zero-initial-scale)"
                )
    return problems


def _int_at_least_zero(a: Annotations, keys: tuple[str, ...], problems: list[str]) -> int:
    found = a.get(keys)
    if found is None:
        return 0
    try:
        value = goparse.parse_int(found[1], 64)
    except ValueError:
        problems.append(f"{found[0]}: {found[1]!r} is not an integer")
        return 0
    if not 0 <= value <= _INT32_MAX:
        problems.append(f"{found[0]}: {value} is outside [0, {_INT32_MAX}]")
        return 0
    return value


def _check_activation_scale(
    a: Annotations, min_scale: int, max_scale: int, problems: list[str]
) -> None:
    found = a.get(ACTIVATION_SCALE)
    if found is None:
        return
    key, text = found
    try:
        value = goparse.parse_int(text, 32)
    except ValueError:
        problems.append(f"{key}: {text!r} is not an integer")
        return
    if min_scale > value:
        problems.append(f"{key}: min-scale={min_scale} is greater than activation-scale={value}")
    elif max_scale and max_scale < value:
        problems.append(f"{key}: max-scale={max_scale} is less than activation-scale={value}")
    elif value < 2:
        problems.append(f"{key}: activation-scale={value} must be greater than 1")


def _check_number(
    a: Annotations, keys: tuple[str, ...], problems: list[str], low: float, high: float
) -> None:
    found = a.get(keys)
    if found is None:
        return
    key, text = found
    try:
        value = goparse.parse_float(text)
    except ValueError:
        problems.append(f"{key}: {text!r} is not a number")
        return
    if not low <= value <= high:
        bound = f"at least {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        problems.append(f"{key}: {text} must be {bound}")


def _check_duration(
    a: Annotations,
    keys: tuple[str, ...],
    problems: list[str],
    low: int,
    high: int,
    *,
    whole: bool,
) -> None:
    found = a.get(keys)
    if found is None:
        return
    key, text = found
    try:
        ns = goparse.parse_duration(text)
    except ValueError:
        problems.append(f"{key}: {text!r} is not a duration (such as 90s or 1m30s)")
        return
    if not low <= ns <= high:
        fmt = goparse.format_duration
        upper = "" if high >= 1 << 62 else f", at most {fmt(high)}"
        problems.append(f"{key}: {text} must be at least {fmt(low)}{upper}")
    elif whole and ns % goparse.SECOND:
        problems.append(f"{key}: {text} must be whole seconds")
