"""The sidecar's outbound route table "outbound": VirtualServices → Envoy virtual hosts.

Apps reach the mesh through the sidecar's explicit-proxy listener (HTTP_PROXY), which
routes by the request's Host with this one RouteConfiguration.

Virtual hosts. One per (service, HTTP port), named `HOST:PORT`. Its domains are every
name a client in the proxy's namespace may use, each with `:PORT`: for a Kubernetes
service `svc` (same namespace only), `svc.ns`, `svc.ns.svc` and `svc.ns.svc.DOMAIN`; for
a ServiceEntry its host. A request without a port in its Host means port 80 to HTTP
clients, so the portless names go to the service's port 80 if it has one, else to its
first HTTP port (the only one, for most services). Ports of other protocols (TCP, TLS,
HTTPS, ...) get no virtual host: nothing HTTP reaches them through this table. Envoy
rejects a domain named twice in one table, so a name already taken (by an earlier
service in hostname order) is left out.

Routes. A service with VirtualServices (bound to the mesh: `gateways` empty or
containing `mesh`, and exported to the proxy's namespace) gets their http routes, merged
in snapshot order with delegates inlined (see `route_delegate`), each VirtualService's
routes stopping at its first catch-all, and catch-all routes moved last (stable). Exact
hosts win; otherwise the most specific wildcard VirtualService (`*.example.com`) that
covers the service applies. A VirtualService host that is no service gets a virtual
host on port 80 (the host and `host:80`), as in Istio. If no VirtualService route
applies to this proxy and port, the virtual host gets Istio's default route: everything
to `outbound|PORT||HOST`, no timeout, the default retry policy.

Memo. Building routes is the costly part; a caller that keeps a `RouteMemo` per
sharing key gets each (service, port)'s routes rebuilt only when something they read
changed: the service, its VirtualServices and their delegates, and the services and
DestinationRules of every host they name. The snapshot keeps unchanged values as the
same objects, so the check is by identity.

Sharing. The table depends on the proxy's namespace (short names, sourceNamespace,
exportTo) and on the values of the labels that some sourceLabels names, so proxies that
agree on those share one table (`sharing_key`). Gateways get no table here (see
`gateway_routes`); a sidecar's upstream ports reuse these routes (`route_upstream`).
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterable, Mapping

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from amimesh.model import hosts, sidecars
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.resources import istio_networking as net
from amimesh.translate import (
    names,
    outbound_policy,
    route_action,
    route_delegate,
    route_intercept,
    route_list,
    route_match,
)

HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
DEFAULT_ROUTE_NAME = "default"
# Istio's limit for directResponse bodies; Envoy's own default is 4 KiB.
MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024

# (hostname, port) -> (the inputs read, by identity; the routes built from them).
RouteMemo = dict[tuple[str, int], tuple[tuple[object, ...], list[rc.Route]]]

_label_keys: weakref.WeakKeyDictionary[Snapshot, tuple[str, ...]] = weakref.WeakKeyDictionary()


def sharing_key(snap: Snapshot, proxy: Proxy) -> Hashable:
    """Proxies with equal keys get equal route tables from `route_configs`."""
    keys = _label_keys.get(snap)
    if keys is None:
        keys = _source_label_keys(snap)
        _label_keys[snap] = keys
    return (
        proxy.kind,
        proxy.namespace,
        tuple((k, proxy.labels.get(k)) for k in keys),
        imports_of(snap, proxy),
    )


def imports_of(snap: Snapshot, proxy: Proxy) -> sidecars.Imports:
    """What the proxy's Sidecar lets it import (everything for a gateway)."""
    if proxy.kind != "sidecar":
        return sidecars.EVERYTHING
    found = sidecars.sidecar_for(snap, proxy.namespace, proxy.labels)
    return sidecars.imports(found, proxy.namespace)


def route_configs(
    snap: Snapshot, proxy: Proxy, memo: RouteMemo | None = None
) -> list[route_pb2.RouteConfiguration]:
    """The "outbound" table of a sidecar; `memo` (one per `sharing_key`) saves rebuilding.

    A sidecar's upstream tables come from `route_upstream`, a gateway's from
    `gateway_routes`."""
    if proxy.kind != "sidecar":
        return []
    return [outbound(snap, proxy.namespace, proxy.labels, memo, imports_of(snap, proxy))]


