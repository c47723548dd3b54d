"""Gateway API resources → the mesh's Istio-model resources, and the API's status.

    out = convert(resources, now="2026-01-01T00:00:00Z")
    out.derived      # Istio Gateways and VirtualServices, as documents
    out.status       # (qualified kind, namespace, name) -> the Gateway API status

What is converted:

- A Gateway of a class Ami implements (`ami`, `istio`, or a GatewayClass whose
  controllerName is one of `CONTROLLERS`) runs on the mesh's ingress gateway: each
  listener Ami serves (HTTP; HTTPS terminating TLS with its first certificateRef as
  the server's `credentialName`) becomes an Istio Gateway `GATEWAY-gwapi-LISTENER`
  selecting that gateway, with one server whose host is the listener's hostname;
  a TCP listener a TCP server (every host), a TLS listener with mode Passthrough a
  TLS PASSTHROUGH server. A TLS listener terminating TLS, a UDP one and an HBONE one
  (and every listener of an ambient waypoint) are not served; their status says why.
- Routes attached to a Gateway become one VirtualService per (listener, hostname),
  bound to the listener's Istio Gateway, holding the rules of every route attached
  there, sorted by the API's precedence (`http`). TCPRoutes on a TCP listener become
  its VirtualService's `tcp` routes; TLSRoutes on a passthrough listener, per
  hostname shared with the listener (the SNI name), `tls` routes (`streams`).
- Routes whose parentRef is a Service (GAMMA) become a VirtualService for that
  service's host in the route's namespace: exported everywhere when the route lives in
  the service's namespace (a producer route), to its own namespace only otherwise (a
  consumer route). A parentRef `port` limits the routes to that service port. A
  mesh TCPRoute's `tcp` routes get a VirtualService of their own.
- A backend (or a certificate) in another namespace needs a ReferenceGrant there; a
  backend that is not permitted or not found is left out of the split and named in
  the route's ResolvedRefs condition; a rule left with no backend answers 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from amimesh.gatewayapi import gateways, hostnames, http, refs, streams
from amimesh.gatewayapi.status import condition
from amimesh.gatewayapi.world import (
    BUILTIN_CLASSES,
    CONTROLLER,
    CONTROLLERS,
    Key,
    Route,
    World,
    bounded,
    service_host,
)
from amimesh.resources import gateway_api as ga
from amimesh.resources.meta import Resource


@dataclass(frozen=True)
class Conversion:
    derived: list[dict[str, Any]]
    status: dict[Key, dict[str, Any]]


@dataclass
class _Stream:
    """A VirtualService of `tcp` routes (a TCP listener's, or a service's for the mesh)
    or of `tls` routes (a passthrough listener's for one SNI name)."""

    spec: dict[str, Any]
    field: str  # "tcp" or "tls"
    key: str | None = None  # tls: the SNI name
    port: int | None = None  # tcp on the mesh: the service port
    entries: list[streams.Entry] = dc_field(default_factory=list)

    def routes(self) -> list[dict[str, Any]]:
        if self.field == "tls":
            assert self.key is not None
            return streams.tls_routes(self.entries, self.key)
        return streams.tcp_routes(self.entries, self.port)


Streams = dict[tuple[str, str], _Stream]


def convert(resources: Iterable[Resource], *, now: str) -> Conversion:
    """Istio Gateways and VirtualServices for the Gateway API resources among
    `resources`, and the status of each of those (`now` stamps its conditions)."""
    world = World(resources)
    derived: list[dict[str, Any]] = []
    status: dict[Key, dict[str, Any]] = {}
    listeners: dict[tuple[str, str], list[gateways.Listener]] = {}
    ports = gateways.Ports()
    for key, gateway in sorted(world.gateways.items()):
        if world.controller(gateway) is None:
            continue
        listeners[key] = [
            gateways.listener(world, gateway, x, derived, ports, now)
            for x in gateway.spec.listeners
        ]
    # (vs namespace, vs name) -> (the VirtualService without http, its entries)
    groups: dict[tuple[str, str], tuple[dict[str, Any], list[http.Entry]]] = {}
    l4: Streams = {}
    for route in world.routes:
        parents = [
            _parent(world, route, p, listeners, groups, l4, now) for p in route.spec.parentRefs
        ]
        if parents:
            status[route.key] = {"parents": [p for p in parents if p is not None]}
    for (namespace, name), (spec, entries) in sorted(groups.items()):
        entries = _with_covering(spec, entries, groups.values())
        derived.append(
            {
                "apiVersion": gateways.ISTIO,
                "kind": "VirtualService",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": dict(http.ROUTE_SEMANTICS),
                },
                "spec": {**spec, "http": [e.route for e in entries]},
            }
        )
    for (namespace, name), stream in sorted(l4.items()):
        routes = stream.routes()
        if not routes:
            continue
        derived.append(
            {
                "apiVersion": gateways.ISTIO,
                "kind": "VirtualService",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {**stream.spec, stream.field: routes},
            }
        )
    for key, gateway in sorted(world.gateways.items()):
        if key in listeners:
            status[gateway.key] = gateways.status(gateway, listeners[key], now)
    for name, controller in sorted(world.classes.items()):
        if controller in CONTROLLERS and name not in BUILTIN_CLASSES:
            status[(ga.GatewayClass.qualified_kind(), "default", name)] = {
                "conditions": [condition("Accepted", True, "Accepted", "", now)]
            }
    return Conversion(derived, status)


