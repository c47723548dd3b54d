"""`ami analyze` checks of AuthorizationPolicies and RequestAuthentications."""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.model.analyze_findings import POLICY_TARGETS_NOTHING, Finding, finding
from amimesh.model.authz import GATEWAY_API_GROUP, GATEWAY_NAME_LABEL
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_authz as authz

_WAYPOINT_KINDS = ("Service", "ServiceEntry", "GatewayClass")


def policy_findings(snap: Snapshot) -> Iterator[Finding]:
    """A policy whose target references reach no proxy: Istio would apply it only at a
    waypoint, or at a Gateway API gateway that no workload here is."""
    for r in snap.resources.values():
        if not isinstance(r, authz.AuthorizationPolicy | authz.RequestAuthentication):
            continue
        refs = r.spec.target_refs()
        if not refs:
            continue
        field = "spec.targetRefs" if r.spec.targetRefs else "spec.targetRef"
        gateways = {
            w.metadata.labels[GATEWAY_NAME_LABEL]
            for (ns, _), w in snap.workloads.items()
            if ns == r.namespace and GATEWAY_NAME_LABEL in w.metadata.labels
        }
        named = [ref for ref in refs if (ref.group, ref.kind) == (GATEWAY_API_GROUP, "Gateway")]
        if any(ref.name in gateways for ref in named):
            continue
        kinds = sorted({ref.kind for ref in refs})
        waypoint = [k for k in kinds if k in _WAYPOINT_KINDS]
        reasons = []
        if waypoint:
            reasons.append(
                f"{' and '.join(waypoint)} targets apply only at Istio's waypoint proxies, "
                "which Ami does not run"
            )
        if named:
            names = ", ".join(sorted({ref.name for ref in named}))
            reasons.append(
                f"no workload of namespace {r.namespace} is the Gateway API Gateway {names} "
                f"(labelled {GATEWAY_NAME_LABEL})"
            )
        yield finding(
            POLICY_TARGETS_NOTHING,
            r,
            field,
            "applies to no proxy: " + "; ".join(reasons) + ". Sidecars and Istio Gateways "
            "ignore a policy with target references, as in Istio",
            "to apply it to workloads, replace the target references with a selector",
        )
