"""Building blocks of listeners: HTTP connection managers, filters, RDS, addresses.

HTTP connection managers follow Istio's sidecar settings: codec AUTO (HTTP/1.1 and
HTTP/2 prior knowledge, so gRPC works too), normalized paths (escaped slashes kept),
`use_remote_address: false`, websocket upgrades, no stream idle timeout. Routes come
by RDS over the ADS stream, waiting however long the control plane takes (as Istio).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import dynamic_forward_proxy_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from amimesh.translate import cluster_external, cluster_policy, clusters, metrics_log

Listener: TypeAlias = listener_pb2.Listener
FilterChain: TypeAlias = listener_components_pb2.FilterChain
NetworkFilter: TypeAlias = listener_components_pb2.Filter
HCM: TypeAlias = hcm_pb2.HttpConnectionManager
HttpFilter: TypeAlias = hcm_pb2.HttpFilter

LOCALHOST = "127.0.0.1"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
DFP_FILTER = "envoy.filters.http.dynamic_forward_proxy"
ROUTER_FILTER = "envoy.filters.http.router"


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def http_filter(name: str, config: Message) -> HttpFilter:
    return HttpFilter(name=name, typed_config=pack(config))


def peer_header_filter(peer: str) -> HttpFilter:
    """Sets the peer header to `peer` on every request (`metrics_log.PEER_HEADER`)."""
    return http_filter(metrics_log.HEADER_MUTATION_FILTER, metrics_log.peer_header_config(peer))


def outbound_http_filters(peer: str) -> list[HttpFilter]:
    """The peer header (who sends), fault and CORS (configured per route), the dynamic
    forward proxy (resolves the host of requests routed to a NONE-resolution
    ServiceEntry, a no-op for other clusters), then the router."""
    dfp = dynamic_forward_proxy_pb2.FilterConfig(
        dns_cache_config=cluster_external.dns_cache_config()
    )
    return [
        peer_header_filter(peer),
        http_filter(FAULT_FILTER, fault_pb2.HTTPFault()),
        http_filter(CORS_FILTER, cors_pb2.Cors()),
        http_filter(DFP_FILTER, dfp),
        http_filter(ROUTER_FILTER, router_pb2.Router()),
    ]


def inbound_http_filters() -> list[HttpFilter]:
    return [http_filter(ROUTER_FILTER, router_pb2.Router())]


def hcm(
    stat_prefix: str,
    filters: list[HttpFilter],
    access_log: Sequence[accesslog_pb2.AccessLog] = (),
    tracing: hcm_pb2.HttpConnectionManager.Tracing | None = None,
) -> HCM:
    m = HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.AUTO,
        http_filters=filters,
        path_with_escaped_slashes_action=HCM.KEEP_UNCHANGED,
        access_log=list(access_log),
    )
    m.normalize_path.value = True
    m.use_remote_address.value = False
    m.upgrade_configs.add(upgrade_type="websocket")
    m.stream_idle_timeout.CopyFrom(cluster_policy.duration(0))
    if tracing is not None:
        m.tracing.CopyFrom(tracing)
    return m


def use_rds(m: HCM, route_config_name: str) -> HCM:
    """Make `m` take its routes by RDS over ADS, waiting for them as long as it takes."""
    m.rds.route_config_name = route_config_name
    m.rds.config_source.CopyFrom(clusters.ads_config_source())
    m.rds.config_source.initial_fetch_timeout.CopyFrom(cluster_policy.duration(0))
    return m


def hcm_filter(m: HCM) -> NetworkFilter:
    return NetworkFilter(name=HCM_FILTER, typed_config=pack(m))


def tcp_proxy_filter(
    cluster: str,
    access_log: Sequence[accesslog_pb2.AccessLog] = (),
    weighted: Sequence[tuple[str, int]] = (),
) -> NetworkFilter:
    """A TCP proxy to `cluster`, or shared by weight between the `weighted` clusters
    (`cluster` then names its stats)."""
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, access_log=list(access_log))
    if len(weighted) > 1:
        for name, weight in weighted:
            tcp.weighted_clusters.clusters.add(name=name, weight=weight)
    else:
        tcp.cluster = weighted[0][0] if weighted else cluster
    if any(log.name == metrics_log.STATS_LOGGER for log in access_log):
        tcp.access_log_options.flush_access_log_on_connected = True
    return NetworkFilter(name=TCP_PROXY_FILTER, typed_config=pack(tcp))


def listener(
    name: str, host: str, port: int, direction: int, chains: Iterable[FilterChain]
) -> Listener:
    return Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=host, port_value=port)
        ),
        traffic_direction=direction,
        filter_chains=list(chains),
    )


TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    """The listener filter that reads a TLS client hello's SNI for chain matching."""
    return listener_components_pb2.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
    )


def single_chain(network_filter: NetworkFilter) -> list[FilterChain]:
    return [FilterChain(filters=[network_filter])]
