"""A DestinationRule's traffic policy as cluster settings: merging, pools, outlier detection.

Istio's semantics, and Istio's defaults where the rule is silent:

- A `portLevelSettings` entry for a cluster's port replaces the policy it sits in,
  wholesale: its `loadBalancer`, `connectionPool`, `outlierDetection` and `tls` are taken
  as they are, and one it leaves out gets the default, not the level above's value
  (Istio's rule). The first entry for a port counts.
- A subset's `trafficPolicy` (its own port-level entry for the port applied first)
  replaces the top-level one (its port-level entry applied first) field by field at the
  top level: a subset `connectionPool` replaces the whole top-level `connectionPool`,
  and so on; a subset's port-level entry replaces all four fields.
- Circuit breaker thresholds default to 2^32-1 (Envoy's own defaults are low enough to
  cause 503s during rollouts); `connect_timeout` defaults to 10s.
- A zero `http1MaxPendingRequests`, `http2MaxRequests`, `maxRetries`,
  `maxRequestsPerConnection` or `maxEjectionPercent` means "not set", as in Istio.
- With `outlierDetection`, success-rate ejection is off and the panic threshold is
  `minHealthPercent` (0 when unset: Envoy never sends traffic to ejected hosts).
  The deprecated `consecutiveErrors: N` (alone: validation refuses it beside the newer
  fields) counts gateway errors, with 5xx ejection off, as Istio read it while it
  honoured the field (Istio 1.5 and 1.6; later versions warn and drop it).
- `useClientProtocol`: an HTTP-like port's upstream speaks the client's protocol
  (Envoy's `use_downstream_protocol_config`), never upgraded to HTTP/2.
- `h2UpgradePolicy: UPGRADE`: an HTTP/1.1 port's upstream speaks HTTP/2 (unless
  `useClientProtocol`, which wins, as in Istio); DEFAULT and DO_NOT_UPGRADE leave it
  HTTP/1.1 (Ami has no mesh-wide upgrade setting).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2

from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net

MAX_THRESHOLD = 4294967295
DEFAULT_CONNECT_TIMEOUT = 10.0
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

# Port protocols that carry HTTP through the mesh, and those that want HTTP/2 upstream.
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC"})
H2_PROTOCOLS = frozenset({"HTTP2", "GRPC"})

_POLICY_FIELDS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def for_port(policy: net.TrafficPolicy | None, port: int) -> tuple[net.TrafficPolicy | None, bool]:
    """`policy` as it applies to `port`, and whether a port-level entry replaced it.

    The result carries no `portLevelSettings`: they are resolved."""
    if policy is None:
        return None, False
    for entry in policy.portLevelSettings:
        if entry.port.number == port:
            fields = {f: getattr(entry, f) for f in _POLICY_FIELDS}
            return net.TrafficPolicy.model_construct(**fields), True
    if not policy.portLevelSettings:
        return policy, False
    return policy.model_copy(update={"portLevelSettings": []}), False


def merge(
    top: net.TrafficPolicy | None, subset: net.TrafficPolicy | None, port: int
) -> net.TrafficPolicy | None:
    """The policy of a subset cluster on `port`: subset fields replace top-level fields
    (all of them when the subset has a port-level entry for `port`)."""
    top, _ = for_port(top, port)
    subset, port_level = for_port(subset, port)
    if subset is None:
        return top
    if top is None:
        return subset
    update = {
        f: getattr(subset, f)
        for f in _POLICY_FIELDS
        if port_level or getattr(subset, f) is not None
    }
    return top.model_copy(update=update)


def effective_policy(
    snap: Snapshot, host: str, subset: str | None, port: int
) -> net.TrafficPolicy | None:
    """The traffic policy that applies to `outbound|port|subset|host`, or None."""
    dr = snap.destination_rule(host)
    if dr is None:
        return None
    top = dr.spec.trafficPolicy
    if subset:
        for s in dr.spec.subsets:
            if s.name == subset:
                return merge(top, s.trafficPolicy, port)
    return for_port(top, port)[0]


def subsets(snap: Snapshot, host: str) -> list[str | None]:
    """None (the whole service), then each subset of the host's DestinationRule, then
    each intercept's (`model.intercepts`)."""
    dr = snap.destination_rule(host)
    out: list[str | None] = [None]
    for s in dr.spec.subsets if dr is not None else ():
        if s.name not in out:
            out.append(s.name)
    out += [i.subset for i in snap.intercepts.get(host, ())]
    return out


