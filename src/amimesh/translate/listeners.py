"""Proxy → Envoy listeners: a sidecar's outbound, inbound and upstream listeners; a
gateway's server listeners (`gateway_listeners`).

- `outbound` on 127.0.0.1:outbound_port, for a sidecar with `outbound_port > 0`: the
  app's explicit HTTP proxy. Absolute URLs are allowed, the codec is AUTO (so gRPC's
  HTTP/2 prior knowledge works too) and routes come by RDS (`outbound`). Filters: fault
  and CORS (configured per route), the dynamic forward proxy (resolves the host of
  requests routed to a NONE-resolution ServiceEntry; a no-op for any other cluster,
  and always present so that such a ServiceEntry appearing does not change, and so
  drain, the listener), then the router.
- `inbound|PORT` on the proxy's address (127.0.0.1 by default) at `listen_port`, per
  inbound port: HTTP ports get an HTTP connection manager whose one route sends
  everything to `inbound|PORT||` with no timeout, as Istio's inbound does; TCP, TLS and
  other ports get a TCP proxy to it. What the port accepts follows its PeerAuthentication
  mode (`model.mtls`): STRICT, a mutual TLS filter chain only; PERMISSIVE, that chain
  and a plain-text one, told apart by the TLS inspector; DISABLE, plain text only.
  HTTP filters come from `inbound_filters` (authentication, authorization), then the
  router; the peer's identity reaches the app in `x-forwarded-client-cert` (URI only),
  and a client-supplied one is dropped.
- `upstream|PORT|HOST` on 127.0.0.1:listen_port, per upstream of the proxy
  (`listener_upstream`): a local port that reaches one service port, for gRPC and TCP
  clients that cannot use an HTTP proxy.

HTTP connection managers follow Istio's sidecar settings (see `listener_hcm`); they
and the TCP proxies write the proxy's access log, if it has one (`access_log`).
A sidecar's listeners depend on the proxy and the snapshot's security policies
(PeerAuthentication, and what `inbound_filters` reads); a gateway's on the snapshot's
Gateways.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from amimesh.model import authz, mtls
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import (
    access_log,
    authz_tcp,
    cluster_policy,
    gateway_listeners,
    inbound_filters,
    l4_routes,
    listener_upstream,
    names,
    reporting,
    tls,
)
from amimesh.translate.listener_hcm import (
    CORS_FILTER,
    DFP_FILTER,
    FAULT_FILTER,
    HCM,
    HCM_FILTER,
    LOCALHOST,
    ROUTER_FILTER,
    TCP_PROXY_FILTER,
    FilterChain,
    Listener,
    NetworkFilter,
    hcm,
    hcm_filter,
    http_filter,
    listener,
    outbound_http_filters,
    pack,
    single_chain,
    tcp_proxy_filter,
    use_rds,
)
from amimesh.translate.scope import Scope
from amimesh.translate.scope import of as scope_of

__all__ = [
    "CORS_FILTER",
    "DFP_FILTER",
    "FAULT_FILTER",
    "HCM_FILTER",
    "LOCALHOST",
    "ROUTER_FILTER",
    "TCP_PROXY_FILTER",
    "TLS_INSPECTOR",
    "Listener",
    "http_filter",
    "inbound_listener",
    "inbound_route_config",
    "listeners",
    "outbound_listener",
]

RouteConfiguration: TypeAlias = route_pb2.RouteConfiguration
FilterChainMatch: TypeAlias = listener_components_pb2.FilterChainMatch

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
MTLS_CHAIN = "mtls"
PLAINTEXT_CHAIN = "plaintext"


def outbound_listener(port: int, rep: reporting.Reporting | None = None) -> Listener:
    rep = rep or reporting.silent(Proxy(id="outbound"))
    m = hcm(
        "outbound",
        outbound_http_filters(rep.peer),
        rep.http_logs(access_log.OUTBOUND),
        rep.tracing(access_log.OUTBOUND),
    )
    m = use_rds(m, names.OUTBOUND_ROUTE)
    m.http_protocol_options.allow_absolute_url.value = True
    return listener(
        names.OUTBOUND_LISTENER, LOCALHOST, port, base_pb2.OUTBOUND, single_chain(hcm_filter(m))
    )


def inbound_route_config(
    p: InboundPort, request_timeout_s: int = 0, idle_timeout_s: int = 0
) -> RouteConfiguration:
    """The inbound route of HTTP port `p`: everything to the app, with no timeout but
    the proxy's own (`ami.dev/request-timeout`: the whole request, a 504 before the
    response started and a reset after; `ami.dev/idle-timeout`: no byte from the app
    for that long, the same)."""
    action = route_components_pb2.RouteAction(
        cluster=names.inbound_cluster(p.port), timeout=cluster_policy.duration(0)
    )
    if idle_timeout_s:
        action.retry_policy.num_retries.value = 0
        action.retry_policy.per_try_idle_timeout.CopyFrom(cluster_policy.duration(idle_timeout_s))
    # Envoy's route `timeout` stops at the response headers; a stream's maximum
    # duration also ends a response that started and runs too long, as Knative's
    # queue-proxy does (0: none).
    action.max_stream_duration.max_stream_duration.CopyFrom(
        cluster_policy.duration(request_timeout_s)
    )
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(cluster_policy.duration(0))
    route = route_components_pb2.Route(
        name="default", match=route_components_pb2.RouteMatch(prefix="/"), route=action
    )
    vhost = route_components_pb2.VirtualHost(
        name=f"inbound|http|{p.port}", domains=["*"], routes=[route]
    )
    return RouteConfiguration(name=names.inbound_listener(p.port), virtual_hosts=[vhost])


def _inbound_network_filters(
    proxy: Proxy, policies: authz.InboundPolicies, p: InboundPort, rep: reporting.Reporting
) -> list[NetworkFilter]:
    if p.protocol.upper() not in cluster_policy.HTTP_PROTOCOLS:
        # Authorization applies to TCP too: network RBAC before the TCP proxy.
        return [
            *authz_tcp.network_filters(policies, p),
            tcp_proxy_filter(names.inbound_cluster(p.port), rep.tcp_logs(access_log.INBOUND)),
        ]
    filters = [
        *inbound_filters.policy_filters(policies, p),
        http_filter(ROUTER_FILTER, router_pb2.Router()),
    ]
    m = hcm(
        f"inbound_{p.port}",
        filters,
        rep.http_logs(access_log.INBOUND),
        rep.tracing(access_log.INBOUND),
    )
    m.route_config.CopyFrom(inbound_route_config(p, proxy.request_timeout_s, proxy.idle_timeout_s))
    # The app learns the caller's SPIFFE ID; a header the caller sent is never trusted.
    m.forward_client_cert_details = HCM.SANITIZE_SET
    m.set_current_client_cert_details.uri = True
    return [hcm_filter(m)]


def inbound_chains(
    mode: mtls.Mode, network: list[NetworkFilter], alpn: tuple[str, ...]
) -> list[FilterChain]:
    """The filter chains of an inbound listener in `mode`, all running `network`.

    A mutual TLS chain matches `transport_protocol: tls` (the TLS inspector's verdict),
    so under STRICT a plain-text connection matches no chain and is closed.
    """
    chains: list[FilterChain] = []
    if mode != "DISABLE":
        chains.append(
            FilterChain(
                name=MTLS_CHAIN,
                filter_chain_match=FilterChainMatch(transport_protocol="tls"),
                transport_socket=tls.transport_socket(tls.mesh_downstream(alpn)),
                filters=network,
            )
        )
    if mode != "STRICT":
        chain = FilterChain(name=PLAINTEXT_CHAIN, filters=network)
        if mode == "PERMISSIVE":
            chain.filter_chain_match.transport_protocol = "raw_buffer"
        chains.append(chain)
    return chains


def inbound_listener(scope: Scope, p: InboundPort, rep: reporting.Reporting) -> Listener:
    """The listener of inbound port `p`, accepting what its PeerAuthentication allows."""
    proxy, policies = scope.proxy, scope.policies
    mode = policies.mtls.mode(p.port)
    http = p.protocol.upper() in cluster_policy.HTTP_PROTOCOLS
    chains = inbound_chains(
        mode,
        _inbound_network_filters(proxy, policies.inbound, p, rep),
        tls.INBOUND_ALPN if http else (),
    )
    out = listener(
        names.inbound_listener(p.port),
        proxy.address or LOCALHOST,
        p.listen_port,
        base_pb2.INBOUND,
        chains,
    )
    if mode != "DISABLE":
        out.listener_filters.add(
            name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
        )
    return out


def listeners(snap: Snapshot, proxy: Proxy) -> list[Listener]:
    """The listeners of `proxy`.

    A sidecar: outbound (if it has an outbound port), inbound, then upstream listeners.
    A gateway: one listener per Gateway server port it serves.
    """
    if proxy.kind == "gateway":
        return gateway_listeners.listeners(snap, proxy)
    return sidecar_listeners(scope_of(snap, proxy))


def sidecar_listeners(scope: Scope) -> list[Listener]:
    """The listeners of a sidecar, from its scope alone: outbound (if it has an
    outbound port), inbound, then upstream listeners."""
    proxy, policies = scope.proxy, scope.policies
    out: list[Listener] = []
    rep = reporting.under(proxy, policies.access_log, policies.metrics, policies.tracing)
    if proxy.outbound_port > 0:
        out.append(outbound_listener(proxy.outbound_port, rep))
    out.extend(inbound_listener(scope, p, rep) for p in proxy.inbound)
    routed = scope.upstream_routes or tuple(l4_routes.UpstreamRoutes() for _ in proxy.upstreams)
    out.extend(
        listener_upstream.upstream_listener(u, rep, r)
        for u, r in zip(proxy.upstreams, routed, strict=True)
    )
    return out
