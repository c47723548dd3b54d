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

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from amimesh.model import hosts
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.resources.workload import Workload

Severity = Literal["Error", "Warning", "Info"]

MESH_GATEWAY = "mesh"
GATEWAY_KIND = "Gateway"


@dataclass(frozen=True)
class Code:
    code: str
    severity: Severity
    title: str


# Every finding Ami reports. Codes are stable: scripts and docs may name them.
UNKNOWN_HOST = Code("AMI0101", "Error", "VirtualService routes to an unknown host")
UNKNOWN_SUBSET = Code("AMI0102", "Error", "VirtualService routes to an undefined subset")
UNKNOWN_PORT = Code("AMI0103", "Error", "VirtualService routes to a port the service lacks")
UNKNOWN_DELEGATE = Code("AMI0104", "Error", "VirtualService delegates to a missing delegate")
UNKNOWN_GATEWAY = Code("AMI0105", "Error", "VirtualService is bound to a missing Gateway")
CONFLICTING_HOSTS = Code("AMI0106", "Warning", "several VirtualServices for one host")
HOST_WITHOUT_SERVICE = Code("AMI0107", "Warning", "VirtualService host names no service")
UNUSED_DELEGATE = Code("AMI0108", "Info", "delegate VirtualService is used by no route")
RULE_UNKNOWN_HOST = Code("AMI0201", "Warning", "DestinationRule for an unknown host")
EMPTY_SUBSET = Code("AMI0202", "Warning", "DestinationRule subset selects no workload")
SERVICE_NO_WORKLOAD = Code("AMI0301", "Warning", "Service selects no workload")
SERVICE_NO_TARGET_PORT = Code("AMI0302", "Warning", "no selected workload declares targetPort")

CODES: tuple[Code, ...] = (
    UNKNOWN_HOST,
    UNKNOWN_SUBSET,
    UNKNOWN_PORT,
    UNKNOWN_DELEGATE,
    UNKNOWN_GATEWAY,
    CONFLICTING_HOSTS,
    HOST_WITHOUT_SERVICE,
    UNUSED_DELEGATE,
    RULE_UNKNOWN_HOST,
    EMPTY_SUBSET,
    SERVICE_NO_WORKLOAD,
    SERVICE_NO_TARGET_PORT,
)


@dataclass(frozen=True)
class Finding:
    """One problem: `field` is a path such as `spec.http[0].route[1].destination.host`."""

    code: str
    severity: Severity
    kind: str
    namespace: str
    name: str
    field: str
    message: str
    hint: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, str]:
        """JSON form, as the API and `ami analyze -o json` give it."""
        return {
            "code": self.code,
            "severity": self.severity,
            "resource": self.ref,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


def analyze(snap: Snapshot) -> list[Finding]:
    """Every finding for the resources of `snap`, in a stable order."""
    found: list[Finding] = []
    found += _virtual_service_findings(snap)
    found += _destination_rule_findings(snap)
    found += _service_findings(snap)
    order = {key: i for i, key in enumerate(sorted(snap.resources))}
    # Stable sort: per resource, findings keep the order their checks produced.
    return sorted(found, key=lambda f: order.get(f.key, len(order)))


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "Error" for f in findings)


def _finding(
    code: Code,
    resource: net.VirtualService | net.DestinationRule | kube.Service,
    field: str,
    message: str,
    hint: str,
) -> Finding:
    return Finding(
        code=code.code,
        severity=code.severity,
        kind=resource.kind,
        namespace=resource.namespace,
        name=resource.name,
        field=field,
        message=message,
        hint=hint,
    )


def _of_type(snap: Snapshot, kind: type[net.VirtualService]) -> list[net.VirtualService]:
    return [r for r in snap.resources.values() if isinstance(r, kind)]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _show_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


# --- VirtualService ------------------------------------------------------------------


def _mesh_bound(vs: net.VirtualService) -> bool:
    return not vs.spec.gateways or MESH_GATEWAY in vs.spec.gateways