def service_port_routes(
    snap: Snapshot,
    namespace: str,
    labels: Mapping[str, str],
    hostname: str,
    port: int,
    memo: RouteMemo | None = None,
) -> list[rc.Route] | None:
    """The routes the "outbound" table of a sidecar in `namespace` with `labels` has for
    `hostname`:`port` (Istio's default route when no VirtualService applies); None if
    there is no such service. `memo` is the one `route_configs` uses for that proxy."""
    svc = snap.service(hostname)
    if svc is None:
        return None
    return _Table(snap, namespace, labels, memo if memo is not None else {}).service_routes(
        svc, port
    )


def outbound(
    snap: Snapshot,
    namespace: str,
    labels: Mapping[str, str],
    memo: RouteMemo | None = None,
    imports: sidecars.Imports = sidecars.EVERYTHING,
) -> route_pb2.RouteConfiguration:
    """The "outbound" table for a sidecar in `namespace` with `labels`, of the hosts
    its Sidecar `imports`, ending with the Sidecar's outboundTrafficPolicy (if it sets
    one) for any other host."""
    table = _Table(snap, namespace, labels, memo if memo is not None else {}, imports)
    for hostname in sorted(snap.services):
        svc = snap.services[hostname]
        if imports.allows_host(svc):
            table.add_service(svc)
    for host, services in _unregistered(snap):
        table.add_host(host, services)
    vhosts = table.virtual_hosts
    if imports.registry_only is not None:
        vhosts.append(outbound_policy.catch_all(registry_only=imports.registry_only))
    out = route_pb2.RouteConfiguration(name=names.OUTBOUND_ROUTE, virtual_hosts=vhosts)
    out.max_direct_response_body_size_bytes.value = MAX_DIRECT_RESPONSE_BODY_BYTES
    return out


class _Table:
    """Virtual hosts being collected for one route table."""

    def __init__(
        self,
        snap: Snapshot,
        namespace: str,
        labels: Mapping[str, str],
        memo: RouteMemo,
        imports: sidecars.Imports = sidecars.EVERYTHING,
    ) -> None:
        self.snap = snap
        self.imports = imports
        self.namespace = namespace
        self.labels = labels
        self.memo = memo
        self.virtual_hosts: list[rc.VirtualHost] = []
        self._used: set[str] = set()

    def add_service(self, svc: MeshService) -> None:
        ports = [
            p.port
            for p in svc.ports
            if p.protocol.upper() in HTTP_PROTOCOLS and self.imports.allows(svc, p.port)
        ]
        if not ports:
            return
        portless = 80 if 80 in ports else ports[0]
        services = self._virtual_services(svc.hostname)
        forms = _name_forms(svc, self.namespace, self.snap.domain)
        inputs = _inputs(self.snap, svc, services)
        for port in ports:
            routes = self._port_routes(svc, port, services, inputs)
            self._add(f"{svc.hostname}:{port}", forms, port, port == portless, routes)

    def service_routes(self, svc: MeshService, port: int) -> list[rc.Route]:
        """The routes of `svc`'s virtual host for `port` (memoised like the table's)."""
        services = self._virtual_services(svc.hostname)
        return self._port_routes(svc, port, services, _inputs(self.snap, svc, services))

    def _port_routes(
        self,
        svc: MeshService,
        port: int,
        services: list[net.VirtualService],
        inputs: tuple[object, ...],
    ) -> list[rc.Route]:
        known = self.memo.get((svc.hostname, port))
        if known is not None and _same(known[0], inputs):
            return known[1]
        routes = self._routes(services, port) or [default_route(self.snap, svc, port)]
        routes = route_intercept.diverted(self.snap, routes)
        self.memo[(svc.hostname, port)] = (inputs, routes)
        return routes

    def add_host(self, host: str, services: list[net.VirtualService]) -> None:
        visible = [
            vs
            for vs in services
            if self._visible(vs) and self.imports.allows_name(host, vs.namespace)
        ]
        routes = route_intercept.diverted(self.snap, self._routes(visible, 80))
        if routes:
            self._add(f"{host}:80", self._host_forms(host), 80, True, routes)

    def _host_forms(self, host: str) -> list[str]:
        suffix = f".svc.{self.snap.domain}"
        parts = host.removesuffix(suffix).split(".")
        if host.endswith(suffix) and len(parts) == 2:
            return hosts.name_forms(parts[0], parts[1], self.namespace, self.snap.domain)
        return [host]

    def _add(
        self, name: str, forms: list[str], port: int, portless: bool, routes: list[rc.Route]
    ) -> None:
        domains = []
        for form in forms:
            for d in (form, f"{form}:{port}") if portless else (f"{form}:{port}",):
                if d not in self._used:
                    self._used.add(d)
                    domains.append(d)
        if domains:
            self.virtual_hosts.append(
                rc.VirtualHost(
                    name=name, domains=domains, routes=routes, include_request_attempt_count=True
                )
            )

    def _virtual_services(self, hostname: str) -> list[net.VirtualService]:
        exact = [vs for vs in self.snap.virtual_services.get(hostname, ()) if self._visible(vs)]
        if exact:
            return exact
        best: tuple[int, net.VirtualService] | None = None
        for vs in self.snap.wildcard_virtual_services:
            if not self._visible(vs):
                continue
            for h in vs.spec.hosts:
                if hosts.is_wildcard(h) and hosts.wildcard_matches(h.lower(), hostname):
                    if best is None or len(h) > best[0]:
                        best = (len(h), vs)
        return [best[1]] if best else []

    def _visible(self, vs: net.VirtualService) -> bool:
        gateways = vs.spec.gateways
        bound = not gateways or route_match.MESH_GATEWAY in gateways
        return bound and route_delegate.exported_to(vs, self.namespace)

    def _routes(self, services: Iterable[net.VirtualService], port: int) -> list[rc.Route]:
        return route_list.http_routes(
            self.snap, services, port=port, namespace=self.namespace, labels=self.labels
        )


