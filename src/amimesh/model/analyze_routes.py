"""`ami analyze` checks of VirtualServices: hosts, subsets, ports, delegates, gateways."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

from amimesh.model import hosts
from amimesh.model.analyze_findings import (
    CONFLICTING_HOSTS,
    GATEWAY_KIND,
    HOST_WITHOUT_SERVICE,
    MESH_GATEWAY,
    UNKNOWN_DELEGATE,
    UNKNOWN_GATEWAY,
    UNKNOWN_HOST,
    UNKNOWN_PORT,
    UNKNOWN_SUBSET,
    UNUSED_DELEGATE,
    Finding,
    finding,
    of_type,
)
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.resources import istio_networking as net

# --- VirtualService ------------------------------------------------------------------


def _mesh_bound(vs: net.VirtualService) -> bool:
    return not vs.spec.gateways or MESH_GATEWAY in vs.spec.gateways


def virtual_service_findings(snap: Snapshot) -> Iterator[Finding]:
    services = of_type(snap, net.VirtualService)
    gateways = {(ns, name) for kind, ns, name in snap.resources if kind == GATEWAY_KIND}
    conflicts = _conflicting_hosts(snap, services)
    used_delegates: set[tuple[str, str]] = set()
    for vs in services:
        for field, gw in _gateway_refs(vs):
            yield from _gatewayfinding(vs, field, gw, gateways)
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
            for j, m in enumerate(http.mirrors):
                where = f"{base}.mirrors[{j}].destination"
                yield from _destination_findings(snap, vs, where, m.destination)
            if http.delegate is not None:
                ns = http.delegate.namespace or vs.namespace
                used_delegates.add((ns, http.delegate.name))
                yield from _delegate_findings(snap, vs, f"{base}.delegate", http.delegate)
        l4: list[tuple[str, list[net.RouteDestination]]] = [
            *((f"spec.tcp[{i}]", r.route) for i, r in enumerate(vs.spec.tcp)),
            *((f"spec.tls[{i}]", r.route) for i, r in enumerate(vs.spec.tls)),
        ]
        for base, route in l4:
            for j, d in enumerate(route):
                where = f"{base}.route[{j}].destination"
                yield from _destination_findings(snap, vs, where, d.destination)
    for vs in services:
        if not vs.spec.hosts and (vs.namespace, vs.name) not in used_delegates:
            yield finding(
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


def _gatewayfinding(
    vs: net.VirtualService, field: str, ref: str, gateways: set[tuple[str, str]]
) -> Iterator[Finding]:
    if ref == MESH_GATEWAY:
        return
    ns, _, name = ref.rpartition("/")
    key = (ns or vs.namespace, name)
    if key in gateways:
        return
    yield finding(
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


def _gateway_bound(vs: net.VirtualService) -> bool:
    """Whether `vs` is bound to a Gateway too: a host of it that names no service is
    then served there (a Knative route's domain), not a route nobody uses."""
    return any(g != "mesh" for g in vs.spec.gateways)


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
        yield finding(
            CONFLICTING_HOSTS,
            vs,
            field,
            f'host "{resolved}" is also routed by {", ".join(others)}',
            "merge them into one VirtualService: Ami concatenates their routes in "
            "namespace/name order, an order Istio does not promise",
        )
    if snap.service(resolved) is None and not _gateway_bound(vs):
        yield finding(
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
        yield finding(
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
        yield finding(
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
        yield finding(
            UNKNOWN_SUBSET,
            vs,
            f"{field}.subset",
            f'subset "{subset}" of {hostname} is not defined: no DestinationRule for '
            "that host; requests routed there get 503",
            f'add a DestinationRule with host {hostname} and a subset named "{subset}"',
        )
    elif snap.subset_labels(hostname, subset) is None:
        names = ", ".join(s.name for s in rule.spec.subsets) or "(none)"
        yield finding(
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
        yield finding(
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
        yield finding(
            UNKNOWN_DELEGATE,
            vs,
            f"{field}.name",
            f"delegate VirtualService {ns}/{ref.name} is not exported to {vs.namespace}",
            f'add "{vs.namespace}" to its spec.exportTo',
        )
