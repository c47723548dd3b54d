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
  other ports get a TCP proxy to it.
- `upstream|PORT|HOST` on 127.0.0.1:listen_port, per upstream of the proxy
  (`listener_upstream`): a local port that reaches one service port, for gRPC and TCP
  clients that cannot use an HTTP proxy.

HTTP connection managers follow Istio's sidecar settings (see `listener_hcm`).
A sidecar's listeners depend on the proxy alone; a gateway's on the snapshot's
Gateways too.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import cluster_policy, gateway_listeners, listener_upstream, names
from amimesh.translate.listener_hcm import (
    CORS_FILTER,
    DFP_FILTER,
    FAULT_FILTER,
    HCM_FILTER,
    LOCALHOST,
    ROUTER_FILTER,
    TCP_PROXY_FILTER,
    Listener,
    hcm,
    hcm_filter,
    http_filter,
    inbound_http_filters,
    listener,
    outbound_http_filters,
    single_chain,
    tcp_proxy_filter,
    use_rds,
)

__all__ = [
    "CORS_FILTER",
    "DFP_FILTER",
    "FAULT_FILTER",
    "HCM_FILTER",
    "LOCALHOST",
    "ROUTER_FILTER",
    "TCP_PROXY_FILTER",
    "Listener",
    "http_filter",
    "inbound_listener",
    "inbound_route_config",
    "listeners",
    "outbound_listener",
]

RouteConfiguration: TypeAlias = route_pb2.RouteConfiguration


def outbound_listener(port: int) -> Listener:
    m = use_rds(hcm("outbound", outbound_http_filters()), names.OUTBOUND_ROUTE)
    m.http_protocol_options.allow_absolute_url.value = True
    return listener(
        names.OUTBOUND_LISTENER, LOCALHOST, port, base_pb2.OUTBOUND, single_chain(hcm_filter(m))
    )


def inbound_route_config(p: InboundPort) -> RouteConfiguration:
    action = route_components_pb2.RouteAction(
        cluster=names.inbound_cluster(p.port), timeout=cluster_policy.duration(0)
    )
    action.max_stream_duration.max_stream_duration.CopyFrom(cluster_policy.duration(0))
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(cluster_policy.duration(0))
    route = route_components_pb2.Route(
        name="default", match=route_components_pb2.RouteMatch(prefix="/"), route=action
    )
    vhost = route_components_pb2.VirtualHost(
        name=f"inbound|http|{p.port}", domains=["*"], routes=[route]
    )
    return RouteConfiguration(name=names.inbound_listener(p.port), virtual_hosts=[vhost])


def inbound_listener(p: InboundPort, address: str = LOCALHOST) -> Listener:
    cluster = names.inbound_cluster(p.port)
    if p.protocol.upper() in cluster_policy.HTTP_PROTOCOLS:
        m = hcm(f"inbound_{p.port}", inbound_http_filters())
        m.route_config.CopyFrom(inbound_route_config(p))
        network = hcm_filter(m)
    else:
        network = tcp_proxy_filter(cluster)
    return listener(
        names.inbound_listener(p.port),
        address,
        p.listen_port,
        base_pb2.INBOUND,
        single_chain(network),
    )


def listeners(snap: Snapshot, proxy: Proxy) -> list[Listener]:
    """The listeners of `proxy`.

    A sidecar: outbound (if it has an outbound port), inbound, then upstream listeners.
    A gateway: one listener per Gateway server port it serves.
    """
    if proxy.kind == "gateway":
        return gateway_listeners.listeners(snap, proxy)
    out: list[Listener] = []
    if proxy.outbound_port > 0:
        out.append(outbound_listener(proxy.outbound_port))
    out.extend(inbound_listener(p, proxy.address or LOCALHOST) for p in proxy.inbound)
    out.extend(listener_upstream.upstream_listener(u) for u in proxy.upstreams)
    return out