def _inputs(
    snap: Snapshot, svc: MeshService, services: Iterable[net.VirtualService]
) -> tuple[object, ...]:
    """Everything the routes of `svc` read from the snapshot, as a flat tuple."""
    found: list[net.VirtualService | None] = list(services)
    for vs in list(found):
        assert vs is not None
        for http in vs.spec.http:
            if http.delegate is not None:
                found.append(
                    snap.delegate(http.delegate.name, http.delegate.namespace or vs.namespace)
                )
    named = {svc.hostname}
    for vs in found:
        if vs is None:
            continue
        for http in vs.spec.http:
            dests = [r.destination for r in http.route]
            if http.mirror is not None:
                dests.append(http.mirror)
            for d in dests:
                named.add(d.host.lower())
                named.add(snap.resolve(d.host, vs.namespace))
    out: list[object] = [svc, *found]
    for h in sorted(named):
        out += [h, snap.services.get(h), snap.destination_rules.get(h), snap.intercepts.get(h)]
    return tuple(out)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(
        x is y or (type(x) is str and x == y) for x, y in zip(a, b, strict=True)
    )


def default_route(snap: Snapshot, svc: MeshService, port: int) -> rc.Route:
    """Istio's route for a service without VirtualService: all of it to its port."""
    http = net.HTTPRoute(
        route=[
            net.HTTPRouteDestination(
                destination=net.Destination(host=svc.hostname, port=net.PortSelector(number=port))
            )
        ]
    )
    out = rc.Route(name=DEFAULT_ROUTE_NAME, match=rc.RouteMatch(prefix="/"))
    route_action.forward(out, http, route_action.Scope(snap, svc.namespace, port), None)
    out.decorator.operation = f"{svc.hostname}:{port}/*"
    return out


def _name_forms(svc: MeshService, namespace: str, domain: str) -> list[str]:
    if svc.origin == "kubernetes":
        return hosts.name_forms(svc.name, svc.namespace, namespace, domain)
    return [svc.hostname]


def _unregistered(snap: Snapshot) -> list[tuple[str, list[net.VirtualService]]]:
    """VirtualService hosts that name no service, with their VirtualServices."""
    out: dict[str, list[net.VirtualService]] = {
        host: list(vss) for host, vss in snap.virtual_services.items() if host not in snap.services
    }
    for vs in snap.wildcard_virtual_services:
        for h in vs.spec.hosts:
            pattern = h.lower()
            if pattern == "*" or not hosts.is_wildcard(pattern):
                continue
            if not any(hosts.wildcard_matches(pattern, s) for s in snap.services):
                out.setdefault(pattern, []).append(vs)
    return sorted(out.items())


def _source_label_keys(snap: Snapshot) -> tuple[str, ...]:
    found: set[str] = set()
    services = [vs for vss in snap.virtual_services.values() for vs in vss]
    services += [*snap.wildcard_virtual_services, *snap.delegates.values()]
    for vs in services:
        for http in vs.spec.http:
            for m in http.match:
                found.update(m.sourceLabels)
    return tuple(sorted(found))