def _specificity(host: str) -> tuple[int, int]:
    """Sorts the more specific hostname first among matches of equal precedence: the
    most characters of a non-wildcard hostname, then of any hostname."""
    return (0 if host.startswith("*") else -len(host), 0 if host == "*" else -len(host))


def _with_covering(
    spec: dict[str, Any],
    entries: list[http.Entry],
    groups: Iterable[tuple[dict[str, Any], list[http.Entry]]],
) -> list[http.Entry]:
    """The routes of one listener's hostname in the order served: its own, and those of
    the same listener's wildcard hostnames that cover it (a request for
    `a.example.com` matches the rules of a route for `*.example.com` too), merged by
    the API's precedence of matches; among equal matches the more specific hostname's
    first (the conformance test HTTPRouteMatchingAcrossRoutes: a `/v2` prefix of a
    `*.com` route wins over the `/` of an `example.com` route)."""
    if "gateways" not in spec:
        return sorted(entries, key=lambda e: e.order)
    [host] = spec["hosts"]
    ranked = [(_specificity(host), e) for e in entries]
    for other, more in groups:
        if other is spec or other.get("gateways") != spec["gateways"]:
            continue
        [wider] = other["hosts"]
        if wider == "*" or hostnames.covers(wider, host):
            ranked += [(_specificity(wider), e) for e in more]
    ranked.sort(key=lambda pair: (pair[1].order[: http.MATCH_RANK], pair[0], pair[1].order))
    return [e for _, e in ranked]


# --- routes ------------------------------------------------------------------------------


def _rules(world: World, route: Route, port: int | None) -> http.RuleResult:
    out = http.RuleResult([], [], [])
    resolve = world.resolver(route)
    results: list[http.RuleResult] = []
    if isinstance(route, ga.HTTPRoute):
        results = [
            http.http_rule(route, i, r, resolve, port) for i, r in enumerate(route.spec.rules)
        ]
    elif isinstance(route, ga.GRPCRoute):
        results = [
            http.grpc_rule(route, i, r, resolve, port) for i, r in enumerate(route.spec.rules)
        ]
    for r in results:
        out.entries += r.entries
        out.unresolved += r.unresolved
        out.unsupported += r.unsupported
    return out


def _parent_ref(ref: ga.ParentReference, target: refs.Ref) -> dict[str, Any]:
    out: dict[str, Any] = {
        "group": target.group,
        "kind": target.kind,
        "namespace": target.namespace,
        "name": target.name,
    }
    if ref.sectionName is not None:
        out["sectionName"] = ref.sectionName
    if ref.port is not None:
        out["port"] = ref.port
    return out


