"""Knative's objects as its API shows them, from what the controller keeps: the
Revisions it made, and the Configuration and Route each Knative Service owns, as
`kubectl get revision,configuration,route -o json` prints them, with their status.

    owned_objects(service, status, created)         # [Configuration, Route] of a Service
    revision_object(record, status, routed=True)    # {"apiVersion": ..., "kind": "Revision", ...}
    timestamp(1700000000.0)                         # "2023-11-14T22:13:20Z"

Pure: times are handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from amimesh.resources import knative_serving as ks
from amimesh.serving.expand import (
    CONFIGURATION_LABEL,
    GENERATION_LABEL,
    SERVICE_LABEL,
    SERVING,
    RevisionRecord,
)

API_VERSION = f"{SERVING}/v1"
ROUTING_STATE_LABEL = f"{SERVING}/routingState"
# Knative's routing states: a revision a route sends traffic to (or tags) is `active`,
# one no route references is `reserve`.
ACTIVE = "active"
RESERVE = "reserve"

Status = Mapping[str, Any] | None


def timestamp(epoch_s: float) -> str:
    """RFC 3339 in UTC, to the second, as Kubernetes writes `creationTimestamp`."""
    return datetime.fromtimestamp(int(epoch_s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object(
    kind: str, metadata: dict[str, Any], spec: Mapping[str, Any], status: Status
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": dict(spec),
    }
    if status is not None:
        out["status"] = dict(status)
    return out


def revision_object(r: RevisionRecord, status: Status, *, routed: bool) -> dict[str, Any]:
    """The Knative Revision `r`, with Knative's labels (its configuration, generation,
    service and routing state) over the template's, and `status` when known."""
    labels = {
        **r.labels,
        CONFIGURATION_LABEL: r.configuration,
        GENERATION_LABEL: str(r.generation),
        ROUTING_STATE_LABEL: ACTIVE if routed else RESERVE,
    }
    if r.service:
        labels[SERVICE_LABEL] = r.service
    metadata: dict[str, Any] = {
        "name": r.name,
        "namespace": r.namespace,
        "labels": dict(sorted(labels.items())),
        "creationTimestamp": timestamp(r.created),
    }
    if r.annotations:
        metadata["annotations"] = r.annotations
    return _object("Revision", metadata, r.template.get("spec", {}), status)


def owned_objects(
    svc: ks.Service,
    configuration_status: Status,
    route_status: Status,
    created: float | None,
) -> list[dict[str, Any]]:
    """The Configuration and the Route a Knative Service owns, of its name: the
    template, and the traffic (by default all to its latest revision), as Knative's
    Service controller writes them."""

    def metadata() -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": svc.name,
            "namespace": svc.namespace,
            "labels": {**svc.metadata.labels, SERVICE_LABEL: svc.name},
        }
        if created is not None:
            meta["creationTimestamp"] = timestamp(created)
        return meta

    template = svc.spec.template.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    template.setdefault("spec", svc.spec.template.spec.model_dump(mode="json", exclude_none=True))
    traffic = []
    for t in svc.spec.traffic or [ks.TrafficTarget(latestRevision=True, percent=100)]:
        target = t.model_dump(mode="json", exclude_none=True)
        if not t.revisionName or t.latestRevision:
            target.setdefault("configurationName", svc.name)
            target["latestRevision"] = True
        traffic.append(target)
    return [
        _object("Configuration", metadata(), {"template": template}, configuration_status),
        _object("Route", metadata(), {"traffic": traffic}, route_status),
    ]


def referenced(statuses: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> dict[str, set[str]]:
    """Per revision ("namespace/name"), the Routes whose traffic names it (a share or
    a tag), from the Routes' status."""
    out: dict[str, set[str]] = {}
    for (kind, ns, name), status in statuses.items():
        if kind != "Route":
            continue
        for target in status.get("traffic", ()):
            revision = target.get("revisionName")
            if revision:
                out.setdefault(f"{ns}/{revision}", set()).add(name)
    return out
