"""Knative's `autoscaling.knative.dev/*` annotations as a typed value, with Knative's
rules (knative/serving `pkg/apis/autoscaling/annotation_validation.go`). Pure.

    settings, problems = read_autoscaling(template.metadata.annotations)

`problems` are (annotation key, message). A setting left out is None: the cluster's
default applies (Knative's config-autoscaler), which the autoscaler decides, not this
module. Values are read as Knative reads them: integers and floats as Go parses them,
durations as Go's `time.ParseDuration` (`"60s"`, `"1m30s"`, `"1.5h"`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from amimesh.resources.fields import show

GROUP = "autoscaling.knative.dev"
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
KPA_METRICS = ("concurrency", "rps")
ALGORITHMS = ("linear", "weighted-exponential", "weightedExponential")
WINDOW_MIN_S = 6
WINDOW_MAX_S = 3600
TARGET_MIN = 0.01
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_NS = 1_000_000_000

# Each setting's keys, the current spelling first and then the older camelCase one
# Knative still reads; the first present wins, as in Knative's `kmap.KeyPriority`.
KEYS: dict[str, tuple[str, ...]] = {
    "class": ("class",),
    "metric": ("metric",),
    "target": ("target",),
    "target_utilization_percentage": (
        "target-utilization-percentage",
        "targetUtilizationPercentage",
    ),
    "target_burst_capacity": ("target-burst-capacity", "targetBurstCapacity"),
    "min_scale": ("min-scale", "minScale"),
    "max_scale": ("max-scale", "maxScale"),
    "initial_scale": ("initial-scale", "initialScale"),
    "activation_scale": ("activation-scale",),
    "window": ("window",),
    "panic_window_percentage": ("panic-window-percentage", "panicWindowPercentage"),
    "panic_threshold_percentage": ("panic-threshold-percentage", "panicThresholdPercentage"),
    "scale_down_delay": ("scale-down-delay", "scaleDownDelay"),
    "scale_to_zero_pod_retention_period": (
        "scale-to-zero-pod-retention-period",
        "scaleToZeroPodRetentionPeriod",
    ),
    "metric_aggregation_algorithm": (
        "metric-aggregation-algorithm",
        "metricAggregationAlgorithm",
    ),
}
KNOWN = frozenset(f"{GROUP}/{k}" for keys in KEYS.values() for k in keys)

Problem = tuple[str, str]  # (annotation key, message)


@dataclass(frozen=True)
class Autoscaling:
    """What a revision's annotations ask of the autoscaler; None: the default."""

    autoscaler_class: str | None = None
    metric: str | None = None
    target: float | None = None
    target_utilization_percentage: float | None = None
    target_burst_capacity: float | None = None
    min_scale: int | None = None
    max_scale: int | None = None  # 0: no limit
    initial_scale: int | None = None
    activation_scale: int | None = None
    window_s: float | None = None
    panic_window_percentage: float | None = None
    panic_threshold_percentage: float | None = None
    scale_down_delay_s: float | None = None
    scale_to_zero_pod_retention_s: float | None = None
    metric_aggregation_algorithm: str | None = None


def is_autoscaling_key(key: str) -> bool:
    return key.startswith(GROUP)


def lookup(annotations: Mapping[str, str], setting: str) -> tuple[str, str] | None:
    """(key, value) of `setting` in `annotations`, by Knative's key priority."""
    for name in KEYS[setting]:
        key = f"{GROUP}/{name}"
        if key in annotations:
            return key, annotations[key]
    return None


class _Reader:
    def __init__(self, annotations: Mapping[str, str]) -> None:
        self.annotations = annotations
        self.problems: list[Problem] = []

    def get(self, setting: str) -> tuple[str, str] | None:
        return lookup(self.annotations, setting)

    def problem(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def int_value(self, setting: str) -> int | None:
        """A 32-bit integer >= 0 (Go's ParseInt), or None after a problem or when absent."""
        found = self.get(setting)
        if found is None:
            return None
        key, text = found
        value = _go_int(text)
        if value is None:
            self.problem(key, f"must be a whole number, got {show(text)}")
        elif not 0 <= value <= _INT32_MAX:
            self.problem(key, f"must be from 0 to {_INT32_MAX}, got {show(text)}")
        else:
            return value
        return None

    def float_value(self, setting: str, low: float | None, high: float | None) -> float | None:
        found = self.get(setting)
        if found is None:
            return None
        key, text = found
        value = _go_float(text)
        if value is None:
            self.problem(key, f"must be a number, got {show(text)}")
        elif low is not None and high is not None and not low <= value <= high:
            self.problem(key, f"must be from {low:g} to {high:g}, got {show(text)}")
        elif low is not None and value < low:
            self.problem(key, f"must be at least {low:g}, got {show(text)}")
        else:
            return value
        return None

    def duration(self, setting: str, high_s: int, *, low_s: int = 0, whole: bool) -> float | None:
        found = self.get(setting)
        if found is None:
            return None
        key, text = found
        ns = parse_go_duration(text)
        if ns is None:
            self.problem(
                key, f'must be a duration such as "60s", "1m30s" or "1h", got {show(text)}'
            )
        elif not low_s * _NS <= ns <= high_s * _NS:
            span = f"{_seconds_text(low_s)} to {_seconds_text(high_s)}"
            self.problem(key, f"must be from {span}, got {show(text)}")
        elif whole and ns % _NS:
            self.problem(key, f"must be a whole number of seconds, got {show(text)}")
        else:
            return ns / _NS
        return None


def read_autoscaling(annotations: Mapping[str, str]) -> tuple[Autoscaling, list[Problem]]:
    """The revision's autoscaling settings, and what is wrong with the annotations."""
    r = _Reader(annotations)
    for key in sorted(annotations):
        if is_autoscaling_key(key) and key not in KNOWN:
            r.problem(key, _unknown(key))
    klass = _class(r)
    min_scale = r.int_value("min_scale")
    max_scale = r.int_value("max_scale")
    if min_scale is not None and max_scale is not None and 0 < max_scale < min_scale:
        key = _key(r, "max_scale")
        r.problem(key, f"max-scale={max_scale} is less than min-scale={min_scale}")
    settings = Autoscaling(
        autoscaler_class=klass,
        metric=_metric(r, klass),
        target=r.float_value("target", TARGET_MIN, None),
        target_utilization_percentage=r.float_value("target_utilization_percentage", 1, 100),
        target_burst_capacity=_burst_capacity(r),
        min_scale=min_scale,
        max_scale=max_scale,
        initial_scale=_initial_scale(r),
        activation_scale=_activation_scale(r, min_scale or 0, max_scale or 0),
        window_s=r.duration("window", WINDOW_MAX_S, low_s=WINDOW_MIN_S, whole=True),
        panic_window_percentage=r.float_value("panic_window_percentage", 1, 100),
        panic_threshold_percentage=r.float_value("panic_threshold_percentage", 110, 1000),
        scale_down_delay_s=r.duration("scale_down_delay", WINDOW_MAX_S, whole=True),
        scale_to_zero_pod_retention_s=r.duration(
            "scale_to_zero_pod_retention_period", WINDOW_MAX_S, whole=False
        ),
        metric_aggregation_algorithm=_algorithm(r, klass),
    )
    return settings, r.problems


def _key(r: _Reader, setting: str) -> str:
    found = r.get(setting)
    assert found is not None
    return found[0]


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(KNOWN), n=1, cutoff=0.8)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown autoscaling annotation (Knative ignores it: it would have no effect){hint}"


