"""A DestinationRule's `loadBalancer` as a cluster's lb policy and a route's hash policy.

- `simple`: ROUND_ROBIN, LEAST_REQUEST (and its old name LEAST_CONN), RANDOM; unset or
  UNSPECIFIED means LEAST_REQUEST, Istio's default.
- `warmup` (`duration`, `minimumPercent`, default 10, `aggression`, default 1.0: a
  linear ramp) and the older `warmupDurationSecs` (the window alone, Envoy's defaults
  for the rest): Envoy's slow start on ROUND_ROBIN and LEAST_REQUEST clusters, as Istio
  sets it; validation refuses them beside RANDOM or `consistentHash`, where Istio drops
  them, and together.
- `consistentHash`: RING_HASH (minimum ring size `minimumRingSize`, else 1024). Envoy
  hashes on the route, so the hash key travels as `RouteAction.hash_policy` (see
  `hash_policies`); the cluster only picks the ring. `consistentHash` wins over `simple`.
- `localityLbSetting`: on the cluster, locality-weighted balancing is switched on when
  `distribute` is set or `failover` is set with outlier detection (weights and
  priorities themselves live in the ClusterLoadAssignment; see `cluster_locality`).
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2

from amimesh.resources import istio_networking as net
from amimesh.translate.cluster_policy import duration

DEFAULT_MIN_RING_SIZE = 1024

HashPolicy: TypeAlias = route_components_pb2.RouteAction.HashPolicy
SlowStartConfig: TypeAlias = cluster_pb2.Cluster.SlowStartConfig
# Envoy's runtime key for slow start's aggression (it wants one); no runtime layer of
# Ami's sets it, so the value from the rule holds.
AGGRESSION_RUNTIME_KEY = "ami.slow_start.aggression"

_SIMPLE = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
    "UNSPECIFIED": cluster_pb2.Cluster.LEAST_REQUEST,
    # No endpoint address is ever dialled directly on one machine: the default stays.
    "PASSTHROUGH": cluster_pb2.Cluster.LEAST_REQUEST,
}


def locality_setting(lb: net.LoadBalancerSettings | None) -> net.LocalityLbSetting | None:
    """The locality settings in force, None when switched off.

    As with Istio's mesh default, locality load balancing is on unless a rule says
    `enabled: false`; with no rule it only orders endpoints by locality (and only
    when outlier detection can eject the local ones).
    """
    setting = lb.localityLbSetting if lb is not None else None
    if setting is None:
        return net.LocalityLbSetting()
    if setting.enabled is False:
        return None
    return setting


def apply(
    cluster: cluster_pb2.Cluster,
    lb: net.LoadBalancerSettings | None,
    *,
    outlier_detection: bool,
) -> None:
    """Set the cluster's lb policy (and locality weighting) from `loadBalancer`."""
    ch = lb.consistentHash if lb is not None else None
    if ch is not None:
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        cluster.ring_hash_lb_config.minimum_ring_size.value = (
            ch.minimumRingSize or DEFAULT_MIN_RING_SIZE
        )
    else:
        simple = (lb.simple if lb is not None else None) or "UNSPECIFIED"
        cluster.lb_policy = _SIMPLE[simple]
        warmup = slow_start(lb)
        if warmup is not None and cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(warmup)
        elif warmup is not None and cluster.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(warmup)
    setting = locality_setting(lb)
    if setting is not None and (setting.distribute or (outlier_detection and setting.failover)):
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def slow_start(lb: net.LoadBalancerSettings | None) -> SlowStartConfig | None:
    """Envoy's slow start for `warmup` (or the older `warmupDurationSecs`), or None."""
    if lb is None:
        return None
    out = SlowStartConfig()
    if lb.warmup is not None:
        out.slow_start_window.CopyFrom(duration(lb.warmup.duration))
        # Set even when unset, to Envoy's own defaults, as Istio sets them.
        out.aggression.default_value = lb.warmup.aggression or 1.0
        out.aggression.runtime_key = AGGRESSION_RUNTIME_KEY
        minimum = lb.warmup.minimumPercent
        out.min_weight_percent.value = minimum if minimum is not None else 10.0
        return out
    if lb.warmupDurationSecs is not None:
        out.slow_start_window.CopyFrom(duration(lb.warmupDurationSecs))
        return out
    return None


def hash_policies(lb: net.LoadBalancerSettings | None) -> list[HashPolicy]:
    """The route hash policies for `consistentHash`; empty for any other policy."""
    ch = lb.consistentHash if lb is not None else None
    if ch is None:
        return []
    out: list[HashPolicy] = []
    if ch.httpHeaderName:
        out.append(HashPolicy(header=HashPolicy.Header(header_name=ch.httpHeaderName)))
    if ch.httpCookie is not None:
        cookie = HashPolicy.Cookie(name=ch.httpCookie.name)
        if ch.httpCookie.path:
            cookie.path = ch.httpCookie.path
        if ch.httpCookie.ttl is not None:
            # A zero TTL makes Envoy generate a session cookie; no TTL, no cookie.
            cookie.ttl.CopyFrom(duration(ch.httpCookie.ttl))
        out.append(HashPolicy(cookie=cookie))
    if ch.useSourceIp:
        out.append(
            HashPolicy(connection_properties=HashPolicy.ConnectionProperties(source_ip=True))
        )
    if ch.httpQueryParameterName:
        out.append(
            HashPolicy(query_parameter=HashPolicy.QueryParameter(name=ch.httpQueryParameterName))
        )
    return out
