"""Outbound and inbound clusters: discovery, DestinationRule policy, protocols; envoy validate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.resources.meta import Resource
from amimesh.translate import cluster_policy, clusters, endpoints

KINDS: dict[str, type[Resource]] = {
    "Service": kube.Service,
    "DestinationRule": net.DestinationRule,
    "ServiceEntry": net.ServiceEntry,
}
MAX = 4294967295
HTTP_OPTS = cluster_policy.HTTP_PROTOCOL_OPTIONS

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc-api, port: 7070}, {name: tcp-db, port: 5000}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080}]
"""

POLICY = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http:
        http1MaxPendingRequests: 5
        http2MaxRequests: 50
        maxRequestsPerConnection: 3
        maxRetries: 2
        idleTimeout: 30s
    outlierDetection:
      consecutive5xxErrors: 3
      consecutiveGatewayErrors: 2
      interval: 5s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 20
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, minimumRingSize: 64}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        tcp: {maxConnections: 1}
"""

EXTERNAL = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8000}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mirrors}
spec:
  hosts: [mirrors.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints:
  - {address: a.mirrors.example.com, labels: {site: a}}
  - {address: b.mirrors.example.com, labels: {site: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mirrors}
spec:
  host: mirrors.example.com
  subsets: [{name: a, labels: {site: a}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.wild.test"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: lb}
spec:
  hosts: [lb.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anything}
spec:
  hosts: ["*.example.org"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm}
spec:
  hosts: [vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: http, protocol: HTTP}]
  resolution: NONE
  endpoints: [{address: 10.1.0.7}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2, weight: 3}]
"""


def load(text: str) -> list[Resource]:
    return [KINDS[d["kind"]].model_validate(d) for d in yaml.safe_load_all(text) if d]


def instance(name: str, app: str, version: str, port: int, host_port: int) -> Instance:
    labels = {"app": app, "version": version}
    return Instance(id=name, workload=name, labels=labels, ports={port: host_port})


INSTANCES = [
    instance("reviews-v1", "reviews", "v1", 9080, 20001),
    instance("reviews-v2", "reviews", "v2", 9080, 20002),
    instance("ratings-v1", "ratings", "v1", 8080, 20003),
]


def snapshot(*texts: str) -> Snapshot:
    return build_snapshot([r for t in texts for r in load(t)], INSTANCES)


def by_name(snap: Snapshot) -> dict[str, Any]:
    return {c.name: c for c in clusters.outbound_clusters(snap)}


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def http_options(c: Any) -> dict[str, Any]:
    return as_dict(c)["typed_extension_protocol_options"][HTTP_OPTS]


def lb_policy(c: Any) -> str:
    name: str = clusters.Cluster.LbPolicy.Name(c.lb_policy)
    return name


REVIEWS = "reviews.default.svc.cluster.local"


def test_one_cluster_per_port_and_subset_with_eds_over_ads() -> None:
    cs = by_name(snapshot(MESH, POLICY))
    assert sorted(cs) == sorted(
        [
            f"outbound|{port}|{subset}|{REVIEWS}"
            for port in (9080, 7070, 5000)
            for subset in ("", "v1", "v2")
        ]
        + ["outbound|8080||ratings.default.svc.cluster.local"]
    )
    c = as_dict(cs[f"outbound|9080|v1|{REVIEWS}"])
    assert c["type"] == "EDS"
    assert c["eds_cluster_config"] == {
        "eds_config": {"ads": {}, "resource_api_version": "V3"},
        "service_name": f"outbound|9080|v1|{REVIEWS}",
    }


def test_istio_defaults_when_no_rule() -> None:
    c = as_dict(by_name(snapshot(MESH))["outbound|8080||ratings.default.svc.cluster.local"])
    assert c["connect_timeout"] == "10s"
    assert c["lb_policy"] == "LEAST_REQUEST"
    assert c["circuit_breakers"] == {
        "thresholds": [
            {
                "max_connections": MAX,
                "max_pending_requests": MAX,
                "max_requests": MAX,
                "max_retries": MAX,
                "track_remaining": True,
            }
        ]
    }
    assert "outlier_detection" not in c
    assert "common_lb_config" not in c


