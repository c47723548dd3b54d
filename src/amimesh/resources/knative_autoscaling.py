"""The annotations a Knative revision gives its autoscaler, as a typed value, with
Knative's rules (knative/serving `pkg/apis/autoscaling/annotation_validation.go`, and
`pkg/apis/serving/v1/revision_validation.go` for the progress deadline). Pure.

    settings, problems = read_autoscaling(template.metadata.annotations)

`problems` are (annotation key, message), every one at once. A setting left out, or
one with a problem, is None: the cluster's default applies (Knative's
`config-autoscaler`), which the autoscaler decides, not this module. Three rules
depend on that ConfigMap; they take its values as arguments, Knative's defaults when
left out. Values are read as Knative reads them (`goparse`): integers and floats as
Go parses them, durations as Go's `time.ParseDuration` (`"60s"`, `"1m30s"`, `"1.5h"`).
Stricter than Knative: a number must be finite (Knative takes "NaN" and "Inf", which
pass its range checks only because NaN compares false with everything).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from amimesh.resources import goparse
from amimesh.resources.fields import show

GROUP = "autoscaling.knative.dev"
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
KPA_METRICS = ("concurrency", "rps")
ALGORITHMS = ("linear", "weighted-exponential", "weightedExponential")
# Bounds of pkg/apis/autoscaling/register.go, which config-autoscaler shares.
TARGET_MIN = 0.01
WINDOW_MIN_S = 6
WINDOW_MAX_S = 3600
PANIC_WINDOW_PERCENTAGE_MIN = 1.0
PANIC_WINDOW_PERCENTAGE_MAX = 100.0
PANIC_THRESHOLD_PERCENTAGE_MIN = 110.0
PANIC_THRESHOLD_PERCENTAGE_MAX = 1000.0
INT32_MAX = 2**31 - 1
PROGRESS_DEADLINE = "serving.knative.dev/progress-deadline"


def is_autoscaling_key(key: str) -> bool:
    return key.startswith(GROUP)


def _group(*names: str) -> tuple[str, ...]:
    return tuple(f"{GROUP}/{name}" for name in names)


# Each setting's keys, the current spelling first and then the older camelCase one
# Knative still reads; the first present wins, as in Knative's `kmap.KeyPriority`.
KEYS: dict[str, tuple[str, ...]] = {
    "class": _group("class"),
    "metric": _group("metric"),
    "target": _group("target"),
    "target_utilization_percentage": _group(
        "target-utilization-percentage", "targetUtilizationPercentage"
    ),
    "target_burst_capacity": _group("target-burst-capacity", "targetBurstCapacity"),
    "min_scale": _group("min-scale", "minScale"),
    "max_scale": _group("max-scale", "maxScale"),
    "initial_scale": _group("initial-scale", "initialScale"),
    "activation_scale": _group("activation-scale"),
    "window": _group("window"),
    "panic_window_percentage": _group("panic-window-percentage", "panicWindowPercentage"),
    "panic_threshold_percentage": _group("panic-threshold-percentage", "panicThresholdPercentage"),
    "scale_down_delay": _group("scale-down-delay", "scaleDownDelay"),
    "scale_to_zero_pod_retention_period": _group(
        "scale-to-zero-pod-retention-period", "scaleToZeroPodRetentionPeriod"
    ),
    "metric_aggregation_algorithm": _group(
        "metric-aggregation-algorithm", "metricAggregationAlgorithm"
    ),
    "progress_deadline": (PROGRESS_DEADLINE,),
}
KNOWN = frozenset(key for keys in KEYS.values() for key in keys if is_autoscaling_key(key))

Problem = tuple[str, str]  # (annotation key, message)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Autoscaling:
    """What a revision's annotations ask of the autoscaler; None: the default."""

    autoscaler_class: str | None = None
    metric: str | None = None
    target: float | None = None
    target_utilization_percentage: float | None = None
    target_burst_capacity: float | None = None  # -1: the activator stays in the path
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
    progress_deadline_s: float | None = None


def lookup(annotations: Mapping[str, str], setting: str) -> tuple[str, str] | None:
    """(key, value) of `setting` in `annotations`, by Knative's key priority."""
    for key in KEYS[setting]:
        if key in annotations:
            return key, annotations[key]
    return None