def circuit_breakers(
    pool: net.ConnectionPoolSettings | None,
) -> circuit_breaker_pb2.CircuitBreakers:
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(track_remaining=True)
    tcp = pool.tcp if pool is not None else None
    http = pool.http if pool is not None else None
    t.max_connections.value = (tcp.maxConnections if tcp else None) or MAX_THRESHOLD
    t.max_pending_requests.value = (http.http1MaxPendingRequests if http else None) or MAX_THRESHOLD
    t.max_requests.value = (http.http2MaxRequests if http else None) or MAX_THRESHOLD
    t.max_retries.value = (http.maxRetries if http else None) or MAX_THRESHOLD
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def concurrency_limit(n: int) -> circuit_breaker_pb2.CircuitBreakers:
    """At most `n` requests in flight to an HTTP/1.1 upstream, 10 × `n` more waiting for
    a connection, a 503 (`x-envoy-overloaded`) beyond: Knative's queue-proxy breaker
    (queue depth 10 × containerConcurrency). HTTP/1.1 carries one request per connection
    at a time, so `n` connections are `n` requests; a request finding them all busy
    waits in the pool's pending queue until one is free. `max_requests` holds the
    bound even where Envoy opens a connection past `max_connections` (it gives each
    pool at least one)."""
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(track_remaining=True)
    t.max_connections.value = n
    t.max_pending_requests.value = 10 * n
    t.max_requests.value = n
    t.max_retries.value = MAX_THRESHOLD
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def connect_timeout(pool: net.ConnectionPoolSettings | None) -> duration_pb2.Duration:
    tcp = pool.tcp if pool is not None else None
    if tcp is not None and tcp.connectTimeout is not None:
        return duration(tcp.connectTimeout)
    return duration(DEFAULT_CONNECT_TIMEOUT)


def http_protocol_options(
    protocol: str, pool: net.ConnectionPoolSettings | None
) -> http_protocol_options_pb2.HttpProtocolOptions | None:
    """Upstream HTTP settings for a port, or None for a port that does not carry HTTP."""
    protocol = protocol.upper()
    if protocol not in HTTP_PROTOCOLS:
        return None
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    http = pool.http if pool is not None else None
    if protocol in H2_PROTOCOLS or (http is not None and http.h2UpgradePolicy == "UPGRADE"):
        opts.explicit_http_config.http2_protocol_options.SetInParent()
    else:
        opts.explicit_http_config.http_protocol_options.SetInParent()
    if http is not None and http.useClientProtocol:
        # Replaces the explicit config (one of a oneof); both carry default options.
        downstream = opts.use_downstream_protocol_config
        downstream.http_protocol_options.SetInParent()
        downstream.http2_protocol_options.SetInParent()
    if http is not None:
        common = protocol_pb2.HttpProtocolOptions()
        if http.idleTimeout is not None:
            common.idle_timeout.CopyFrom(duration(http.idleTimeout))
        if http.maxRequestsPerConnection:
            common.max_requests_per_connection.value = http.maxRequestsPerConnection
        if common.ListFields():
            opts.common_http_protocol_options.CopyFrom(common)
    return opts


def outlier_detection(od: net.OutlierDetection) -> outlier_detection_pb2.OutlierDetection:
    out = outlier_detection_pb2.OutlierDetection()
    out.enforcing_success_rate.value = 0
    if od.consecutive5xxErrors is not None:
        out.consecutive_5xx.value = od.consecutive5xxErrors
        out.enforcing_consecutive_5xx.value = 100 if od.consecutive5xxErrors > 0 else 0
    if (
        od.consecutiveErrors
        and od.consecutive5xxErrors is None
        and od.consecutiveGatewayErrors is None
    ):
        out.consecutive_gateway_failure.value = od.consecutiveErrors
        out.enforcing_consecutive_gateway_failure.value = 100
        out.enforcing_consecutive_5xx.value = 0
    if od.consecutiveGatewayErrors is not None:
        out.consecutive_gateway_failure.value = od.consecutiveGatewayErrors
        out.enforcing_consecutive_gateway_failure.value = (
            100 if od.consecutiveGatewayErrors > 0 else 0
        )
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.baseEjectionTime is not None:
        out.base_ejection_time.CopyFrom(duration(od.baseEjectionTime))
    if od.maxEjectionPercent:
        out.max_ejection_percent.value = od.maxEjectionPercent
    return out


def apply(cluster: cluster_pb2.Cluster, policy: net.TrafficPolicy | None, protocol: str) -> None:
    """Set connect timeout, circuit breakers, HTTP options and outlier detection."""
    pool = policy.connectionPool if policy is not None else None
    cluster.connect_timeout.CopyFrom(connect_timeout(pool))
    cluster.circuit_breakers.CopyFrom(circuit_breakers(pool))
    opts = http_protocol_options(protocol, pool)
    if opts is not None:
        packed = any_pb2.Any()
        packed.Pack(opts)
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(packed)
    od = policy.outlierDetection if policy is not None else None
    if od is not None:
        cluster.outlier_detection.CopyFrom(outlier_detection(od))
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
            percent_pb2.Percent(value=float(od.minHealthPercent or 0))
        )