def _virtual_service_findings(snap: Snapshot) -> Iterator[Finding]:
    services = _of_type(snap, net.VirtualService)
    gateways = {(ns, name) for kind, ns, name in snap.resources if kind == GATEWAY_KIND}
    conflicts = _conflicting_hosts(snap, services)
    used_delegates: set[tuple[str, str]] = set()
    for vs in services:
        for field, gw in _gateway_refs(vs):
            yield from _gateway_finding(vs, field, gw, gateways)
        for i, host in enumerate(vs.spec.hosts):
            field = f"spec.hosts[{i}]"
            yield from _host_findings(snap, vs, field, host, conflicts)
        for i, http in enumerate(vs.spec.http):
            base = f"spec.http[{i}]"
            for j, dest in enumerate(http.route):
                yield from _destination_findings(
                    snap, vs, f"{base}.route[{j}].destination", dest.destination
                )
            if http.mirror is not None:
                yield from _destination_findings(snap, vs, f"{base}.mirror", http.mirror)
            if http.delegate is not None:
                ns = http.delegate.namespace or vs.namespace
                used_delegates.add((ns, http.delegate.name))
                yield from _delegate_findings(snap, vs, f"{base}.delegate", http.delegate)
    for vs in services:
        if not vs.spec.hosts and (vs.namespace, vs.name) not in used_delegates:
            yield _finding(
                UNUSED_DELEGATE,
                vs,
                "spec.hosts",
                "has no hosts, so it is a delegate, and no VirtualService delegates to it",
                "name it in a route's delegate, or give it hosts",
            )


def _gateway_refs(vs: net.VirtualService) -> Iterator[tuple[str, str]]:
    for i, gw in enumerate(vs.spec.gateways):
        yield f"spec.gateways[{i}]", gw
    for i, http in enumerate(vs.spec.http):
        for j, match in enumerate(http.match):
            for k, gw in enumerate(match.gateways):
                yield f"spec.http[{i}].match[{j}].gateways[{k}]", gw


def _gateway_finding(
    vs: net.VirtualService, field: str, ref: str, gateways: set[tuple[str, str]]
) -> Iterator[Finding]:
    if ref == MESH_GATEWAY:
        return
    ns, _, name = ref.rpartition("/")
    key = (ns or vs.namespace, name)
    if key in gateways:
        return
    yield _finding(
        UNKNOWN_GATEWAY,
        vs,
        field,
        f'is bound to Gateway "{key[0]}/{key[1]}", which does not exist',
        f'create Gateway {key[0]}/{key[1]}, or write "NAMESPACE/NAME" of an existing one'
        f' (or "{MESH_GATEWAY}" for sidecars)',
    )


def _conflicting_hosts(
    snap: Snapshot, services: Sequence[net.VirtualService]
) -> dict[str, list[net.VirtualService]]:
    """Fully qualified host -> the mesh-bound VirtualServices naming it, when several do."""
    by_host: dict[str, list[net.VirtualService]] = defaultdict(list)
    for vs in services:
        if not _mesh_bound(vs):
            continue
        for h in vs.spec.hosts:
            if hosts.is_wildcard(h):
                continue
            host = snap.resolve(h, vs.namespace)
            if vs not in by_host[host]:
                by_host[host].append(vs)
    return {h: found for h, found in by_host.items() if len(found) > 1}


def _host_findings(
    snap: Snapshot,
    vs: net.VirtualService,
    field: str,
    host: str,
    conflicts: Mapping[str, list[net.VirtualService]],
) -> Iterator[Finding]:
    if hosts.is_wildcard(host) or not _mesh_bound(vs):
        return
    resolved = snap.resolve(host, vs.namespace)
    others = [o.ref for o in conflicts.get(resolved, ()) if o is not vs]
    if others:
        yield _finding(
            CONFLICTING_HOSTS,
            vs,
            field,
            f'host "{resolved}" is also routed by {", ".join(others)}',
            "merge them into one VirtualService: Ami concatenates their routes in "
            "namespace/name order, an order Istio does not promise",
        )
    if snap.service(resolved) is None:
        yield _finding(
            HOST_WITHOUT_SERVICE,
            vs,
            field,
            f'host "{host}" ({resolved}) is not a Service or ServiceEntry host, '
            "so sidecars never route by this VirtualService",
            f"define a Service or ServiceEntry for {resolved}, or bind it to a Gateway",
        )


def _destination_findings(
    snap: Snapshot, vs: net.VirtualService, field: str, dest: net.Destination
) -> Iterator[Finding]:
    hostname = snap.resolve(dest.host, vs.namespace)
    svc = snap.service(hostname)
    if svc is None:
        expanded = f" ({hostname})" if hostname != dest.host else ""
        yield _finding(
            UNKNOWN_HOST,
            vs,
            f"{field}.host",
            f'host "{dest.host}"{expanded} is not a Service or ServiceEntry host; '
            "requests routed there get 503",
            f'define a Service or ServiceEntry for "{dest.host}", or fix the host '
            f'(short names resolve in the namespace "{vs.namespace}")',
        )
        return
    if dest.port is not None and svc.port(dest.port.number) is None:
        yield _finding(
            UNKNOWN_PORT,
            vs,
            f"{field}.port.number",
            f"service {hostname} has no port {dest.port.number}",
            f"use one of its ports: {_ports(svc)}",
        )
    if dest.subset:
        yield from _subset_findings(snap, vs, field, hostname, dest.subset)


