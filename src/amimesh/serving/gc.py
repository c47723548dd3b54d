"""Which revisions Knative's garbage collector deletes (knative/serving
`pkg/reconciler/gc`), as a pure function of the revisions of one configuration.

A revision is *active*, and never collected, while a route sends it traffic (or names
it by a tag), while it is its configuration's latest ready revision, or when its
annotation `serving.knative.dev/no-gc` is "true". The others are collected oldest
last-active first: a *stale* one (created longer than `retain-since-create-time` ago
and last active longer than `retain-since-last-active-time` ago) goes, as long as
`min-non-active-revisions` remain; then, past `max-non-active-revisions`, the oldest of
the rest go too. A revision's last active time is when it stopped being routed, or its
creation if it never was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amimesh.resources.knative_gc import DISABLED, GcConfig

PRESERVE_ANNOTATION = "serving.knative.dev/no-gc"


@dataclass(frozen=True)
class Candidate:
    """One revision of a configuration, as the collector sees it."""

    name: str
    created: float
    last_active: float  # when it stopped being routed; its creation if never
    active: bool  # routed, latest ready, or preserved


def collect(revisions: Sequence[Candidate], config: GcConfig, now: float) -> list[str]:
    """The names of the revisions of one configuration to delete, in order."""
    minimum, maximum = config.min_non_active, config.max_non_active
    if config.off or len(revisions) <= minimum:
        return []
    idle = sorted((r for r in revisions if not r.active), key=lambda r: r.last_active)
    if len(idle) <= minimum:
        return []
    most = len(idle) - minimum  # deleting more would leave fewer than `minimum`
    out: list[str] = []
    for r in idle:
        if _stale(r, config, now):
            out.append(r.name)
            if len(out) >= most:
                return out
    left = len(idle) - len(out)
    if maximum == DISABLED or left <= maximum:
        return out
    extra = left - maximum
    for r in idle:
        if extra == 0:
            break
        if r.name not in out:
            out.append(r.name)
            extra -= 1
    return out


def _stale(r: Candidate, config: GcConfig, now: float) -> bool:
    since_create, since_active = config.retain_since_create_s, config.retain_since_last_active_s
    if since_create == DISABLED and since_active == DISABLED:
        return False
    if since_create != DISABLED and now - r.created < since_create:
        return False
    return not (since_active != DISABLED and now - r.last_active < since_active)