def test_port_protocols_choose_upstream_http_version() -> None:
    cs = by_name(snapshot(MESH))
    http1 = http_options(cs[f"outbound|9080||{REVIEWS}"])
    assert http1["explicit_http_config"] == {"http_protocol_options": {}}
    h2 = http_options(cs[f"outbound|7070||{REVIEWS}"])
    assert h2["explicit_http_config"] == {"http2_protocol_options": {}}
    assert not cs[f"outbound|5000||{REVIEWS}"].typed_extension_protocol_options


def test_connection_pool_and_outlier_detection() -> None:
    cluster = by_name(snapshot(MESH, POLICY))[f"outbound|9080||{REVIEWS}"]
    assert lb_policy(cluster) == "ROUND_ROBIN"
    c = as_dict(cluster)
    assert c["connect_timeout"] == "2s"
    assert c["circuit_breakers"]["thresholds"] == [
        {
            "max_connections": 10,
            "max_pending_requests": 5,
            "max_requests": 50,
            "max_retries": 2,
            "track_remaining": True,
        }
    ]
    assert c["typed_extension_protocol_options"][HTTP_OPTS]["common_http_protocol_options"] == {
        "idle_timeout": "30s",
        "max_requests_per_connection": 3,
    }
    assert c["outlier_detection"] == {
        "consecutive_5xx": 3,
        "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 2,
        "enforcing_consecutive_gateway_failure": 100,
        "enforcing_success_rate": 0,
        "interval": "5s",
        "base_ejection_time": "30s",
        "max_ejection_percent": 50,
    }
    assert c["common_lb_config"] == {"healthy_panic_threshold": {"value": 20.0}}


def test_outlier_detection_alone_disables_panic_mode_as_istio() -> None:
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0}
"""
    c = as_dict(by_name(snapshot(MESH, rule))["outbound|8080||ratings.default.svc.cluster.local"])
    assert c["outlier_detection"] == {
        "consecutive_5xx": 0,
        "enforcing_consecutive_5xx": 0,
        "enforcing_success_rate": 0,
    }
    assert c["common_lb_config"] == {"healthy_panic_threshold": {}}  # 0%: never panic


def test_subset_policy_replaces_top_level_fields_one_by_one() -> None:
    cs = by_name(snapshot(MESH, POLICY))
    v1 = as_dict(cs[f"outbound|9080|v1|{REVIEWS}"])
    # loadBalancer replaced; connectionPool and outlierDetection inherited.
    assert v1["lb_policy"] == "RING_HASH"
    assert v1["ring_hash_lb_config"] == {"minimum_ring_size": "64"}
    assert v1["circuit_breakers"]["thresholds"][0]["max_connections"] == 10
    assert v1["outlier_detection"]["consecutive_5xx"] == 3
    assert lb_policy(cs[f"outbound|9080|v2|{REVIEWS}"]) == "ROUND_ROBIN"
    v2 = as_dict(cs[f"outbound|9080|v2|{REVIEWS}"])
    # connectionPool replaced as a whole: the top-level http settings are gone.
    assert v2["circuit_breakers"]["thresholds"][0] == {
        "max_connections": 1,
        "max_pending_requests": MAX,
        "max_requests": MAX,
        "max_retries": MAX,
        "track_remaining": True,
    }
    assert v2["connect_timeout"] == "10s"
    assert "common_http_protocol_options" not in v2["typed_extension_protocol_options"][HTTP_OPTS]


@pytest.mark.parametrize(
    ("simple", "policy"),
    [
        ("ROUND_ROBIN", "ROUND_ROBIN"),
        ("LEAST_REQUEST", "LEAST_REQUEST"),
        ("LEAST_CONN", "LEAST_REQUEST"),
        ("RANDOM", "RANDOM"),
        ("UNSPECIFIED", "LEAST_REQUEST"),
    ],
)
def test_simple_load_balancers(simple: str, policy: str) -> None:
    rule = f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ratings}}
spec:
  host: ratings
  trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}
"""
    c = by_name(snapshot(MESH, rule))["outbound|8080||ratings.default.svc.cluster.local"]
    assert lb_policy(c) == policy


