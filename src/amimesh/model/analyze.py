"""Mistakes in a mesh's config that validate but do not do what their author meant.

`analyze(snapshot)` reads a snapshot and returns findings, like `istioctl analyze`:
each has a code, a severity, the resource and field at fault, a message and a hint.
Resources that pass validation one by one can still disagree with each other: a
route to a host nobody defines, a subset no DestinationRule declares, a Service that
selects no workload. The translators tolerate all of these (an unknown destination
answers 503, an empty subset has no endpoints); this module says so before traffic does.

Findings come in a stable order: by resource (kind, namespace, name), then in the
order of the resource's fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from amimesh.model import env_from
from amimesh.model.analyze_findings import CODES, WORKLOAD_ENV_MISSING, Code, Finding, Severity
from amimesh.model.analyze_gateways import gateway_api_findings, gateway_findings
from amimesh.model.analyze_policies import policy_findings
from amimesh.model.analyze_routes import virtual_service_findings
from amimesh.model.analyze_services import destination_rule_findings, service_findings
from amimesh.model.analyze_sidecars import sidecar_findings
from amimesh.model.analyze_telemetry import telemetry_findings
from amimesh.model.snapshot import Snapshot

__all__ = ["CODES", "Code", "Finding", "Severity", "analyze", "has_errors"]


def analyze(snap: Snapshot) -> list[Finding]:
    """Every finding for the resources of `snap`, in a stable order."""
    found: list[Finding] = []
    found += virtual_service_findings(snap)
    found += destination_rule_findings(snap)
    found += service_findings(snap)
    found += gateway_findings(snap)
    found += gateway_api_findings(snap)
    found += policy_findings(snap)
    found += sidecar_findings(snap)
    found += telemetry_findings(snap)
    found += workload_findings(snap)
    order = {key: i for i, key in enumerate(sorted(snap.resources))}
    # Stable sort: per resource, findings keep the order their checks produced.
    return sorted(found, key=lambda f: order.get(f.key, len(order)))


def workload_findings(snap: Snapshot) -> list[Finding]:
    """Variables a Workload reads from a ConfigMap or Secret key that is not there."""
    sources = env_from.sources(snap.resources.values())
    return [
        Finding(
            WORKLOAD_ENV_MISSING.code,
            WORKLOAD_ENV_MISSING.severity,
            "Workload",
            m.workload.namespace,
            m.workload.name,
            m.field,
            f"{m.message}: the Workload does not run until it is there",
            "add the key, or mark the reference `optional: true` to run without it",
        )
        for m in env_from.missing(snap.workloads.values(), sources)
    ]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "Error" for f in findings)
