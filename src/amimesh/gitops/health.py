"""Argo CD's health statuses, judged from what Ami knows of each resource. Pure.

A Workload is Healthy when as many of its instances are ready as it asks for, else
Degraded when one of its instances is failing (crashed and waiting to restart, or
failed for good), else Progressing; a Knative Service follows its Ready condition
(True: Healthy, False: Degraded, else Progressing); any other resource is Healthy once
it is in force; a resource that is not is Missing. An Application's health is its
worst resource's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from amimesh.resources import knative_serving as ks
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload

HEALTHY, PROGRESSING, DEGRADED, MISSING, UNKNOWN = (
    "Healthy",
    "Progressing",
    "Degraded",
    "Missing",
    "Unknown",
)
# Argo CD's order, best first: an Application is as healthy as its worst resource.
ORDER = (HEALTHY, "Suspended", PROGRESSING, MISSING, DEGRADED, UNKNOWN)


def resource_health(
    live: Resource | None,
    ready_instances: int,
    status: Mapping[str, Any] | None,
    failing_instances: int = 0,
) -> str:
    """`ready_instances` and `failing_instances`: a Workload's; `status`: a Knative
    Service's."""
    if live is None:
        return MISSING
    if isinstance(live, Workload):
        if ready_instances >= live.spec.replicas:
            return HEALTHY
        return DEGRADED if failing_instances else PROGRESSING
    if isinstance(live, ks.Service):
        return _ready_condition(status)
    return HEALTHY


def _ready_condition(status: Mapping[str, Any] | None) -> str:
    for c in (status or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            return {"True": HEALTHY, "False": DEGRADED}.get(str(c.get("status")), PROGRESSING)
    return PROGRESSING


def worst(statuses: Iterable[str]) -> str:
    """The Application's health: its worst resource's (Healthy when it has none)."""
    return max(statuses, key=ORDER.index, default=HEALTHY)