def read_autoscaling(
    annotations: Mapping[str, str],
    *,
    pod_autoscaler_class: str = KPA,
    max_scale_limit: int = 0,
    allow_zero_initial_scale: bool = False,
) -> tuple[Autoscaling, list[Problem]]:
    """The revision's autoscaling settings, and what is wrong with its annotations by
    Knative's rules. The keyword arguments are the `config-autoscaler` values those
    rules depend on; left out, they are Knative's defaults."""
    r = _Reader(annotations)
    klass = r.text("class")
    if klass is not None and klass.endswith(".knative.dev") and klass not in (KPA, HPA):
        r.problem("class", f"must be {show(KPA)}, {show(HPA)} or another domain's")
    min_scale = r.integer("min_scale", 32, at_least_zero=True)
    max_scale = r.integer("max_scale", 32, at_least_zero=True)
    if min_scale is not None and max_scale is not None and 0 < max_scale < min_scale:
        r.problem_at("max_scale", f"max-scale={max_scale} is less than min-scale={min_scale}")
    if max_scale is not None and max_scale_limit > 0:
        _check_max_scale_limit(r, max_scale, max_scale_limit)
    settings = Autoscaling(
        autoscaler_class=klass,
        metric=_metric(r, pod_autoscaler_class if klass is None else klass),
        target=r.float_value("target", TARGET_MIN, math.inf),
        target_utilization_percentage=r.float_value("target_utilization_percentage", 1, 100),
        target_burst_capacity=_burst_capacity(r),
        min_scale=min_scale,
        max_scale=max_scale,
        initial_scale=_initial_scale(r, allow_zero_initial_scale),
        activation_scale=_activation_scale(r, min_scale or 0, max_scale or 0),
        window_s=r.duration("window", WINDOW_MIN_S, WINDOW_MAX_S, whole=True),
        panic_window_percentage=r.float_value(
            "panic_window_percentage", PANIC_WINDOW_PERCENTAGE_MIN, PANIC_WINDOW_PERCENTAGE_MAX
        ),
        panic_threshold_percentage=r.float_value(
            "panic_threshold_percentage",
            PANIC_THRESHOLD_PERCENTAGE_MIN,
            PANIC_THRESHOLD_PERCENTAGE_MAX,
        ),
        scale_down_delay_s=r.duration("scale_down_delay", 0, WINDOW_MAX_S, whole=True),
        scale_to_zero_pod_retention_s=r.duration(
            "scale_to_zero_pod_retention_period", 0, WINDOW_MAX_S, whole=False
        ),
        metric_aggregation_algorithm=_algorithm(r, klass),
        # Knative skips an empty progress deadline, and its autoscaler reads it as absent.
        progress_deadline_s=(
            r.duration("progress_deadline", 0, None, whole=True)
            if r.text("progress_deadline")
            else None
        ),
    )
    return settings, r.problems


def unknown_keys(annotations: Mapping[str, str]) -> list[Problem]:
    """Keys under autoscaling.knative.dev/ that Knative does not read. Knative ignores
    them, so a misspelt one would silently have no effect; Ami refuses them."""
    problems: list[Problem] = []
    for key in sorted(annotations):
        if is_autoscaling_key(key) and key not in KNOWN:
            close = difflib.get_close_matches(key, sorted(KNOWN), n=1, cutoff=0.8)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            message = "unknown autoscaling annotation (Knative ignores it: it would have no effect)"
            problems.append((key, message + hint))
    return problems