def _class(r: _Reader) -> str | None:
    found = r.get("class")
    if found is None:
        return None
    key, value = found
    if value.endswith(".knative.dev") and value not in (KPA, HPA):
        r.problem(key, f"must be {show(KPA)}, {show(HPA)} or another domain's, got {show(value)}")
    return value


def _metric(r: _Reader, klass: str | None) -> str | None:
    found = r.get("metric")
    if found is None:
        return None
    key, value = found
    if (klass or KPA) == KPA and value not in KPA_METRICS:
        r.problem(key, f'must be "concurrency" or "rps" with the KPA, got {show(value)}')
    elif klass == HPA and not value:
        r.problem(key, "must name a metric (cpu, memory, ...) with the HPA class")
    return value


def _algorithm(r: _Reader, klass: str | None) -> str | None:
    found = r.get("metric_aggregation_algorithm")
    if found is None:
        return None
    key, value = found
    # Knative checks it only when the class is written as the KPA: other classes may
    # have algorithms of their own.
    if klass == KPA and value and value not in ALGORITHMS:
        allowed = ", ".join(show(a) for a in ALGORITHMS)
        r.problem(key, f"must be one of {allowed}, got {show(value)}")
    return value


def _burst_capacity(r: _Reader) -> float | None:
    found = r.get("target_burst_capacity")
    if found is None:
        return None
    key, text = found
    value = _go_float(text)
    if value is None or (value < 0 and value != -1):
        r.problem(key, f"must be a number >= 0, or -1 for no limit, got {show(text)}")
        return None
    return value


def _initial_scale(r: _Reader) -> int | None:
    found = r.get("initial_scale")
    if found is None:
        return None
    key, text = found
    value = _go_int(text)
    if value is None or abs(value) > _INT64_MAX:
        r.problem(key, f"must be a whole number, got {show(text)}")
    elif value < 0:
        r.problem(key, f"must be at least 0, got {show(text)}")
    elif value == 0:
        r.problem(
            key,
            "0 is not allowed: Knative's allow-zero-initial-scale is off by default, "
            "so a revision starts with at least one instance",
        )
    else:
        return value
    return None


def _activation_scale(r: _Reader, min_scale: int, max_scale: int) -> int | None:
    found = r.get("activation_scale")
    if found is None:
        return None
    key, text = found
    value = _go_int(text)
    if value is None or abs(value) > _INT32_MAX:
        r.problem(key, f"must be a whole number, got {show(text)}")
    elif min_scale > value:
        r.problem(key, f"min-scale={min_scale} is greater than activation-scale={value}")
    elif max_scale != 0 and max_scale < value:
        r.problem(key, f"max-scale={max_scale} is less than activation-scale={value}")
    elif value < 2:
        r.problem(key, f"activation-scale={value} must be greater than 1")
    else:
        return value
    return None


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_GO_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}


def _go_int(text: str) -> int | None:
    return int(text) if _GO_INT.fullmatch(text) else None


def _go_float(text: str) -> float | None:
    """A decimal number as Go's ParseFloat reads it (no NaN or infinities here)."""
    return float(text) if _GO_FLOAT.fullmatch(text) else None


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration (`"1h30m"`, `"1.5s"`, `"-2m"`, `"0"`), or None."""
    sign = 1
    rest = text
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        return None
    total = Decimal(0)
    pos = 0
    while pos < len(rest):
        m = _GO_DURATION_PART.match(rest, pos)
        if m is None:
            return None
        total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def _seconds_text(seconds: int) -> str:
    """Seconds as Knative writes a bound: 6s, 1h0m0s."""
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"
