"""Small hand-written Envoy resources, for tests and benchmarks of the xDS layer.

Real translation lives in `amimesh.translate`; these exist so the xDS server can be
exercised (and benchmarked) without a mesh model: an EDS or STATIC cluster, its load
assignment, a listener whose HTTP connection manager uses RDS, and a route
configuration answering with a fixed body or forwarding to a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built, ProxyConfig


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def _socket(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def load_assignment(cluster: str, endpoints: Iterable[tuple[str, int]]) -> Built:
    """A ClusterLoadAssignment with the given (host, port) endpoints."""
    lb_endpoints = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(address=_socket(host, port))
        )
        for host, port in endpoints
    ]
    message = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lb_endpoints)],
    )
    return Built(ENDPOINT, cluster, message)


def cluster(
    name: str,
    *,
    eds: bool = True,
    endpoints: Iterable[tuple[str, int]] = (),
    connect_timeout_ms: int = 1000,
) -> Built:
    """An EDS cluster fed by ADS, or (with `eds=False`) a STATIC one with `endpoints`."""
    message = cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration_pb2.Duration(
            seconds=connect_timeout_ms // 1000, nanos=(connect_timeout_ms % 1000) * 1_000_000
        ),
    )
    if eds:
        message.type = cluster_pb2.Cluster.EDS
        message.eds_cluster_config.eds_config.CopyFrom(_ads())
    else:
        message.type = cluster_pb2.Cluster.STATIC
        message.load_assignment.CopyFrom(load_assignment(name, endpoints).message)
    return Built(CLUSTER, name, message)


def listener(name: str, port: int, route_name: str, *, host: str = "127.0.0.1") -> Built:
    """A listener on host:port whose HTTP connection manager takes `route_name` by RDS."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        rds=hcm_pb2.Rds(config_source=_ads(), route_config_name=route_name),
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router())
            )
        ],
    )
    chain = listener_components_pb2.FilterChain(
        filters=[
            listener_components_pb2.Filter(
                name="envoy.filters.network.http_connection_manager",
                typed_config=_packed(manager),
            )
        ]
    )
    message = listener_pb2.Listener(name=name, address=_socket(host, port), filter_chains=[chain])
    return Built(LISTENER, name, message)


def route_config(
    name: str,
    *,
    body: str | None = None,
    cluster: str | None = None,
    prefix: str = "/",
    regex: str | None = None,
) -> Built:
    """A RouteConfiguration with one catch-all virtual host and one route.

    The route answers 200 with `body`, or forwards to `cluster`. It matches `prefix`,
    or the RE2 `regex` if given (an invalid one makes Envoy reject the config).
    """
    if (body is None) == (cluster is None):
        raise ValueError("give exactly one of body= or cluster=")
    match = route_components_pb2.RouteMatch(prefix=prefix)
    if regex is not None:
        match = route_components_pb2.RouteMatch()
        match.safe_regex.regex = regex
    route = route_components_pb2.Route(match=match)
    if body is not None:
        route.direct_response.status = 200
        route.direct_response.body.inline_string = body
    else:
        route.route.cluster = str(cluster)
    host = route_components_pb2.VirtualHost(name=name, domains=["*"], routes=[route])
    return Built(ROUTE, name, route_pb2.RouteConfiguration(name=name, virtual_hosts=[host]))


def proxy_config(*resources: Built) -> ProxyConfig:
    """Group resources by type, as a generator returns them."""
    config: ProxyConfig = {}
    for built in resources:
        config.setdefault(built.type_url, {})[built.name] = built
    return config
