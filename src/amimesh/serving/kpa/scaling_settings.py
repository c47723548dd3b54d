"""One revision's autoscaling settings: `autoscaling.knative.dev/*` annotations over
the `config-autoscaler` defaults, checked and resolved into one value (pure).

The annotations are checked first (`annotations`). Resolution then follows the
KPA reconciler: target and total from `ResolveMetricTarget` (`pkg/reconciler/autoscaling/resources/
target.go`), the panic window from `MakeMetric`, the decider's values from
`MakeDecider` and `GetInitialScale` (`pkg/reconciler/autoscaling/kpa/resources/
decider.go`), scale bounds from `PodAutoscaler.ScaleBounds` and the last pod's
retention from `lastPodRetention` (`kpa/scaler.go`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from amimesh.serving.kpa import annotations as ann
from amimesh.serving.kpa import goparse
from amimesh.serving.kpa.autoscaler_config import (
    TARGET_MIN,
    AutoscalerConfig,
    SettingsError,
    autoscaler_config,
)

Metric = Literal["concurrency", "rps"]
Aggregation = Literal["linear", "weighted-exponential"]


# config-deployment's progress-deadline default (Kubernetes' own default).
PROGRESS_DEADLINE_DEFAULT_S = 600.0


@dataclass(frozen=True)
class ScalingSettings:
    """What the KPA needs to scale one revision; durations in seconds.

    `target` is the metric value per instance the autoscaler aims for, `total` what
    one instance can take (containerConcurrency, or the target annotation).
    `target_burst_capacity` -1 keeps the activator in the path, 0 takes it out as
    soon as there is an instance. `min_scale` is already 0 for an unreachable
    revision; `max_scale` 0 is unbounded; `activation_scale` 0 is unset.
    """

    metric: Metric = "concurrency"
    target: float = 70.0
    total: float = 100.0
    target_burst_capacity: float = 211.0
    activator_capacity: float = 100.0
    panic_threshold: float = 2.0
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    scale_down_delay_s: float = 0.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    aggregation: Aggregation = "linear"
    min_scale: int = 0
    max_scale: int = 0
    initial_scale: int = 1
    activation_scale: int = 0
    reachable: bool = True
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_s: float = 0.0
    progress_deadline_s: float = PROGRESS_DEADLINE_DEFAULT_S

    @property
    def activator_always_in_path(self) -> bool:
        """TBC -1: the activator never leaves the path, so the revision is not
        scraped and no data is no reason to wait (Knative's `resolveScrapeTarget`)."""
        return self.target_burst_capacity == -1


def scaling_settings(
    annotations: Mapping[str, str],
    config: Mapping[str, str] | AutoscalerConfig | None = None,
    *,
    container_concurrency: int = 0,
    reachable: bool = True,
    progress_deadline_s: float = PROGRESS_DEADLINE_DEFAULT_S,
) -> ScalingSettings:
    """A revision's settings from its annotations and `config-autoscaler` (its `data`
    strings, or an already parsed AutoscalerConfig). `container_concurrency` is the
    revision's `containerConcurrency` (0: unlimited); `reachable` is False once no
    route sends it traffic; `progress_deadline_s` is the cluster's default
    (`config-deployment`), which the revision's own annotation overrides. Raises
    SettingsError listing every bad annotation."""
    if config is None:
        config = AutoscalerConfig()
    elif not isinstance(config, AutoscalerConfig):
        config = autoscaler_config(config)
    if container_concurrency < 0:
        raise SettingsError(
            [f"containerConcurrency: must be at least 0, was {container_concurrency}"]
        )
    problems = ann.validate(annotations, config)
    if problems:
        raise SettingsError(problems)
    a = ann.Annotations(annotations)

    metric: Metric = "rps" if a.text(ann.METRIC) == "rps" else "concurrency"
    target, total = _metric_target(a, config, metric, container_concurrency)
    stable_ns = a.duration(ann.WINDOW, round(config.stable_window_s * goparse.SECOND))
    panic_percentage = a.number(ann.PANIC_WINDOW_PERCENTAGE, config.panic_window_percentage)
    min_scale = a.integer(ann.MIN_SCALE, config.min_scale) if reachable else 0
    retention_ns = a.duration(
        ann.SCALE_TO_ZERO_POD_RETENTION,
        round(config.scale_to_zero_pod_retention_period_s * goparse.SECOND),
    )
    progress_ns = a.duration(ann.PROGRESS_DEADLINE, round(progress_deadline_s * goparse.SECOND))
    delay_ns = a.duration(ann.SCALE_DOWN_DELAY, round(config.scale_down_delay_s * goparse.SECOND))
    aggregation: Aggregation = (
        "weighted-exponential"
        if a.text(ann.AGGREGATION) in ("weighted-exponential", "weightedExponential")
        else "linear"
    )
    return ScalingSettings(
        metric=metric,
        target=target,
        total=total,
        target_burst_capacity=a.number(ann.TARGET_BURST_CAPACITY, config.target_burst_capacity),
        activator_capacity=config.activator_capacity,
        panic_threshold=(
            a.number(ann.PANIC_THRESHOLD_PERCENTAGE, config.panic_threshold_percentage) / 100.0
        ),
        stable_window_s=stable_ns / goparse.SECOND,
        panic_window_s=panic_window_s(stable_ns, panic_percentage),
        scale_down_delay_s=delay_ns / goparse.SECOND,
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        aggregation=aggregation,
        min_scale=min_scale,
        max_scale=a.integer(ann.MAX_SCALE, config.max_scale),
        initial_scale=initial_scale(a.raw, config),
        activation_scale=a.integer(ann.ACTIVATION_SCALE, 0),
        reachable=reachable,
        enable_scale_to_zero=config.enable_scale_to_zero,
        scale_to_zero_grace_period_s=config.scale_to_zero_grace_period_s,
        scale_to_zero_pod_retention_s=retention_ns / goparse.SECOND if reachable else 0.0,
        progress_deadline_s=progress_ns / goparse.SECOND,
    )


def panic_window_s(stable_ns: int, percentage: float) -> float:
    """The panic window: that percentage of the stable window, to the nearest second
    (halves away from zero), never under one second (a bucket)."""
    ns = math.trunc(float(stable_ns) * percentage / 100.0)
    seconds, rest = divmod(ns, goparse.SECOND)
    if rest * 2 >= goparse.SECOND:
        seconds += 1
    return float(max(1, seconds))


def initial_scale(annotations: Mapping[str, str], config: AutoscalerConfig) -> int:
    """The revision's initial scale: its annotation, unless absent or a zero the
    cluster does not allow, else the cluster's `initial-scale`."""
    found = ann.Annotations(annotations).get(ann.INITIAL_SCALE)
    if found is None:
        return config.initial_scale
    try:
        value = goparse.parse_int(found[1], 32)
    except ValueError:
        return config.initial_scale
    if value == 0 and not config.allow_zero_initial_scale:
        return config.initial_scale
    return value


def _metric_target(
    a: ann.Annotations, config: AutoscalerConfig, metric: Metric, cc: int
) -> tuple[float, float]:
    if metric == "rps":
        total = config.rps_target_default
        utilization = config.target_utilization
    else:
        total = float(cc) if cc else config.container_concurrency_target_default
        utilization = config.container_concurrency_target_fraction
    annotated = a.get(ann.TARGET)
    if annotated is not None:
        total = goparse.parse_float(annotated[1])
        if metric == "concurrency" and cc:
            # Never aim above what the container says it can take.
            total = min(total, float(cc))
    found = a.get(ann.TARGET_UTILIZATION)
    if found is not None:
        utilization = goparse.parse_float(found[1]) / 100
    return max(TARGET_MIN, total * utilization), total
