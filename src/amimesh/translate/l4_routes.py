"""VirtualServices' `tcp` and `tls` routes: which clusters a TCP connection goes to.

With Istio's semantics:
- a route applies when one of its `match`es holds (no match: always): `port` is the
  service port (a sidecar) or the Gateway server port (a gateway); `sourceLabels` and
  `sourceNamespace` are the proxy's; `gateways`, when set, replaces the VirtualService's
  own; `destinationSubnets` contain the address the connection was made to (on a
  sidecar's local upstream port, 127.0.0.1); a `tls` match also names `sniHosts`;
- the first applicable route of the first VirtualService (in the snapshot's order) wins;
- its destinations share the connections by weight (relative; one destination may omit
  it); a destination the mesh does not know is left out.

A connection with no route goes to the service itself (a sidecar) or is closed (a
gateway: a TCP server with no route gets no listener chain to anywhere).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from amimesh.model import hosts
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot, gateway_ref
from amimesh.resources import istio_networking as net
from amimesh.translate import names

Weighted = tuple[tuple[str, int], ...]  # (cluster, weight)


@dataclass(frozen=True)
class Place:
    """Where a connection is being routed: the proxy and the port it arrived on."""

    port: int
    namespace: str
    labels: Mapping[str, str]
    gateway: tuple[str, str] | None = None  # None: a sidecar (`mesh`)
    address: str = "127.0.0.1"


def _binds(names_: Sequence[str], vs: net.VirtualService, gateway: tuple[str, str] | None) -> bool:
    bound = names_ or ["mesh"]
    return any(gateway_ref(n, vs.namespace) == gateway for n in bound)


def matches(match: net.L4MatchAttributes, vs: net.VirtualService, place: Place) -> bool:
    if match.port is not None and match.port != place.port:
        return False
    if match.gateways and not _binds(match.gateways, vs, place.gateway):
        return False
    if any(place.labels.get(k) != v for k, v in match.sourceLabels.items()):
        return False
    if match.sourceNamespace is not None and match.sourceNamespace != place.namespace:
        return False
    if match.destinationSubnets:
        ip = ipaddress.ip_address(place.address)
        nets = [ipaddress.ip_network(s, strict=False) for s in match.destinationSubnets]
        if not any(ip in n for n in nets):
            return False
    return True


def _applies(
    matches_: Sequence[net.L4MatchAttributes], vs: net.VirtualService, place: Place
) -> bool:
    """No match list: the route applies wherever its VirtualService is bound."""
    if not matches_:
        return _binds(vs.spec.gateways, vs, place.gateway)
    return any(
        matches(m, vs, place) and (m.gateways or _binds(vs.spec.gateways, vs, place.gateway))
        for m in matches_
    )


def destinations(
    snap: Snapshot, vs: net.VirtualService, route: net.TCPRoute | net.TLSRoute, port: int
) -> Weighted:
    """The known clusters of a route's destinations, with their weights."""
    out: list[tuple[str, int]] = []
    for d in route.route:
        hostname = snap.resolve(d.destination.host, vs.namespace)
        svc = snap.service(hostname)
        if svc is None:
            continue
        if d.destination.port is not None:
            number = d.destination.port.number
        elif len(svc.ports) == 1:
            number = svc.ports[0].port
        else:
            number = port
        if svc.port(number) is None:
            continue
        subset = d.destination.subset
        if subset and snap.subset_labels(hostname, subset) is None:
            continue
        weight = d.weight if d.weight is not None else (1 if len(route.route) == 1 else 0)
        if weight > 0:
            out.append((names.outbound_cluster(number, hostname, subset), weight))
    return tuple(out)


def tcp_route(
    snap: Snapshot, services: Iterable[net.VirtualService], place: Place
) -> Weighted | None:
    """The destinations of the first tcp route that applies, or None."""
    for vs in services:
        for route in vs.spec.tcp:
            if _applies(route.match, vs, place):
                found = destinations(snap, vs, route, place.port)
                if found:
                    return found
    return None


def tls_routes(
    snap: Snapshot, services: Iterable[net.VirtualService], place: Place
) -> list[tuple[tuple[str, ...], Weighted]]:
    """(SNI names, destinations) of every applicable tls route, in order; an SNI name
    an earlier route took is not taken again (Envoy rejects two chains alike)."""
    taken: set[str] = set()
    out: list[tuple[tuple[str, ...], Weighted]] = []
    for vs in services:
        for route in vs.spec.tls:
            sni: list[str] = []
            for m in route.match:
                if matches(m, vs, place) and (
                    m.gateways or _binds(vs.spec.gateways, vs, place.gateway)
                ):
                    sni += [h.lower() for h in m.sniHosts if h.lower() not in taken]
            sni = list(dict.fromkeys(sni))
            found = destinations(snap, vs, route, place.port)
            if sni and found:
                taken.update(sni)
                out.append((tuple(sni), found))
    return out


def mesh_services(snap: Snapshot, hostname: str) -> list[net.VirtualService]:
    """The VirtualServices naming `hostname` (and wildcards covering it)."""
    found = list(snap.virtual_services.get(hostname, ()))
    found += [
        vs
        for vs in snap.wildcard_virtual_services
        if any(hosts.wildcard_matches(h.lower(), hostname) for h in vs.spec.hosts)
    ]
    return found


@dataclass(frozen=True)
class UpstreamRoutes:
    """What a sidecar's local upstream port does with a connection: `tcp`, the
    destinations of its tcp route; `tls`, its tls routes' (SNI names, destinations).
    Empty: straight to the service port (and always so for HTTP upstreams)."""

    tcp: Weighted | None = None
    tls: tuple[tuple[tuple[str, ...], Weighted], ...] = ()


HTTP_UPSTREAMS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
TLS_UPSTREAMS = frozenset({"TLS", "HTTPS"})


def upstream_routes(snap: Snapshot, proxy: Proxy) -> tuple[UpstreamRoutes, ...]:
    """Per upstream of `proxy` (in order), the routes its listener follows."""
    out = []
    for u in proxy.upstreams:
        protocol = u.protocol.upper()
        if protocol in HTTP_UPSTREAMS:
            out.append(UpstreamRoutes())
            continue
        place = Place(u.port, proxy.namespace, proxy.labels)
        services = mesh_services(snap, u.host.lower())
        if protocol in TLS_UPSTREAMS:
            out.append(UpstreamRoutes(tls=tuple(tls_routes(snap, services, place))))
        else:
            out.append(UpstreamRoutes(tcp=tcp_route(snap, services, place)))
    return tuple(out)
