"""A gateway proxy's listeners: one per Gateway server port it serves (`gateway_servers`).

Each listener, `gateway|PORT` (PORT as the Gateway writes it), binds the proxy's address
at the host port the proxy maps that server port to. Plain-text ports have one filter
chain whose HTTP connection manager takes the table `http.PORT` by RDS; HTTPS ports
have one filter chain per server, selected by SNI (`server_names`; a server with host
`*` takes any), with the server's TLS context and its table
`https.PORT.PORTNAME.GATEWAY.NAMESPACE`. A TLS inspector reads the SNI.

The connection managers are the sidecar's (`listener_hcm`), as the edge: codec AUTO,
the client's address is the remote address (`use_remote_address`), the port is
stripped from Host before routing (so `shop.example.com:8443` matches the virtual host
`shop.example.com`), and the HTTP filters are gRPC-Web (a browser's gRPC-Web request
becomes gRPC upstream), CORS (configured per route), the security policies that select
the gateway (`inbound_filters`: `jwt_authn`, then RBAC for DENY, AUDIT and ALLOW, as on
a sidecar's inbound ports), fault (configured per route), then the router. They write
the gateway's access log, if it has one (`access_log`, direction `outbound`).

The security filters come after CORS so that a CORS preflight the route's `corsPolicy`
allows is answered at the edge without asking for a token or a permission (a browser
sends neither with it; in the mesh, too, the caller's sidecar answers preflights before
the destination's policies run), and so that a 401 or 403 still carries the CORS
headers a browser needs to read it. They come before fault, so a refused request is
never delayed or aborted by fault injection instead. Port conditions of the policies
(`ports`, `destination.port`) compare with the Gateway server port; the client's
address (`remoteIpBlocks`) is the connection's peer, X-Forwarded-For being trusted from
no hop (`use_remote_address` with no trusted hops, Istio's default).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.grpc_web.v3 import grpc_web_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2

from amimesh.model import authz
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import (
    access_log,
    gateway_l4,
    gateway_servers,
    gateway_tls,
    inbound_filters,
    reporting,
)
from amimesh.translate.listener_hcm import (
    CORS_FILTER,
    FAULT_FILTER,
    HCM,
    LOCALHOST,
    ROUTER_FILTER,
    FilterChain,
    HttpFilter,
    Listener,
    hcm,
    hcm_filter,
    http_filter,
    listener,
    peer_header_filter,
    tls_inspector,
    use_rds,
)

GRPC_WEB_FILTER = "envoy.filters.http.grpc_web"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


def listener_name(port: int) -> str:
    return f"gateway|{port}"


def gateway_http_filters(peer: str, security: Sequence[HttpFilter] = ()) -> list[HttpFilter]:
    """The HTTP filters of a gateway connection manager, with `security` (the
    `inbound_filters` of the gateway's policies) after CORS and before fault."""
    return [
        peer_header_filter(peer),
        http_filter(GRPC_WEB_FILTER, grpc_web_pb2.GrpcWeb()),
        http_filter(CORS_FILTER, cors_pb2.Cors()),
        *security,
        http_filter(FAULT_FILTER, fault_pb2.HTTPFault()),
        http_filter(ROUTER_FILTER, router_pb2.Router()),
    ]


def gateway_hcm(
    stat_prefix: str,
    route_name: str,
    rep: reporting.Reporting,
    security: Sequence[HttpFilter] = (),
) -> HCM:
    m = hcm(
        stat_prefix,
        gateway_http_filters(rep.peer, security),
        rep.http_logs(access_log.OUTBOUND),
        rep.tracing(access_log.OUTBOUND),
    )
    m = use_rds(m, route_name)
    m.use_remote_address.value = True
    m.strip_any_host_port = True
    return m


def _https_chain(
    server: gateway_servers.BoundServer,
    port: int,
    rep: reporting.Reporting,
    security: Sequence[HttpFilter],
) -> FilterChain:
    assert server.server.tls is not None  # validation requires tls on HTTPS servers
    m = gateway_hcm(
        f"gateway_https_{port}_{server.server.port.name}", server.route_name, rep, security
    )
    chain = FilterChain(
        filters=[hcm_filter(m)], transport_socket=gateway_tls.transport_socket(server.server.tls)
    )
    chain.filter_chain_match.server_names.extend(server.server_names)
    return chain


def port_listener(
    p: gateway_servers.PortPlan,
    address: str,
    rep: reporting.Reporting,
    policies: authz.InboundPolicies | None = None,
) -> Listener:
    """The listener of one planned port; `policies`, those selecting the gateway."""
    security = inbound_filters.policy_filters(policies or authz.InboundPolicies(), p)
    if not p.tls:
        name = gateway_servers.http_route_name(p.port)
        m = gateway_hcm(f"gateway_http_{p.port}", name, rep, security)
        chains = [FilterChain(filters=[hcm_filter(m)])]
    else:
        chains = [_https_chain(s, p.port, rep, security) for s in p.servers]
    out = listener(listener_name(p.port), address, p.listen_port, base_pb2.OUTBOUND, chains)
    if p.tls:
        out.listener_filters.append(tls_inspector())
    return out


def listeners(snap: Snapshot, proxy: Proxy) -> list[listener_pb2.Listener]:
    """The listeners of a gateway proxy, in the order of their ports' first server."""
    address = proxy.address or LOCALHOST
    rep = reporting.of(snap, proxy)
    policies = authz.inbound_policies(snap, proxy)
    out: list[listener_pb2.Listener] = []
    for p in gateway_servers.plan(snap, proxy):
        if p.l4:
            found = gateway_l4.port_listener(snap, proxy, p, address, rep, policies)
            if found is not None:
                out.append(found)
        else:
            out.append(port_listener(p, address, rep, policies))
    return out