def _ports(svc: MeshService) -> str:
    return ", ".join(str(p.port) for p in svc.ports) or "(none)"


def _subset_findings(
    snap: Snapshot, vs: net.VirtualService, field: str, hostname: str, subset: str
) -> Iterator[Finding]:
    rule = snap.destination_rule(hostname)
    if rule is None:
        yield _finding(
            UNKNOWN_SUBSET,
            vs,
            f"{field}.subset",
            f'subset "{subset}" of {hostname} is not defined: no DestinationRule for '
            "that host; requests routed there get 503",
            f'add a DestinationRule with host {hostname} and a subset named "{subset}"',
        )
    elif snap.subset_labels(hostname, subset) is None:
        names = ", ".join(s.name for s in rule.spec.subsets) or "(none)"
        yield _finding(
            UNKNOWN_SUBSET,
            vs,
            f"{field}.subset",
            f'subset "{subset}" is not defined by DestinationRule {rule.namespace}/'
            f"{rule.name}; requests routed there get 503",
            f'add subset "{subset}" to that DestinationRule, or use one of: {names}',
        )


def _delegate_findings(
    snap: Snapshot, vs: net.VirtualService, field: str, ref: net.Delegate
) -> Iterator[Finding]:
    ns = ref.namespace or vs.namespace
    child = snap.delegate(ref.name, ns)
    if child is None:
        other = snap.resources.get(("VirtualService", ns, ref.name))
        why = "has hosts, so it cannot be a delegate" if other is not None else "does not exist"
        yield _finding(
            UNKNOWN_DELEGATE,
            vs,
            f"{field}.name",
            f"delegates to VirtualService {ns}/{ref.name}, which {why}; the route gets no traffic",
            f"create VirtualService {ns}/{ref.name} with no hosts, or fix the delegate",
        )
        return
    export = child.spec.exportTo
    visible = (
        not export
        or "*" in export
        or vs.namespace in export
        or ("." in export and ns == vs.namespace)
    )
    if not visible:
        yield _finding(
            UNKNOWN_DELEGATE,
            vs,
            f"{field}.name",
            f"delegate VirtualService {ns}/{ref.name} is not exported to {vs.namespace}",
            f'add "{vs.namespace}" to its spec.exportTo',
        )


# --- DestinationRule -----------------------------------------------------------------


def _destination_rule_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if not isinstance(r, net.DestinationRule) or hosts.is_wildcard(r.spec.host):
            continue
        hostname = snap.resolve(r.spec.host, r.namespace)
        svc = snap.service(hostname)
        if svc is None:
            yield _finding(
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
            if any(_selects(subset.labels, labels) for labels in candidates):
                continue
            seen = "; ".join(sorted({_show_labels(c) for c in candidates}))
            yield _finding(
                EMPTY_SUBSET,
                r,
                f"spec.subsets[{i}].labels",
                f'subset "{subset.name}" ({_show_labels(subset.labels)}) selects no '
                f"workload or endpoint of {hostname}; requests to it get 503",
                f"fix the subset's labels; the service's workloads carry: {seen}",
            )


def _selected_workloads(snap: Snapshot, svc: MeshService) -> list[Workload]:
    if not svc.selector:
        return []
    return [
        w
        for (ns, _), w in sorted(snap.workloads.items())
        if ns == svc.namespace and _selects(svc.selector, w.metadata.labels)
    ]


def _label_sets(snap: Snapshot, svc: MeshService) -> list[Mapping[str, str]]:
    """Labels of everything that may back `svc`: Workload resources and live endpoints."""
    found: list[Mapping[str, str]] = [w.metadata.labels for w in _selected_workloads(snap, svc)]
    for p in svc.ports:
        found += [e.labels for e in snap.endpoints.get((svc.hostname, p.port), ())]
    return found


# --- Service -------------------------------------------------------------------------


def _service_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if not isinstance(r, kube.Service):
            continue
        svc = snap.service(hosts.fqdn(r.name, r.namespace, snap.domain))
        if svc is None:
            continue
        if not r.spec.selector:
            yield _finding(
                SERVICE_NO_WORKLOAD,
                r,
                "spec.selector",
                "has no selector, so it has no endpoints",
                "add a selector matching the labels of a Workload",
            )
            continue
        workloads = _selected_workloads(snap, svc)
        if not workloads and not _label_sets(snap, svc):
            yield _finding(
                SERVICE_NO_WORKLOAD,
                r,
                "spec.selector",
                f"selector {_show_labels(r.spec.selector)} matches no Workload, "
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
        yield _finding(
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
