"""ClusterLoadAssignments: subsets, empty clusters, addresses, weights and localities."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.resources.meta import Resource
from amimesh.translate import cluster_locality, clusters, endpoints
from amimesh.translate.cluster_locality import Group, Locality

KINDS: dict[str, type[Resource]] = {
    "Service": kube.Service,
    "DestinationRule": net.DestinationRule,
    "ServiceEntry": net.ServiceEntry,
}
HOST = "reviews.default.svc.cluster.local"

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""


def rule(policy: str = "{}", subsets: str = "[]") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy: {policy}
  subsets: {subsets}
"""


def instance(name: str, version: str, port: int, locality: str = "") -> Instance:
    return Instance(
        id=name,
        workload=name,
        labels={"app": "reviews", "version": version},
        ports={9080: port},
        locality=locality,
    )


SPREAD = [
    instance("a1", "v1", 20001, "us-east/a/1"),
    instance("a2", "v2", 20002, "us-east/a/2"),
    instance("b1", "v1", 20003, "us-east/b"),
    instance("w1", "v1", 20004, "us-west/c"),
    instance("e1", "v2", 20005, "eu/d"),
]


def snapshot(texts: list[str], instances: list[Instance]) -> Snapshot:
    docs = [d for t in texts for d in yaml.safe_load_all(t) if d]
    return build_snapshot([KINDS[d["kind"]].model_validate(d) for d in docs], instances)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def assignments(snap: Snapshot, locality: str = "") -> dict[str, Any]:
    return {a.cluster_name: a for a in endpoints.load_assignments(snap, locality=locality)}


def ports_by_priority(cla: Any) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for g in cla.endpoints:
        ports = [e.endpoint.address.socket_address.port_value for e in g.lb_endpoints]
        out.setdefault(g.priority, []).extend(ports)
    return {p: sorted(v) for p, v in sorted(out.items())}


def locality_of(group: Any) -> str:
    return str(Locality(group.locality.region, group.locality.zone, group.locality.sub_zone))


def test_one_assignment_per_eds_cluster_with_subset_endpoints() -> None:
    snap = snapshot(
        [
            SERVICE,
            rule(subsets="[{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]"),
        ],
        [instance("a", "v1", 20001), instance("b", "v2", 20002)],
    )
    cla = assignments(snap)
    eds = [c.name for c in clusters.outbound_clusters(snap) if c.type == clusters.Cluster.EDS]
    assert sorted(cla) == sorted(eds)
    assert ports_by_priority(cla[f"outbound|9080||{HOST}"]) == {0: [20001, 20002]}
    assert ports_by_priority(cla[f"outbound|9080|v1|{HOST}"]) == {0: [20001]}
    # A subset that selects nothing still gets its (empty) assignment: the cluster warms.
    assert as_dict(cla[f"outbound|9080|v9|{HOST}"]) == {"cluster_name": f"outbound|9080|v9|{HOST}"}


def test_no_endpoints_gives_an_empty_assignment() -> None:
    cla = assignments(snapshot([SERVICE], []))
    assert as_dict(cla[f"outbound|9080||{HOST}"]) == {"cluster_name": f"outbound|9080||{HOST}"}


def test_static_service_entry_addresses_weights_and_localities() -> None:
    entry = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, locality: us/a, weight: 2}
  - {address: 10.0.0.2, locality: us/a, weight: 3}
  - {address: "unix:///run/db.sock"}
  - {address: not-an-ip.example.com}
"""
    cla = as_dict(assignments(snapshot([entry], []))["outbound|5432||db.internal"])
    assert cla["endpoints"] == [
        {
            "lb_endpoints": [
                {
                    "endpoint": {"address": {"pipe": {"path": "/run/db.sock"}}},
                    "load_balancing_weight": 1,
                }
            ],
            "load_balancing_weight": 1,
        },
        {
            "locality": {"region": "us", "zone": "a"},
            "lb_endpoints": [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.1", "port_value": 5432}}
                    },
                    "load_balancing_weight": 2,
                },
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.2", "port_value": 5432}}
                    },
                    "load_balancing_weight": 3,
                },
            ],
            "load_balancing_weight": 5,
        },
    ]


def test_dns_and_dfp_services_have_no_assignment() -> None:
    entries = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any}
spec:
  hosts: ["*.example.org"]
  ports: [{number: 80, name: http, protocol: HTTP}]
"""
    assert assignments(snapshot([entries], [])) == {}


OUTLIER = "{outlierDetection: {consecutive5xxErrors: 1}}"


