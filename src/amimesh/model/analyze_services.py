"""`ami analyze` checks of DestinationRules and Services."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from amimesh.model import hosts
from amimesh.model.analyze_findings import (
    EMPTY_SUBSET,
    RULE_FIELD_IGNORED,
    RULE_UNKNOWN_HOST,
    SERVICE_FIELD_IGNORED,
    SERVICE_NO_TARGET_PORT,
    SERVICE_NO_WORKLOAD,
    Finding,
    finding,
    show_labels,
)
from amimesh.model.selection import selects
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.resources import contour, kube
from amimesh.resources import istio_networking as net
from amimesh.resources.workload import Workload

# --- DestinationRule -----------------------------------------------------------------


def _passthrough(r: net.DestinationRule) -> Iterator[Finding]:
    """`loadBalancer.simple: PASSTHROUGH` at any level: accepted, and meaningless here."""
    policies: list[tuple[str, net.TrafficPolicy | net.PortTrafficPolicy | None]] = [
        ("spec.trafficPolicy", r.spec.trafficPolicy)
    ]
    if r.spec.trafficPolicy is not None:
        policies += [
            (f"spec.trafficPolicy.portLevelSettings[{i}]", p)
            for i, p in enumerate(r.spec.trafficPolicy.portLevelSettings)
        ]
    for i, subset in enumerate(r.spec.subsets):
        policies.append((f"spec.subsets[{i}].trafficPolicy", subset.trafficPolicy))
    for where, policy in policies:
        lb = policy.loadBalancer if policy is not None else None
        if lb is not None and lb.simple == "PASSTHROUGH":
            yield finding(
                RULE_FIELD_IGNORED,
                r,
                f"{where}.loadBalancer.simple",
                "PASSTHROUGH (connect to the address the caller dialled) means nothing on one "
                "machine, where callers dial their sidecar, never an endpoint: the default "
                "balancing (LEAST_REQUEST) stays",
                "remove it, or choose ROUND_ROBIN, LEAST_REQUEST or RANDOM",
            )


def destination_rule_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if isinstance(r, net.DestinationRule):
            yield from _passthrough(r)
        if not isinstance(r, net.DestinationRule) or hosts.is_wildcard(r.spec.host):
            continue
        hostname = snap.resolve(r.spec.host, r.namespace)
        svc = snap.service(hostname)
        if svc is None:
            yield finding(
                RULE_UNKNOWN_HOST,
                r,
                "spec.host",
                f'host "{r.spec.host}" ({hostname}) is not a Service or ServiceEntry host, '
                "so this rule applies to nothing",
                f'fix the host (short names resolve in the namespace "{r.namespace}") '
                "or define the service",
            )
            continue
        candidates = _label_sets(snap, svc)
        if not candidates:
            continue  # the Service's own finding says it selects nothing
        for i, subset in enumerate(r.spec.subsets):
            if any(selects(subset.labels, labels) for labels in candidates):
                continue
            seen = "; ".join(sorted({show_labels(c) for c in candidates}))
            yield finding(
                EMPTY_SUBSET,
                r,
                f"spec.subsets[{i}].labels",
                f'subset "{subset.name}" ({show_labels(subset.labels)}) selects no '
                f"workload or endpoint of {hostname}; requests to it get 503",
                f"fix the subset's labels; the service's workloads carry: {seen}",
            )


def _selected_workloads(snap: Snapshot, svc: MeshService) -> list[Workload]:
    if not svc.selector:
        return []
    return [
        w
        for (ns, _), w in sorted(snap.workloads.items())
        if ns == svc.namespace and selects(svc.selector, w.metadata.labels)
    ]


def _label_sets(snap: Snapshot, svc: MeshService) -> list[Mapping[str, str]]:
    """Labels of everything that may back `svc`: Workload resources and live endpoints."""
    found: list[Mapping[str, str]] = [w.metadata.labels for w in _selected_workloads(snap, svc)]
    for p in svc.ports:
        found += [e.labels for e in snap.endpoints.get((svc.hostname, p.port), ())]
    return found


# --- Service -------------------------------------------------------------------------


def service_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if not isinstance(r, kube.Service):
            continue
        yield from _ignored_field_findings(r)
        svc = snap.service(hosts.fqdn(r.name, r.namespace, snap.domain))
        if svc is None:
            continue
        if not r.spec.selector:
            yield finding(
                SERVICE_NO_WORKLOAD,
                r,
                "spec.selector",
                "has no selector, so it has no endpoints",
                "add a selector matching the labels of a Workload",
            )
            continue
        workloads = _selected_workloads(snap, svc)
        if not workloads and not _label_sets(snap, svc):
            yield finding(
                SERVICE_NO_WORKLOAD,
                r,
                "spec.selector",
                f"selector {show_labels(r.spec.selector)} matches no Workload, "
                f"WorkloadEntry or instance in namespace {r.namespace}",
                "fix the selector, or label a Workload of that namespace to match it",
            )
            continue
        yield from _target_port_findings(r, workloads)


def _target_port_findings(r: kube.Service, workloads: Sequence[Workload]) -> Iterator[Finding]:
    if not workloads:
        return  # backed by WorkloadEntries or instances only: their ports are not declared
    for i, p in enumerate(r.spec.ports):
        target = p.targetPort if p.targetPort is not None else p.port
        if any(_declares(w, target) for w in workloads):
            continue
        field = f"spec.ports[{i}].targetPort" if p.targetPort is not None else f"spec.ports[{i}]"
        names = ", ".join(w.name for w in workloads)
        what = f'named "{target}"' if isinstance(target, str) else str(target)
        yield finding(
            SERVICE_NO_TARGET_PORT,
            r,
            field,
            f"targets port {what}, which no selected Workload ({names}) declares",
            "declare it in spec.ports of the Workload, or fix targetPort",
        )


def _declares(w: Workload, target: int | str) -> bool:
    if isinstance(target, str):
        return any(p.name == target for p in w.spec.ports)
    return any(p.port == target for p in w.spec.ports)


_ONE_MACHINE = "ignored: one machine has no node ports to open"


def _ignored_field_findings(r: kube.Service) -> Iterator[Finding]:
    """Fields a Kubernetes cluster acts on that mean nothing on one machine."""
    spec = r.spec
    if spec.type == "NodePort":
        yield finding(
            SERVICE_FIELD_IGNORED,
            r,
            "spec.type",
            'type "NodePort" is ' + _ONE_MACHINE + "; the Service works as a ClusterIP one",
            "reach it through the mesh, or through the ingress gateway from outside",
        )
    elif spec.type == "LoadBalancer":
        yield finding(
            SERVICE_FIELD_IGNORED,
            r,
            "spec.type",
            'type "LoadBalancer" is ignored: one machine has no load balancer to provision '
            "(nor node ports); the Service works as a ClusterIP one",
            "from outside, reach it through the ingress gateway (a Gateway and a route)",
        )
    for i, p in enumerate(spec.ports):
        if p.nodePort is not None:
            yield finding(
                SERVICE_FIELD_IGNORED,
                r,
                f"spec.ports[{i}].nodePort",
                f"nodePort {p.nodePort} is " + _ONE_MACHINE,
                "reach the port through the mesh, or through the ingress gateway",
            )
    if spec.ipFamilies:
        yield finding(
            SERVICE_FIELD_IGNORED,
            r,
            "spec.ipFamilies",
            f"ipFamilies ({', '.join(spec.ipFamilies)}) is ignored: Ami assigns no cluster "
            "IPs, and its proxies listen on loopback",
            "nothing to do; the field matters only on Kubernetes",
        )
    if spec.ipFamilyPolicy is not None:
        yield finding(
            SERVICE_FIELD_IGNORED,
            r,
            "spec.ipFamilyPolicy",
            f"ipFamilyPolicy {spec.ipFamilyPolicy} is ignored: Ami assigns no cluster IPs, "
            "and its proxies listen on loopback",
            "nothing to do; the field matters only on Kubernetes",
        )
    tls = contour.UPSTREAM_PROTOCOL + "tls"
    if tls in r.metadata.annotations:
        yield finding(
            SERVICE_FIELD_IGNORED,
            r,
            f"metadata.annotations[{tls}]",
            "is ignored: an app behind its sidecar is reached in clear text, and the mesh's "
            "mutual TLS already encrypts the way to it",
            "serve plain text (or h2c, with projectcontour.io/upstream-protocol.h2c) "
            "behind the sidecar",
        )
