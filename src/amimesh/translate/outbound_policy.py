"""A Sidecar's outboundTrafficPolicy: what the outbound table does with a host it does
not know (one its Sidecar does not import, or one outside the registry).

The table's last virtual host matches every domain: under REGISTRY_ONLY it is
Istio's `block_all`, a direct 502 (what Istio's BlackHoleCluster answers HTTP
clients); under ALLOW_ANY it is Istio's `allow_any`, a route to `PassthroughCluster`,
which here is a dynamic forward proxy cluster: it resolves the request's host by DNS
and forwards the request there, as the app asked (with no sidecar-to-sidecar mTLS).
Without a Sidecar that says, the table has no such virtual host and an unknown host
gets 404, as before.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc

from amimesh.translate import cluster_external, cluster_policy

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLOCK_ALL = "block_all"
ALLOW_ANY = "allow_any"
BLACKHOLE_STATUS = 502


def catch_all(*, registry_only: bool) -> rc.VirtualHost:
    """The virtual host for every other domain, under the given mode."""
    route = rc.Route(
        name=BLOCK_ALL if registry_only else ALLOW_ANY, match=rc.RouteMatch(prefix="/")
    )
    if registry_only:
        route.direct_response.status = BLACKHOLE_STATUS
    else:
        route.route.cluster = PASSTHROUGH_CLUSTER
        route.route.timeout.CopyFrom(cluster_policy.duration(0))
    return rc.VirtualHost(
        name=route.name, domains=["*"], routes=[route], include_request_attempt_count=True
    )


def passthrough_cluster() -> cluster_pb2.Cluster:
    """The cluster `allow_any` routes to: wherever the request's host resolves."""
    c = cluster_pb2.Cluster(name=PASSTHROUGH_CLUSTER)
    cluster_external.set_dfp(c)
    c.connect_timeout.CopyFrom(cluster_policy.duration(10))
    return c