def test_hash_policy_for_routes() -> None:
    snap = snapshot(MESH, POLICY)
    assert clusters.hash_policy_for(snap, REVIEWS, None, 9080) == []
    assert [as_dict(h) for h in clusters.hash_policy_for(snap, REVIEWS, "v1", 9080)] == [
        {"header": {"header_name": "x-user"}}
    ]
    # v2 inherits the top-level ROUND_ROBIN: no hashing.
    assert clusters.hash_policy_for(snap, REVIEWS, "v2", 9080) == []
    assert clusters.hash_policy_for(snap, "nowhere.example.com", None, 80) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{httpCookie: {name: u, path: /, ttl: 10s}}",
            {"cookie": {"name": "u", "path": "/", "ttl": "10s"}},
        ),
        ("{httpCookie: {name: u}}", {"cookie": {"name": "u"}}),
        ("{useSourceIp: true}", {"connection_properties": {"source_ip": True}}),
        ("{httpQueryParameterName: user}", {"query_parameter": {"name": "user"}}),
    ],
)
def test_consistent_hash_keys(spec: str, expected: dict[str, Any]) -> None:
    rule = f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ratings}}
spec:
  host: ratings
  trafficPolicy: {{loadBalancer: {{consistentHash: {spec}}}}}
"""
    snap = snapshot(MESH, rule)
    host = "ratings.default.svc.cluster.local"
    c = as_dict(by_name(snap)[f"outbound|8080||{host}"])
    assert c["lb_policy"] == "RING_HASH"
    assert c["ring_hash_lb_config"] == {"minimum_ring_size": "1024"}
    assert [as_dict(h) for h in clusters.hash_policy_for(snap, host, None, 8080)] == [expected]


def test_service_entry_resolutions() -> None:
    cs = by_name(snapshot(EXTERNAL))
    dns = as_dict(cs["outbound|80||httpbin.org"])
    assert dns["cluster_type"]["name"] == "envoy.cluster.dns"
    config = dns["cluster_type"]["typed_config"]
    assert "all_addresses_in_single_endpoint" not in config  # False: every address counts
    assert config["dns_lookup_family"] == "V4_PREFERRED"
    assert config["respect_dns_ttl"] is True
    # No endpoints: the host itself is resolved, at the target port.
    assert dns["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "httpbin.org", "port_value": 8000}
    }

    subset = as_dict(cs["outbound|80|a|mirrors.example.com"])
    addrs = [
        e["endpoint"]["address"]["socket_address"]["address"]
        for g in subset["load_assignment"]["endpoints"]
        for e in g["lb_endpoints"]
    ]
    assert addrs == ["a.mirrors.example.com"]

    # A wildcard host cannot be resolved: no endpoints, but the cluster exists.
    assert "endpoints" not in as_dict(cs["outbound|80||*.wild.test"])["load_assignment"]

    logical = as_dict(cs["outbound|443||lb.example.com"])
    assert logical["cluster_type"]["typed_config"]["all_addresses_in_single_endpoint"] is True
    assert "typed_extension_protocol_options" not in logical  # TLS: not HTTP

    dfp = as_dict(cs["outbound|80||*.example.org"])
    assert dfp["cluster_type"]["name"] == "envoy.clusters.dynamic_forward_proxy"
    assert dfp["lb_policy"] == "CLUSTER_PROVIDED"
    assert dfp["cluster_type"]["typed_config"]["dns_cache_config"]["name"] == "ami_dns_cache"

    # NONE with endpoints, and STATIC: pushed by EDS.
    assert as_dict(cs["outbound|9000||vm.internal"])["type"] == "EDS"
    assert as_dict(cs["outbound|5432||db.internal"])["type"] == "EDS"


def test_inbound_clusters() -> None:
    proxy = Proxy(
        id="p",
        inbound=(
            InboundPort(port=9080, listen_port=15006, app_port=8081),
            InboundPort(port=7070, listen_port=15007, app_port=7071, protocol="GRPC"),
        ),
    )
    cs = {c.name: as_dict(c) for c in clusters.inbound_clusters(proxy)}
    assert sorted(cs) == ["inbound|7070||", "inbound|9080||"]
    c = cs["inbound|9080||"]
    assert c["type"] == "STATIC"
    assert c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 8081}
    }
    h2 = cs["inbound|7070||"]["typed_extension_protocol_options"][HTTP_OPTS]
    assert h2["explicit_http_config"] == {"http2_protocol_options": {}}
    assert clusters.inbound_clusters(Proxy(id="gw", kind="gateway", inbound=proxy.inbound)) == []


def test_max_concurrency_limits_the_inbound_http_clusters() -> None:
    ports = (
        InboundPort(port=8080, listen_port=15006, app_port=8081),
        InboundPort(port=7070, listen_port=15007, app_port=7071, protocol="GRPC"),
        InboundPort(port=5000, listen_port=15008, app_port=5001, protocol="TCP"),
    )
    limited = {
        c.name: as_dict(c)["circuit_breakers"]["thresholds"]
        for c in clusters.inbound_clusters(Proxy(id="p", inbound=ports, max_concurrency=3))
    }
    # HTTP/1.1 to the app: 3 connections are 3 requests in flight, 30 more wait.
    assert limited["inbound|8080||"] == [
        {
            "max_connections": 3,
            "max_pending_requests": 30,
            "max_requests": 3,
            "max_retries": cluster_policy.MAX_THRESHOLD,
            "track_remaining": True,
        }
    ]
    unlimited = {
        c.name: as_dict(c)["circuit_breakers"]["thresholds"]
        for c in clusters.inbound_clusters(Proxy(id="p", inbound=ports))
    }
    assert unlimited["inbound|8080||"] == [
        {
            "max_connections": cluster_policy.MAX_THRESHOLD,
            "max_pending_requests": cluster_policy.MAX_THRESHOLD,
            "max_requests": cluster_policy.MAX_THRESHOLD,
            "max_retries": cluster_policy.MAX_THRESHOLD,
            "track_remaining": True,
        }
    ]
    # Not HTTP/1.1: not limited.
    for name in ("inbound|7070||", "inbound|5000||"):
        assert limited[name] == unlimited[name]


def test_output_is_deterministic() -> None:
    a = [
        c.SerializeToString(deterministic=True)
        for c in clusters.outbound_clusters(snapshot(MESH, POLICY, EXTERNAL))
    ]
    b = [
        c.SerializeToString(deterministic=True)
        for c in clusters.outbound_clusters(snapshot(MESH, POLICY, EXTERNAL))
    ]
    assert a == b


@pytest.mark.envoy
def test_envoy_accepts_every_cluster(tmp_path: Path) -> None:
    snap = snapshot(MESH, POLICY, EXTERNAL)
    proxy = Proxy(
        id="p",
        inbound=(
            InboundPort(port=9080, listen_port=15006, app_port=8081),
            InboundPort(port=7070, listen_port=15007, app_port=7071, protocol="GRPC"),
            InboundPort(port=5000, listen_port=15008, app_port=5001, protocol="TCP"),
        ),
        max_concurrency=10,
    )
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap) + clusters.inbound_clusters(proxy),
        load_assignments=endpoints.load_assignments(snap),
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
