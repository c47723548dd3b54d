"""Knative's `config-autoscaler` ConfigMap: its keys, defaults and checks (pure).

Follows knative/serving `pkg/autoscaler/config/config.go`: the same defaults, the same
parsing (Go's, see `resources.goparse`) and the same validation, with an error that
names the key. Durations are held in seconds. Keys Knative no longer reads (`tick-interval`,
`panic-window`) are ignored, as Knative ignores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from amimesh.resources import goparse
from amimesh.resources import knative_autoscaling as autoscaling


class SettingsError(ValueError):
    """Invalid autoscaling settings; `problems` holds one `key: why` line each."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class AutoscalerConfig:
    """The cluster-wide autoscaler settings, with Knative's defaults."""

    enable_scale_to_zero: bool = True
    container_concurrency_target_fraction: float = 0.7
    container_concurrency_target_default: float = 100.0
    # Used for the rps metric; not a ConfigMap key (the annotation overrides it).
    target_utilization: float = 0.7
    rps_target_default: float = 200.0
    target_burst_capacity: float = 211.0
    activator_capacity: float = 100.0
    allow_zero_initial_scale: bool = False
    initial_scale: int = 1
    min_scale: int = 0
    max_scale: int = 0
    max_scale_limit: int = 0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_period_s: float = 0.0
    scale_down_delay_s: float = 0.0
    pod_autoscaler_class: str = autoscaling.KPA


def _duration_ns(text: str) -> int:
    return goparse.parse_duration(text)


def _int32(text: str) -> int:
    return goparse.parse_int(text, 32)


# key -> (field, parser); durations are converted to seconds after validation.
_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "pod-autoscaler-class": ("pod_autoscaler_class", str.strip),
    "enable-scale-to-zero": ("enable_scale_to_zero", goparse.parse_bool),
    "allow-zero-initial-scale": ("allow_zero_initial_scale", goparse.parse_bool),
    "max-scale-up-rate": ("max_scale_up_rate", goparse.parse_float),
    "max-scale-down-rate": ("max_scale_down_rate", goparse.parse_float),
    "container-concurrency-target-percentage": (
        "container_concurrency_target_fraction",
        goparse.parse_float,
    ),
    "container-concurrency-target-default": (
        "container_concurrency_target_default",
        goparse.parse_float,
    ),
    "requests-per-second-target-default": ("rps_target_default", goparse.parse_float),
    "target-burst-capacity": ("target_burst_capacity", goparse.parse_float),
    "panic-window-percentage": ("panic_window_percentage", goparse.parse_float),
    "activator-capacity": ("activator_capacity", goparse.parse_float),
    "panic-threshold-percentage": ("panic_threshold_percentage", goparse.parse_float),
    "initial-scale": ("initial_scale", _int32),
    "min-scale": ("min_scale", _int32),
    "max-scale": ("max_scale", _int32),
    "max-scale-limit": ("max_scale_limit", _int32),
    "stable-window": ("stable_window_s", _duration_ns),
    "scale-down-delay": ("scale_down_delay_s", _duration_ns),
    "scale-to-zero-grace-period": ("scale_to_zero_grace_period_s", _duration_ns),
    "scale-to-zero-pod-retention-period": (
        "scale_to_zero_pod_retention_period_s",
        _duration_ns,
    ),
}


def autoscaler_config(data: Mapping[str, str]) -> AutoscalerConfig:
    """The settings a `config-autoscaler` ConfigMap's `data` gives, or SettingsError
    naming the first key that does not parse or does not pass Knative's checks."""
    values: dict[str, Any] = {}
    durations: dict[str, int] = {
        "stable_window_s": 60 * goparse.SECOND,
        "scale_down_delay_s": 0,
        "scale_to_zero_grace_period_s": 30 * goparse.SECOND,
        "scale_to_zero_pod_retention_period_s": 0,
    }
    for key, (field, parse) in _KEYS.items():
        if key not in data:
            continue
        try:
            value = parse(data[key])
        except ValueError as exc:
            raise SettingsError([f"{key}: {exc}"]) from None
        if field in durations:
            durations[field] = value
        else:
            values[field] = value
    config = replace(AutoscalerConfig(), **values)
    fraction = config.container_concurrency_target_fraction
    # Values above 1 are percentages; (0, 1] is a fraction, kept for older configs.
    if fraction > 1.0:
        config = replace(config, container_concurrency_target_fraction=fraction / 100.0)
    _validate(config, durations)
    seconds: dict[str, Any] = {field: ns / goparse.SECOND for field, ns in durations.items()}
    return replace(config, **seconds)


