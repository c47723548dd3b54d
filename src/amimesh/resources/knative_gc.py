"""Knative Serving's revision garbage collection settings: `config-gc` in
`knative-serving`, read as Knative reads them (knative/serving `pkg/gc/config.go`).

    retain-since-create-time: "48h"       # a revision younger than this is kept
    retain-since-last-active-time: "15h"  # one routed within this is kept
    min-non-active-revisions: "20"        # at least this many non-active are kept
    max-non-active-revisions: "1000"      # at most this many non-active are kept

Durations are Go durations; `disabled` turns a limit off. `min` must not exceed `max`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from amimesh.resources.goparse import parse_duration

CONFIG_NAME = "config-gc"
DISABLED = -1
_NANOS = 1e9


@dataclass(frozen=True)
class GcConfig:
    """Seconds and counts; `DISABLED` where the limit is off."""

    retain_since_create_s: float = 48 * 3600.0
    retain_since_last_active_s: float = 15 * 3600.0
    min_non_active: int = 20
    max_non_active: int = 1000

    @property
    def off(self) -> bool:
        """Every deletion rule disabled: nothing is ever collected."""
        return (
            self.max_non_active == DISABLED
            and self.retain_since_create_s == DISABLED
            and self.retain_since_last_active_s == DISABLED
        )


class GcConfigError(ValueError):
    """A `config-gc` key that cannot be read; `key` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def parse(data: Mapping[str, str]) -> GcConfig:
    """`config-gc`'s data as Knative reads it; `GcConfigError` naming the key if bad."""
    default = GcConfig()
    create = _duration(data, "retain-since-create-time", default.retain_since_create_s)
    active = _duration(data, "retain-since-last-active-time", default.retain_since_last_active_s)
    minimum = default.min_non_active
    text = data.get("min-non-active-revisions", "").strip()
    if text:
        try:
            minimum = int(text)
        except ValueError:
            raise GcConfigError("min-non-active-revisions", f"not an integer: {text!r}") from None
        if minimum < 0:
            raise GcConfigError("min-non-active-revisions", f"must be non-negative, was: {minimum}")
    maximum = default.max_non_active
    text = data.get("max-non-active-revisions", "").strip()
    if text.lower() == "disabled":
        maximum = DISABLED
    elif text:
        if not text.isdigit():
            raise GcConfigError(
                "max-non-active-revisions", f"not a non-negative integer or 'disabled': {text!r}"
            )
        maximum = int(text)
    if maximum != DISABLED and minimum > maximum:
        raise GcConfigError(
            "min-non-active-revisions",
            f"min-non-active-revisions({minimum}) must be <= max-non-active-revisions({maximum})",
        )
    return GcConfig(create, active, minimum, maximum)


def _duration(data: Mapping[str, str], key: str, default: float) -> float:
    text = data.get(key, "").strip()
    if not text:
        return default
    if text.lower() == "disabled":
        return DISABLED
    try:
        nanos = parse_duration(text)
    except ValueError as e:
        raise GcConfigError(key, str(e)) from None
    if nanos < 0:
        raise GcConfigError(key, "must be non-negative")
    return nanos / _NANOS