class _Reader:
    """Reads settings by their keys; a problem is recorded under the key found."""

    def __init__(self, annotations: Mapping[str, str]) -> None:
        self.annotations = annotations
        self.problems: list[Problem] = []

    def text(self, setting: str) -> str | None:
        found = lookup(self.annotations, setting)
        return None if found is None else found[1]

    def problem_at(self, setting: str, message: str) -> None:
        found = lookup(self.annotations, setting)
        assert found is not None
        self.problems.append((found[0], message))

    def problem(self, setting: str, message: str) -> None:
        """`message` about the value written, which is quoted after it."""
        self.problem_at(setting, f"{message}, got {show(self.text(setting))}")

    def parsed(self, setting: str, parse: Callable[[str], _T], malformed: str) -> _T | None:
        """The value as `parse` reads it; None when absent or after a problem."""
        text = self.text(setting)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError:
            self.problem(setting, malformed)
            return None

    def integer(self, setting: str, bits: int, *, at_least_zero: bool = False) -> int | None:
        """The value as Go's `strconv.ParseInt(text, 10, bits)` reads it. With
        `at_least_zero`, Knative's `getIntGE0`: a whole number out of 0 to the largest
        of `bits` is out of bounds rather than malformed."""

        def parse(text: str) -> int:
            try:
                return goparse.parse_int(text, bits)
            except goparse.RangeError:
                if at_least_zero:
                    return -1
                raise

        value = self.parsed(setting, parse, "must be a whole number")
        if value is not None and at_least_zero and value < 0:
            self.problem(setting, f"must be from 0 to {2 ** (bits - 1) - 1}")
            return None
        return value

    def number(self, setting: str) -> float | None:
        """A finite number as Go's `strconv.ParseFloat` reads it."""
        return self.parsed(setting, _finite, "must be a number")

    def float_value(self, setting: str, low: float, high: float) -> float | None:
        value = self.number(setting)
        if value is None:
            return None
        if value < low and high == math.inf:
            self.problem(setting, f"must be at least {low:g}")
        elif not low <= value <= high:
            self.problem(setting, f"must be from {low:g} to {high:g}")
        else:
            return value
        return None

    def duration(
        self, setting: str, low_s: int, high_s: int | None, *, whole: bool
    ) -> float | None:
        """Seconds of a Go duration from `low_s` to `high_s` (None: no limit)."""
        ns = self.parsed(
            setting, goparse.parse_duration, 'must be a duration such as "60s", "1m30s" or "1h"'
        )
        if ns is None:
            return None
        fmt = goparse.format_duration
        low = low_s * goparse.SECOND
        if high_s is None and ns < low:
            self.problem(setting, f"must be at least {fmt(low)}")
        elif high_s is not None and not low <= ns <= high_s * goparse.SECOND:
            self.problem(setting, f"must be from {fmt(low)} to {fmt(high_s * goparse.SECOND)}")
        elif whole and ns % goparse.SECOND:
            self.problem(setting, "must be a whole number of seconds")
        else:
            return ns / goparse.SECOND
        return None


def _finite(text: str) -> float:
    value = goparse.parse_float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _check_max_scale_limit(r: _Reader, max_scale: int, limit: int) -> None:
    if max_scale > limit:
        r.problem("max_scale", f"must be from 1 to {limit} (the cluster's max-scale-limit)")
    elif max_scale == 0:
        r.problem_at(
            "max_scale", f"0 (no limit) is not allowed: the cluster's max-scale-limit is {limit}"
        )


def _metric(r: _Reader, klass: str) -> str | None:
    value = r.text("metric")
    # Knative leaves the metric of another class to that class's autoscaler.
    if value is not None and klass == KPA and value not in KPA_METRICS:
        r.problem("metric", 'must be "concurrency" or "rps" with the KPA')
    elif value == "" and klass == HPA:
        r.problem_at("metric", "must name a metric (cpu, memory, ...) with the HPA class")
    return value


def _algorithm(r: _Reader, klass: str | None) -> str | None:
    value = r.text("metric_aggregation_algorithm")
    # Knative checks it only when the class annotation names the KPA: another class
    # may have algorithms of its own, and the KPA reads anything else as linear.
    if klass == KPA and value and value not in ALGORITHMS:
        allowed = ", ".join(show(a) for a in ALGORITHMS)
        r.problem("metric_aggregation_algorithm", f"must be one of {allowed}")
    return value


def _burst_capacity(r: _Reader) -> float | None:
    value = r.number("target_burst_capacity")
    if value is not None and value < 0 and value != -1:
        r.problem("target_burst_capacity", "must be a number >= 0, or -1 for no limit")
        return None
    return value


def _initial_scale(r: _Reader, allow_zero: bool) -> int | None:
    value = r.integer("initial_scale", 64)  # Knative's strconv.Atoi
    if value is None:
        return None
    if value < 0:
        r.problem("initial_scale", "must be at least 0")
    elif value == 0 and not allow_zero:
        r.problem_at(
            "initial_scale",
            "0 is not allowed: config-autoscaler's allow-zero-initial-scale is off "
            "(Knative's default), so a revision starts with at least one instance",
        )
    else:
        return value
    return None


def _activation_scale(r: _Reader, min_scale: int, max_scale: int) -> int | None:
    value = r.integer("activation_scale", 32)
    if value is None:
        return None
    if min_scale > value:
        message = f"min-scale={min_scale} is greater than activation-scale={value}"
    elif max_scale != 0 and max_scale < value:
        message = f"max-scale={max_scale} is less than activation-scale={value}"
    elif value < 2:
        message = f"activation-scale={value} must be greater than 1"
    else:
        return value
    r.problem_at("activation_scale", message)
    return None