def _validate(c: AutoscalerConfig, ns: dict[str, int]) -> None:
    fmt = goparse.format_duration
    grace = ns["scale_to_zero_grace_period_s"]
    delay = ns["scale_down_delay_s"]
    retention = ns["scale_to_zero_pod_retention_period_s"]
    stable = ns["stable_window_s"]
    checks: list[tuple[bool, str]] = [
        (grace <= 0, f"scale-to-zero-grace-period: must be positive, was {fmt(grace)}"),
        (delay < 0, f"scale-down-delay: cannot be negative, was {fmt(delay)}"),
        (
            delay % goparse.SECOND != 0,
            f"scale-down-delay: {fmt(delay)} must be whole seconds",
        ),
        (
            retention < 0,
            f"scale-to-zero-pod-retention-period: cannot be negative, was {fmt(retention)}",
        ),
        (
            c.target_burst_capacity < 0 and c.target_burst_capacity != -1,
            "target-burst-capacity: must be non-negative or -1 (unlimited), "
            f"was {c.target_burst_capacity:g}",
        ),
        (
            not 0 < c.container_concurrency_target_fraction <= 1,
            "container-concurrency-target-percentage: "
            f"{c.container_concurrency_target_fraction:g} is outside (0, 100]",
        ),
        (
            c.container_concurrency_target_fraction * c.container_concurrency_target_default
            < autoscaling.TARGET_MIN,
            "container-concurrency-target-percentage and container-concurrency-target-default"
            f" give a target concurrency below {autoscaling.TARGET_MIN:g}",
        ),
        (
            c.rps_target_default < autoscaling.TARGET_MIN,
            f"requests-per-second-target-default: must be at least {autoscaling.TARGET_MIN:g}, "
            f"was {c.rps_target_default:g}",
        ),
        (
            c.activator_capacity < 1,
            f"activator-capacity: must be at least 1, was {c.activator_capacity:g}",
        ),
        (
            c.max_scale_up_rate <= 1.0,
            f"max-scale-up-rate: must be greater than 1, was {c.max_scale_up_rate:g}",
        ),
        (
            c.max_scale_down_rate <= 1.0,
            f"max-scale-down-rate: must be greater than 1, was {c.max_scale_down_rate:g}",
        ),
        (
            not autoscaling.WINDOW_MIN_S * goparse.SECOND
            <= stable
            <= autoscaling.WINDOW_MAX_S * goparse.SECOND,
            f"stable-window: {fmt(stable)} is outside [6s, 1h]",
        ),
        (stable % goparse.SECOND != 0, f"stable-window: {fmt(stable)} must be whole seconds"),
        (
            not autoscaling.PANIC_WINDOW_PERCENTAGE_MIN
            <= c.panic_window_percentage
            <= autoscaling.PANIC_WINDOW_PERCENTAGE_MAX,
            f"panic-window-percentage: {c.panic_window_percentage:g} is outside [1, 100]",
        ),
        (
            c.initial_scale < 0 or (c.initial_scale == 0 and not c.allow_zero_initial_scale),
            f"initial-scale: {c.initial_scale} must be at least 1 "
            "(or 0 when allow-zero-initial-scale is true)",
        ),
        (c.min_scale < 0, f"min-scale: must be at least 0, was {c.min_scale}"),
        (
            c.max_scale < (1 if c.max_scale_limit > 0 else 0)
            or (c.max_scale_limit > 0 and c.max_scale > c.max_scale_limit),
            f"max-scale: {c.max_scale} must be in "
            f"[{1 if c.max_scale_limit > 0 else 0}, max-scale-limit ({c.max_scale_limit})]",
        ),
        (
            c.max_scale_limit < 0,
            f"max-scale-limit: must be at least 0, was {c.max_scale_limit}",
        ),
        (
            c.min_scale > c.max_scale > 0,
            f"min-scale: {c.min_scale} must not exceed max-scale ({c.max_scale})",
        ),
    ]
    for failed, message in checks:
        if failed:
            raise SettingsError([message])