def _parent(
    world: World,
    route: Route,
    ref: ga.ParentReference,
    listeners: dict[tuple[str, str], list[gateways.Listener]],
    groups: dict[tuple[str, str], tuple[dict[str, Any], list[http.Entry]]],
    l4: Streams,
    now: str,
) -> dict[str, Any] | None:
    """Attach `route` to one parent; the parent's entry of the route's status (None
    for a Gateway of a class another controller runs)."""
    target = refs.parent(ref, route.namespace)
    controller = CONTROLLER
    mesh_port = _mesh_port(world, ref, target) if refs.is_mesh(target) else None
    rules = _rules(world, route, mesh_port)
    stream = (
        streams.rules(route, world.resolver(route))
        if isinstance(route, ga.TCPRoute | ga.TLSRoute)
        else None
    )
    unresolved = stream.unresolved if stream is not None else rules.unresolved
    accepted: tuple[bool, str, str] = (True, "Accepted", "")
    if rules.unsupported:
        accepted = (False, "UnsupportedValue", "; ".join(dict.fromkeys(rules.unsupported)))
    elif refs.is_mesh(target):
        accepted = _attach_mesh(world, route, ref, target, rules, groups)
        if accepted[0] and isinstance(route, ga.TCPRoute | ga.TLSRoute) and stream is not None:
            accepted = _attach_mesh_stream(route, target, mesh_port, stream, l4)
    elif refs.is_gateway(target):
        gateway = world.gateways.get((target.namespace, target.name))
        if gateway is not None:
            found = world.controller(gateway)
            if found is None:
                return None
            controller = found
        accepted = _attach_gateway(world, route, ref, target, rules, listeners, groups, stream, l4)
    else:
        accepted = (False, "NoMatchingParent", f"a parent of kind {target.kind} is not supported")
    if unresolved:
        reason, message = unresolved[0]
        resolved = condition("ResolvedRefs", False, reason, message, now)
    else:
        resolved = condition("ResolvedRefs", True, "ResolvedRefs", "", now)
    return {
        "parentRef": _parent_ref(ref, target),
        "controllerName": controller,
        "conditions": [condition("Accepted", *accepted, now), resolved],
    }


def _mesh_port(world: World, ref: ga.ParentReference, target: refs.Ref) -> int | None:
    """The service port a mesh parentRef names: its `port`, or the port its
    `sectionName` names (GAMMA's meaning of a Service's section), else None (every
    port; also when the name is no port of the service: `_attach_mesh` refuses it)."""
    if ref.port is not None or ref.sectionName is None:
        return ref.port
    svc = world.services.get((target.namespace, target.name))
    found = [p.port for p in svc.spec.ports if p.name == ref.sectionName] if svc else []
    return found[0] if found else None


def _attach_mesh(
    world: World,
    route: Route,
    ref: ga.ParentReference,
    target: refs.Ref,
    rules: http.RuleResult,
    groups: dict[tuple[str, str], tuple[dict[str, Any], list[http.Entry]]],
) -> tuple[bool, str, str]:
    svc = world.services.get((target.namespace, target.name))
    if svc is None:
        return False, "NoMatchingParent", f"service {target.namespace}/{target.name} not found"
    names = {p.name for p in svc.spec.ports}
    if ref.sectionName is not None and ref.sectionName not in names:
        return False, "NoMatchingParent", f"service {svc.name} has no port {ref.sectionName}"
    if ref.port is not None and all(p.port != ref.port for p in svc.spec.ports):
        return False, "NoMatchingParent", f"service {svc.name} has no port {ref.port}"
    if isinstance(route, ga.TCPRoute | ga.TLSRoute):
        return True, "Accepted", ""  # its VirtualService: `_attach_mesh_stream`
    producer = target.namespace == route.namespace
    name = bounded(
        f"{target.name}-{gateways.SUFFIX}-mesh"
        if producer
        else f"{target.name}-{target.namespace}-{gateways.SUFFIX}-mesh"
    )
    spec = {
        "hosts": [service_host(target.name, target.namespace)],
        "exportTo": ["*" if producer else "."],
    }
    groups.setdefault((route.namespace, name), (spec, []))[1].extend(rules.entries)
    return True, "Accepted", ""


def _attach_mesh_stream(
    route: streams.StreamRoute,
    target: refs.Ref,
    port: int | None,
    stream: streams.Rules,
    l4: Streams,
) -> tuple[bool, str, str]:
    """A TCPRoute on a Service: `tcp` routes for the service's host (on its `port`)."""
    if isinstance(route, ga.TLSRoute):
        return (
            False,
            "UnsupportedValue",
            "a TLSRoute whose parent is a Service (mesh routing) is not served yet; use a TCPRoute",
        )
    producer = target.namespace == route.namespace
    name = bounded(
        f"{target.name}-{gateways.SUFFIX}-mesh-tcp"
        if producer
        else f"{target.name}-{target.namespace}-{gateways.SUFFIX}-mesh-tcp"
    )
    spec = {
        "hosts": [service_host(target.name, target.namespace)],
        "exportTo": ["*" if producer else "."],
    }
    found = l4.setdefault((route.namespace, name), _Stream(spec, "tcp", port=port))
    found.entries.extend(stream.entries)
    return True, "Accepted", ""


