"""A gateway proxy's route tables: `http.PORT` per plain-text port and
`https.PORT.PORTNAME.GATEWAY.NAMESPACE` per HTTPS server (see `gateway_servers`).

Virtual hosts. A VirtualService bound to a Gateway (`gateways: [name]` or
`[namespace/name]`, see `Snapshot.virtual_services_for_gateway`) and exported to the
gateway proxy's namespace gives a server a virtual host for each of its hosts that
intersects one of the server's hosts, named `HOST:PORT`, with the more specific host of
the two as its domain: VirtualService `*` on server `shop.example.com` gives
`shop.example.com`, VirtualService `shop.example.com` on server `*` too, and
`*.example.com` on `shop.example.com` as well. Hosts are matched as written (a short
name is not expanded at a gateway). A server host `ns/host` admits VirtualServices of
namespace `ns` only (`./host`: the Gateway's own namespace; `*/host` or `host`: any).
The port of the Host header plays no part: the listener strips it.

Routes. The VirtualServices of one domain are merged in snapshot order, exactly as on a
sidecar (`route_list`): matches, splits, redirects, rewrites, direct responses, fault,
retries, timeouts, mirror, CORS, headers and delegates are the same; `match.port` is
the server's port, a match's `gateways` must name this Gateway, and `sourceLabels` and
`sourceNamespace` compare with the gateway proxy's. Destinations are the mesh's
`outbound|PORT|SUBSET|HOST` clusters, resolved from the VirtualService's namespace; a
destination of a service with several ports must name its port (else the server's
port is tried). A virtual host none of whose routes apply is left out (404).

`tls.httpsRedirect` on a plain-text server makes its virtual hosts require TLS (Envoy
answers 301 to `https://`); a redirecting server with no VirtualService still gets a
virtual host for its hosts, so that the redirect happens, as in Istio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from amimesh.model import hosts
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.translate import (
    gateway_servers,
    route_delegate,
    route_intercept,
    route_list,
    route_match,
    routes,
)

RouteConfiguration: TypeAlias = route_pb2.RouteConfiguration


@dataclass
class _Host:
    """A virtual host being collected: its VirtualServices and for which Gateway."""

    domain: str
    redirect: bool
    bound: list[tuple[net.VirtualService, tuple[str, str]]] = field(default_factory=list)


def intersect(vs_host: str, server_host: str) -> str | None:
    """The more specific of two host patterns if one covers the other, else None."""
    if hosts.wildcard_matches(server_host, vs_host):
        return vs_host
    if hosts.wildcard_matches(vs_host, server_host):
        return server_host
    return None


def admits(server_namespace: str, vs: net.VirtualService, gateway: gw.Gateway) -> bool:
    """Whether a server host's namespace part lets a VirtualService bind to it."""
    if server_namespace == "*":
        return True
    if server_namespace == ".":
        return vs.namespace == gateway.namespace
    return vs.namespace == server_namespace


def route_configs(snap: Snapshot, proxy: Proxy) -> list[RouteConfiguration]:
    """Every route table the listeners of gateway `proxy` name (`gateway_listeners`)."""
    out = []
    for p in gateway_servers.plan(snap, proxy):
        if p.l4:
            continue  # TCP and passthrough ports have no route table (`gateway_l4`)
        if p.tls:
            out += [_config(snap, proxy, s.route_name, [s], p.port) for s in p.servers]
        else:
            name = gateway_servers.http_route_name(p.port)
            out.append(_config(snap, proxy, name, list(p.servers), p.port))
    return out


def _config(
    snap: Snapshot,
    proxy: Proxy,
    name: str,
    servers: list[gateway_servers.BoundServer],
    port: int,
) -> RouteConfiguration:
    collected: dict[str, _Host] = {}
    for s in servers:
        _collect(snap, proxy, s, collected)
    vhosts = []
    for h in collected.values():
        found: list[rc.Route] = []
        for vs, ref in h.bound:
            found += route_list.http_routes(
                snap,
                [vs],
                port=port,
                namespace=proxy.namespace,
                labels=proxy.labels,
                gateway=ref,
            )
        found.sort(key=lambda r: route_match.is_catch_all(r.match))
        found = route_intercept.diverted(snap, found)
        if not found and not h.redirect:
            continue
        v = rc.VirtualHost(
            name=f"{h.domain}:{port}",
            domains=[h.domain],
            routes=found,
            include_request_attempt_count=True,
        )
        if h.redirect:
            v.require_tls = rc.VirtualHost.ALL
        vhosts.append(v)
    out = RouteConfiguration(name=name, virtual_hosts=vhosts)
    out.max_direct_response_body_size_bytes.value = routes.MAX_DIRECT_RESPONSE_BODY_BYTES
    return out


def _collect(
    snap: Snapshot, proxy: Proxy, s: gateway_servers.BoundServer, into: dict[str, _Host]
) -> None:
    gateway = s.gateway
    server_hosts = [gw.split_host(h) for h in s.server.hosts]
    for vs in snap.virtual_services_for_gateway(*s.ref):
        if not route_delegate.exported_to(vs, proxy.namespace):
            continue
        for vs_host in vs.spec.hosts:
            for ns, server_host in server_hosts:
                if not admits(ns, vs, gateway):
                    continue
                domain = intersect(vs_host.lower(), server_host.lower())
                if domain is None:
                    continue
                h = into.setdefault(domain, _Host(domain, s.https_redirect))
                # Bound through several servers of the port: its routes go in once.
                if all(vs is not seen for seen, _ in h.bound):
                    h.bound.append((vs, s.ref))
    if s.https_redirect:
        for _, server_host in server_hosts:
            into.setdefault(server_host.lower(), _Host(server_host.lower(), True))
