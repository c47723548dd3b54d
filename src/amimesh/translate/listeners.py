"""Proxy → Envoy listeners: a sidecar's outbound (HTTP_PROXY) and inbound listeners.

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

HTTP connection managers follow Istio's sidecar settings: normalized paths (escaped
slashes kept), `use_remote_address: false`, websocket upgrades, no stream idle timeout.
Gateways are not built yet: they get no listeners.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import dynamic_forward_proxy_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import cluster_external, cluster_policy, clusters, names

Listener: TypeAlias = listener_pb2.Listener
HCM: TypeAlias = hcm_pb2.HttpConnectionManager
HttpFilter: TypeAlias = hcm_pb2.HttpFilter

LOCALHOST = "127.0.0.1"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
DFP_FILTER = "envoy.filters.http.dynamic_forward_proxy"
ROUTER_FILTER = "envoy.filters.http.router"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def http_filter(name: str, config: Message) -> HttpFilter:
    return HttpFilter(name=name, typed_config=_pack(config))


def outbound_http_filters() -> list[HttpFilter]:
    dfp = dynamic_forward_proxy_pb2.FilterConfig(
        dns_cache_config=cluster_external.dns_cache_config()
    )
    return [
        http_filter(FAULT_FILTER, fault_pb2.HTTPFault()),
        http_filter(CORS_FILTER, cors_pb2.Cors()),
        http_filter(DFP_FILTER, dfp),
        http_filter(ROUTER_FILTER, router_pb2.Router()),
    ]


def inbound_http_filters() -> list[HttpFilter]:
    return [http_filter(ROUTER_FILTER, router_pb2.Router())]


def _hcm(stat_prefix: str, filters: list[HttpFilter]) -> HCM:
    m = HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.AUTO,
        http_filters=filters,
        path_with_escaped_slashes_action=HCM.KEEP_UNCHANGED,
    )
    m.normalize_path.value = True
    m.use_remote_address.value = False
    m.upgrade_configs.add(upgrade_type="websocket")
    m.stream_idle_timeout.CopyFrom(cluster_policy.duration(0))
    return m


def _listener(
    name: str, host: str, port: int, direction: int, network_filter: listener_components_pb2.Filter
) -> Listener:
    return Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=host, port_value=port)
        ),
        traffic_direction=direction,
        filter_chains=[listener_components_pb2.FilterChain(filters=[network_filter])],
    )


def outbound_listener(port: int) -> Listener:
    m = _hcm("outbound", outbound_http_filters())
    m.http_protocol_options.allow_absolute_url.value = True
    m.rds.route_config_name = names.OUTBOUND_ROUTE
    m.rds.config_source.CopyFrom(clusters.ads_config_source())
    # Wait for routes however long the control plane takes, as Istio does.
    m.rds.config_source.initial_fetch_timeout.CopyFrom(cluster_policy.duration(0))
    network = listener_components_pb2.Filter(name=HCM_FILTER, typed_config=_pack(m))
    return _listener(names.OUTBOUND_LISTENER, LOCALHOST, port, base_pb2.OUTBOUND, network)


def inbound_route_config(p: InboundPort) -> route_pb2.RouteConfiguration:
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
    return route_pb2.RouteConfiguration(name=names.inbound_listener(p.port), virtual_hosts=[vhost])


def inbound_listener(p: InboundPort, address: str = LOCALHOST) -> Listener:
    cluster = names.inbound_cluster(p.port)
    if p.protocol.upper() in cluster_policy.HTTP_PROTOCOLS:
        m = _hcm(f"inbound_{p.port}", inbound_http_filters())
        m.route_config.CopyFrom(inbound_route_config(p))
        network = listener_components_pb2.Filter(name=HCM_FILTER, typed_config=_pack(m))
    else:
        tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster)
        network = listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=_pack(tcp))
    return _listener(
        names.inbound_listener(p.port), address, p.listen_port, base_pb2.INBOUND, network
    )


def listeners(snap: Snapshot, proxy: Proxy) -> list[Listener]:
    """The listeners of `proxy`: outbound (if it has an outbound port), then inbound."""
    if proxy.kind != "sidecar":
        return []
    out: list[Listener] = []
    if proxy.outbound_port > 0:
        out.append(outbound_listener(proxy.outbound_port))
    out.extend(inbound_listener(p, proxy.address or LOCALHOST) for p in proxy.inbound)
    return out