def test_failover_priorities_follow_the_proxy_locality() -> None:
    snap = snapshot([SERVICE, rule(OUTLIER)], SPREAD)
    cla = assignments(snap, "us-east/a/1")[f"outbound|9080||{HOST}"]
    assert ports_by_priority(cla) == {
        0: [20001],  # same subzone
        1: [20002],  # same zone
        2: [20003],  # same region
        3: [20004, 20005],  # elsewhere
    }
    # The shared assignment (no proxy locality) has everything at one priority.
    shared = assignments(snap)[f"outbound|9080||{HOST}"]
    assert ports_by_priority(shared) == {0: [20001, 20002, 20003, 20004, 20005]}


def test_failover_target_region_comes_before_other_regions() -> None:
    policy = (
        "{outlierDetection: {consecutive5xxErrors: 1},"
        " loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu}]}}}"
    )
    snap = snapshot([SERVICE, rule(policy)], SPREAD)
    cla = assignments(snap, "us-east/b")[f"outbound|9080||{HOST}"]
    assert ports_by_priority(cla) == {0: [20003], 1: [20001, 20002], 2: [20005], 3: [20004]}
    c = {c.name: c for c in clusters.outbound_clusters(snap)}[f"outbound|9080||{HOST}"]
    assert c.common_lb_config.HasField("locality_weighted_lb_config")


@pytest.mark.parametrize(
    "policy",
    [
        "{}",  # no outlier detection: nothing would ever fail over
        "{outlierDetection: {consecutive5xxErrors: 1},"
        " loadBalancer: {localityLbSetting: {enabled: false}}}",
    ],
)
def test_no_priorities_without_outlier_detection_or_when_disabled(policy: str) -> None:
    snap = snapshot([SERVICE, rule(policy)], SPREAD)
    cla = assignments(snap, "us-east/a/1")[f"outbound|9080||{HOST}"]
    assert list(ports_by_priority(cla)) == [0]


def test_distribute_weights_localities_for_matching_proxies() -> None:
    policy = (
        "{loadBalancer: {localityLbSetting: {distribute: ["
        "{from: us-east/a/*, to: {us-east/a/*: 80, us-west/*: 20}}]}}}"
    )
    snap = snapshot([SERVICE, rule(policy)], SPREAD)
    cla = assignments(snap, "us-east/a/1")[f"outbound|9080||{HOST}"]
    weights = {locality_of(g): g.load_balancing_weight.value for g in cla.endpoints}
    # us-east/a/1 and us-east/a/2 share 80; unnamed localities get nothing.
    assert weights == {"us-east/a/1": 40, "us-east/a/2": 40, "us-west/c": 20}
    # A proxy elsewhere is not covered by the rule: plain weights.
    other = assignments(snap, "eu/d")[f"outbound|9080||{HOST}"]
    assert sorted(g.load_balancing_weight.value for g in other.endpoints) == [1, 1, 1, 1, 1]
    c = {c.name: c for c in clusters.outbound_clusters(snap)}[f"outbound|9080||{HOST}"]
    assert c.common_lb_config.HasField("locality_weighted_lb_config")


@pytest.mark.parametrize(
    ("pattern", "locality", "expected"),
    [
        ("*", "", True),
        ("us", "us/a/1", True),
        ("us/*", "us/a", True),
        ("us/a/*", "us/a/1", True),
        ("us/a/1", "us/a/2", False),
        ("eu", "us/a", False),
        ("*/a", "eu/a/x", True),
    ],
)
def test_locality_patterns(pattern: str, locality: str, expected: bool) -> None:
    assert cluster_locality.matches(pattern, Locality.parse(locality)) is expected


def test_failover_priorities_are_dense() -> None:
    groups = [Group(Locality.parse(loc), (loc,), 1) for loc in ("x/y", "us/a", "eu/b")]
    arranged = cluster_locality.with_failover(groups, Locality.parse("us/a"), [])
    assert [(g.items[0], g.priority) for g in arranged] == [("x/y", 1), ("us/a", 0), ("eu/b", 1)]


@pytest.mark.envoy
def test_envoy_accepts_arranged_assignments(tmp_path: Path) -> None:
    failover = (
        "{outlierDetection: {consecutive5xxErrors: 1},"
        " loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu}]}}}"
    )
    distribute = (
        "{loadBalancer: {localityLbSetting: {distribute: [{from: '*', to: {us-east: 100}}]}}}"
    )
    ratings = [
        SERVICE.replace("reviews", "ratings"),
        rule(distribute, "[{name: v1, labels: {version: v1}}]").replace("reviews", "ratings"),
    ]
    ratings_instances = [
        Instance(
            id=f"r-{i.id}",
            workload="ratings",
            labels={**i.labels, "app": "ratings"},
            ports=i.ports,
            locality=i.locality,
        )
        for i in SPREAD
    ]
    snap = snapshot([SERVICE, rule(failover), *ratings], SPREAD + ratings_instances)
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap),
        load_assignments=endpoints.load_assignments(snap, locality="us-east/b"),
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