def _attach_streams(
    route: streams.StreamRoute,
    namespace: str,
    served: list[gateways.Listener],
    stream: streams.Rules,
    l4: Streams,
) -> tuple[bool, str, str]:
    """Attach a TCPRoute or TLSRoute to the served listeners that allow it: `tcp`
    routes of each TCP listener; `tls` routes of each passthrough listener, one
    VirtualService per hostname the route and the listener share (the SNI names)."""
    attached = unnamed = False
    for x in served:
        assert x.istio_name is not None
        bound = [f"{namespace}/{x.istio_name}"]
        if isinstance(route, ga.TCPRoute):
            spec: dict[str, Any] = {"hosts": ["*"], "gateways": bound}
            name = bounded(f"{x.istio_name}-tcp")
            l4.setdefault((namespace, name), _Stream(spec, "tcp")).entries.extend(stream.entries)
        else:
            hosts = hostnames.intersect(x.spec.hostname, route.spec.hostnames)
            if hosts == [hostnames.ANY]:
                unnamed = True  # no SNI name to pass connections through by
                continue
            if not hosts:
                continue
            for host in hosts:
                spec = {"hosts": [host], "gateways": bound}
                name = bounded(f"{x.istio_name}-{host.rstrip('.').replace('*', 'wildcard')}")
                found = l4.setdefault((namespace, name), _Stream(spec, "tls", key=host))
                found.entries.extend(stream.entries)
        attached = True
        x.attached += 1
    if attached:
        return True, "Accepted", ""
    if unnamed:
        return (
            False,
            "UnsupportedValue",
            "a TLSRoute is passed through by the client's SNI name: give the route "
            "hostnames, or its listener a hostname",
        )
    return (
        False,
        "NoMatchingListenerHostname",
        "no listener's hostname matches the route's hostnames",
    )


def _attach_gateway(
    world: World,
    route: Route,
    ref: ga.ParentReference,
    target: refs.Ref,
    rules: http.RuleResult,
    listeners: dict[tuple[str, str], list[gateways.Listener]],
    groups: dict[tuple[str, str], tuple[dict[str, Any], list[http.Entry]]],
    stream: streams.Rules | None,
    l4: Streams,
) -> tuple[bool, str, str]:
    mine = listeners.get((target.namespace, target.name))
    if mine is None:
        return False, "NoMatchingParent", f"gateway {target.namespace}/{target.name} not found"
    named = [
        x
        for x in mine
        if ref.sectionName in (None, x.spec.name) and ref.port in (None, x.spec.port)
    ]
    if not named:
        return False, "NoMatchingParent", "no listener has the sectionName and port given"
    allowed = [x for x in named if gateways.allows(world, x, route)]
    if not allowed:
        return False, "NotAllowedByListeners", "no listener allows this route's kind and namespace"
    served = [x for x in allowed if x.istio_name is not None]
    if not served:
        return False, "UnsupportedValue", "the listeners that allow this route are not served"
    if stream is not None:
        assert isinstance(route, ga.TCPRoute | ga.TLSRoute)
        return _attach_streams(route, target.namespace, served, stream, l4)
    names = route.spec.hostnames if isinstance(route, ga.HTTPRoute | ga.GRPCRoute) else []
    attached = False
    for x in served:
        hosts = hostnames.intersect(x.spec.hostname, names)
        if not hosts:
            continue
        attached = True
        x.attached += 1
        assert x.istio_name is not None
        for host in hosts:
            spec = {"hosts": [host], "gateways": [f"{target.namespace}/{x.istio_name}"]}
            label = "wildcard" if host == "*" else host.rstrip(".").replace("*", "wildcard")
            name = bounded(f"{x.istio_name}-{label}")
            groups.setdefault((target.namespace, name), (spec, []))[1].extend(rules.entries)
    if not attached:
        return (
            False,
            "NoMatchingListenerHostname",
            "no listener's hostname matches the route's hostnames",
        )
    return True, "Accepted", ""
