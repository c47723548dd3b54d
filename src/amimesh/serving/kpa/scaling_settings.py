"""One revision's autoscaling settings: `autoscaling.knative.dev/*` annotations over
the `config-autoscaler` defaults, checked and resolved into one value (pure).

The annotations are read and checked by `resources.knative_autoscaling`, with the
ConfigMap's values Knative's rules depend on; on top of those, Ami scales only with
the KPA, so a revision of another class is an error here rather than one nobody
scales. Resolution then follows the KPA reconciler: target and total from
`ResolveMetricTarget` (`pkg/reconciler/autoscaling/resources/target.go`), the panic
window from `MakeMetric`, the decider's values from `MakeDecider` and
`GetInitialScale` (`pkg/reconciler/autoscaling/kpa/resources/decider.go`), scale
bounds from `PodAutoscaler.ScaleBounds` and the last pod's retention from
`lastPodRetention` (`kpa/scaler.go`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from amimesh.resources import goparse
from amimesh.resources import knative_autoscaling as autoscaling
from amimesh.serving.kpa.autoscaler_config import (
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
    a, problems = read_annotations(annotations, config)
    if problems:
        raise SettingsError(problems)

    metric: Metric = "rps" if a.metric == "rps" else "concurrency"
    target, total = _metric_target(a, config, metric, container_concurrency)
    stable_window_s = _given(a.window_s, config.stable_window_s)
    retention_s = _given(
        a.scale_to_zero_pod_retention_s, config.scale_to_zero_pod_retention_period_s
    )
    aggregation: Aggregation = (
        "weighted-exponential"
        if a.metric_aggregation_algorithm in ("weighted-exponential", "weightedExponential")
        else "linear"
    )
    return ScalingSettings(
        metric=metric,
        target=target,
        total=total,
        target_burst_capacity=_given(a.target_burst_capacity, config.target_burst_capacity),
        activator_capacity=config.activator_capacity,
        panic_threshold=(
            _given(a.panic_threshold_percentage, config.panic_threshold_percentage) / 100.0
        ),
        stable_window_s=stable_window_s,
        panic_window_s=panic_window_s(
            round(stable_window_s * goparse.SECOND),
            _given(a.panic_window_percentage, config.panic_window_percentage),
        ),
        scale_down_delay_s=_given(a.scale_down_delay_s, config.scale_down_delay_s),
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        aggregation=aggregation,
        min_scale=_given(a.min_scale, config.min_scale) if reachable else 0,
        max_scale=_given(a.max_scale, config.max_scale),
        initial_scale=_initial_scale(a, config),
        activation_scale=_given(a.activation_scale, 0),
        reachable=reachable,
        enable_scale_to_zero=config.enable_scale_to_zero,
        scale_to_zero_grace_period_s=config.scale_to_zero_grace_period_s,
        scale_to_zero_pod_retention_s=retention_s if reachable else 0.0,
        progress_deadline_s=_given(a.progress_deadline_s, progress_deadline_s),
    )


def read_annotations(
    annotations: Mapping[str, str], config: AutoscalerConfig
) -> tuple[autoscaling.Autoscaling, list[str]]:
    """The revision's annotations read with the cluster's config, and every problem
    with them as `key: why`: Knative's rules, and that the class is the KPA."""
    a, found = autoscaling.read_autoscaling(
        annotations,
        pod_autoscaler_class=config.pod_autoscaler_class,
        max_scale_limit=config.max_scale_limit,
        allow_zero_initial_scale=config.allow_zero_initial_scale,
    )
    problems = [f"{key}: {why}" for key, why in found]
    klass = config.pod_autoscaler_class if a.autoscaler_class is None else a.autoscaler_class
    written = autoscaling.lookup(annotations, "class")
    where = "config-autoscaler pod-autoscaler-class" if written is None else written[0]
    if klass != autoscaling.KPA and all(key != where for key, _ in found):
        problems.append(
            f"{where}: class {klass!r} is not supported; Ami scales with {autoscaling.KPA}"
        )
    return a, problems


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
    a, _ = autoscaling.read_autoscaling(
        annotations, allow_zero_initial_scale=config.allow_zero_initial_scale
    )
    return _initial_scale(a, config)


def _initial_scale(a: autoscaling.Autoscaling, config: AutoscalerConfig) -> int:
    # A zero the cluster does not allow was read as None. Knative checks the value as
    # a 64-bit number but its autoscaler reads it as a 32-bit one: a larger one counts
    # as absent.
    if a.initial_scale is None or a.initial_scale > autoscaling.INT32_MAX:
        return config.initial_scale
    return a.initial_scale


_T = TypeVar("_T")


def _given(value: _T | None, default: _T) -> _T:
    """The annotation's value, or the default when it is not there."""
    return default if value is None else value


def _metric_target(
    a: autoscaling.Autoscaling, config: AutoscalerConfig, metric: Metric, cc: int
) -> tuple[float, float]:
    if metric == "rps":
        total = config.rps_target_default
        utilization = config.target_utilization
    else:
        total = float(cc) if cc else config.container_concurrency_target_default
        utilization = config.container_concurrency_target_fraction
    if a.target is not None:
        total = a.target
        if metric == "concurrency" and cc:
            # Never aim above what the container says it can take.
            total = min(total, float(cc))
    if a.target_utilization_percentage is not None:
        utilization = a.target_utilization_percentage / 100
    return max(autoscaling.TARGET_MIN, total * utilization), total
