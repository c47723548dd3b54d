"""A sidecar's upstream listeners: a local port per service port, for gRPC and TCP apps.

Clients that cannot use an HTTP proxy (gRPC, raw TCP) dial 127.0.0.1:`listen_port`
(Kuma's "outbounds"), and the sidecar takes them to one service port through the mesh:

- GRPC, HTTP2 and HTTP upstreams get an HTTP connection manager (codec AUTO, so
  HTTP/2 prior knowledge and HTTP/1.1 both work) whose routes come by RDS from the
  table `upstream|PORT|HOST` (`route_upstream`): the very routes the outbound table
  has for that service port, so VirtualService routing applies to gRPC as well.
- Any other protocol (TCP, TLS, ...) gets a TCP proxy to `outbound|PORT||HOST`, or to
  the destinations of the service's VirtualService `tcp` route; a TLS (or HTTPS) port
  also gets a filter chain per `tls` route, picked by the client's SNI (a TLS
  inspector reads it), the connection passed through unterminated (`l4_routes`).

The upstream's `host` is taken as written, so it must be the fully qualified service
host (`catalog.shop.svc.cluster.local`, or a ServiceEntry host), as the runtime writes it.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2

from amimesh.model.proxy import Upstream
from amimesh.translate import cluster_policy, names
from amimesh.translate.access_log import OUTBOUND
from amimesh.translate.l4_routes import UpstreamRoutes
from amimesh.translate.listener_hcm import (
    LOCALHOST,
    FilterChain,
    Listener,
    hcm,
    hcm_filter,
    listener,
    outbound_http_filters,
    single_chain,
    tcp_proxy_filter,
    tls_inspector,
    use_rds,
)
from amimesh.translate.reporting import Reporting


def upstream_name(port: int, host: str) -> str:
    """The name of an upstream's listener and of its route table: `upstream|PORT|HOST`."""
    return f"upstream|{port}|{host}"


def is_http(upstream: Upstream) -> bool:
    return upstream.protocol.upper() in cluster_policy.HTTP_PROTOCOLS


def upstream_listener(
    upstream: Upstream, rep: Reporting, routed: UpstreamRoutes | None = None
) -> Listener:
    """The listener of `upstream`, reporting as the proxy's outbound listeners do;
    `routed`, the tcp or tls routes of its service (`l4_routes`)."""
    host = upstream.host.lower()
    name = upstream_name(upstream.port, host)
    routed = routed or UpstreamRoutes()
    if is_http(upstream):
        m = hcm(
            f"upstream_{upstream.port}_{host}",
            outbound_http_filters(rep.peer),
            rep.http_logs(OUTBOUND),
            rep.tracing(OUTBOUND),
        )
        network = hcm_filter(use_rds(m, name))
    else:
        cluster = names.outbound_cluster(upstream.port, host)
        logs = rep.tcp_logs(OUTBOUND)
        default = tcp_proxy_filter(cluster, logs, routed.tcp or ())
        if routed.tls:
            chains = []
            for sni, weighted in routed.tls:
                chain = FilterChain(filters=[tcp_proxy_filter(cluster, logs, weighted)])
                chain.filter_chain_match.server_names.extend(sni)
                chains.append(chain)
            chains.append(FilterChain(filters=[default]))
            out = listener(name, LOCALHOST, upstream.listen_port, base_pb2.OUTBOUND, chains)
            out.listener_filters.append(tls_inspector())
            return out
        network = default
    return listener(name, LOCALHOST, upstream.listen_port, base_pb2.OUTBOUND, single_chain(network))
