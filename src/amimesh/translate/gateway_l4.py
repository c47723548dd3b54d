"""A gateway's TCP and TLS-passthrough ports (`gateway_servers` plans them).

- A TCP port's one filter chain proxies each connection to the destinations of the
  first `tcp` route that applies (`l4_routes`) among the VirtualServices bound to its
  servers whose hosts meet the servers' hosts.
- A passthrough port (TLS, or HTTPS with mode PASSTHROUGH) has one filter chain per
  `tls` route, picked by the client's SNI (a TLS inspector reads it; a route's
  `sniHosts` within the server's hosts); the connection is passed through, never
  terminated, so the destination holds the certificate.

AuthorizationPolicies selecting the gateway apply as on a sidecar's TCP ports (network
RBAC before the proxy, `authz_tcp`). A port with no route gets no listener (it is not
opened): Envoy takes no listener without a filter chain.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2

from amimesh.model import authz
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.translate import access_log, authz_tcp, gateway_routes, gateway_servers, l4_routes
from amimesh.translate.listener_hcm import (
    FilterChain,
    Listener,
    listener,
    tcp_proxy_filter,
    tls_inspector,
)
from amimesh.translate.reporting import Reporting


def _bound(snap: Snapshot, s: gateway_servers.BoundServer) -> list[net.VirtualService]:
    """The VirtualServices bound to server `s` whose hosts meet its hosts."""
    server_hosts = [gw.split_host(h) for h in s.server.hosts]
    out = []
    for vs in snap.virtual_services_for_gateway(*s.ref):
        if any(
            gateway_routes.admits(ns, vs, s.gateway)
            and gateway_routes.intersect(h.lower(), server_host.lower()) is not None
            for h in vs.spec.hosts
            for ns, server_host in server_hosts
        ):
            out.append(vs)
    return out


def _covered(sni: str, s: gateway_servers.BoundServer) -> bool:
    return any(
        gateway_routes.intersect(sni, gw.split_host(h)[1].lower()) is not None
        for h in s.server.hosts
    )


def port_listener(
    snap: Snapshot,
    proxy: Proxy,
    p: gateway_servers.PortPlan,
    address: str,
    rep: Reporting,
    policies: authz.InboundPolicies,
) -> Listener | None:
    """The listener of a TCP or passthrough port, or None when no route applies."""
    rbac = authz_tcp.network_filters(policies, p)
    logs = rep.tcp_logs(access_log.OUTBOUND)
    stat = f"gateway_{p.l4}_{p.port}"
    chains: list[FilterChain] = []
    taken: set[str] = set()
    for s in p.servers:
        place = l4_routes.Place(p.port, proxy.namespace, proxy.labels, s.ref, address)
        services = _bound(snap, s)
        if p.l4 == "tcp":
            found = l4_routes.tcp_route(snap, services, place)
            if found:
                chains = [FilterChain(filters=[*rbac, tcp_proxy_filter(stat, logs, found)])]
                break
            continue
        for sni, weighted in l4_routes.tls_routes(snap, services, place):
            names = [n for n in sni if n not in taken and _covered(n, s)]
            if not names:
                continue
            taken.update(names)
            chain = FilterChain(filters=[*rbac, tcp_proxy_filter(stat, logs, weighted)])
            chain.filter_chain_match.server_names.extend(names)
            chains.append(chain)
    if not chains:
        return None
    name = f"gateway|{p.port}"
    out = listener(name, address, p.listen_port, base_pb2.OUTBOUND, chains)
    if p.l4 == "passthrough":
        out.listener_filters.append(tls_inspector())
    return out
