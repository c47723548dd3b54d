from __future__ import annotations

from typing import Any

from amimesh.model import hosts
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy, Upstream, proxy_from_metadata
from amimesh.model.snapshot import Instance, build_snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.resources.meta import Resource


def svc(name: str, ports: list[dict[str, Any]], ns: str = "default", **sel: str) -> kube.Service:
    return kube.Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": sel or {"app": name}, "ports": ports},
        }
    )


def res(cls: type[Resource], kind: str, name: str, spec: dict[str, Any], ns: str = "default"):  # type: ignore[no-untyped-def]
    return cls.model_validate(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )


def inst(id: str, app: str, version: str, port: int, host_port: int) -> Instance:
    return Instance(
        id=id, workload=id, labels={"app": app, "version": version}, ports={port: host_port}
    )


def test_host_forms() -> None:
    assert hosts.expand("reviews", "shop") == "reviews.shop.svc.cluster.local"
    assert hosts.expand("reviews.prod", "shop") == "reviews.prod.svc.cluster.local"
    assert hosts.expand("reviews.prod.svc", "shop") == "reviews.prod.svc.cluster.local"
    assert hosts.expand("api.example.com", "shop") == "api.example.com"
    assert hosts.name_forms("reviews", "shop", "shop") == [
        "reviews",
        "reviews.shop",
        "reviews.shop.svc",
        "reviews.shop.svc.cluster.local",
    ]
    assert "reviews" not in hosts.name_forms("reviews", "shop", "other")
    assert hosts.wildcard_matches("*.example.com", "api.example.com")
    assert not hosts.wildcard_matches("*.example.com", "example.org")


def test_endpoints_follow_selector_target_port_and_readiness() -> None:
    s = svc("reviews", [{"name": "http", "port": 9080, "targetPort": 8080}])
    snap = build_snapshot(
        [s],
        [
            inst("r1", "reviews", "v1", 8080, 20001),
            inst("r2", "reviews", "v2", 8080, 20002),
            inst("x", "ratings", "v1", 8080, 20003),
            Instance(
                id="r3", workload="r3", labels={"app": "reviews"}, ports={8080: 1}, ready=False
            ),
        ],
    )
    host = "reviews.default.svc.cluster.local"
    assert [e.port for e in snap.endpoints_for(host, 9080)] == [20001, 20002]
    assert [e.port for e in snap.endpoints_for(host, 9080, {"version": "v2"})] == [20002]
    assert snap.service(host) is not None
    assert snap.service(host).port(9080).protocol == "HTTP"  # type: ignore[union-attr]


def test_named_target_port() -> None:
    s = svc("grpc", [{"name": "grpc", "port": 50051, "targetPort": "api"}])
    i = Instance(
        id="g", workload="g", labels={"app": "grpc"}, ports={7000: 21000}, port_names={"api": 7000}
    )
    snap = build_snapshot([s], [i])
    host = "grpc.default.svc.cluster.local"
    assert [e.port for e in snap.endpoints_for(host, 50051)] == [21000]
    assert snap.services[host].ports[0].protocol == "GRPC"


def test_virtual_services_destination_rules_and_delegates_indexed_by_fqdn() -> None:
    s = svc("reviews", [{"port": 9080}])
    vs = res(
        net.VirtualService,
        "VirtualService",
        "r",
        {"hosts": ["reviews"], "http": [{"delegate": {"name": "d"}}]},
    )
    d = res(
        net.VirtualService,
        "VirtualService",
        "d",
        {"http": [{"route": [{"destination": {"host": "reviews"}}]}]},
    )
    dr = res(
        net.DestinationRule,
        "DestinationRule",
        "r",
        {"host": "reviews.default", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    )
    snap = build_snapshot([s, vs, d, dr])
    host = "reviews.default.svc.cluster.local"
    assert snap.virtual_services[host] == (vs,)
    assert snap.delegate("d", "default") is d
    assert snap.destination_rule(host) is dr
    assert snap.subset_labels(host, "v1") == {"version": "v1"}
    assert snap.subset_labels(host, "v9") is None
    assert snap.resolve("reviews", "default") == host


def test_service_entry_hosts_resolve_exactly() -> None:
    se = res(
        net.ServiceEntry,
        "ServiceEntry",
        "ext",
        {
            "hosts": ["httpbin.org"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC",
            "endpoints": [{"address": "127.0.0.1", "ports": {"http": 18080}}],
        },
    )
    snap = build_snapshot([se])
    assert snap.resolve("httpbin.org", "default") == "httpbin.org"
    assert snap.services["httpbin.org"].location == "MESH_EXTERNAL"
    assert [(e.address, e.port) for e in snap.endpoints_for("httpbin.org", 80)] == [
        ("127.0.0.1", 18080)
    ]


def test_workload_entry_selected_by_service() -> None:
    s = svc("legacy", [{"name": "http", "port": 80, "targetPort": 8080}])
    we = res(
        net.WorkloadEntry,
        "WorkloadEntry",
        "vm1",
        {"address": "127.0.0.2", "labels": {"app": "legacy"}},
    )
    snap = build_snapshot([s, we])
    eps = snap.endpoints_for("legacy.default.svc.cluster.local", 80)
    assert [(e.address, e.port) for e in eps] == [("127.0.0.2", 8080)]


def test_rebuild_reuses_unchanged_objects() -> None:
    a = svc("a", [{"port": 80}])
    b = svc("b", [{"port": 80}])
    one = build_snapshot([a, b], [inst("a1", "a", "v1", 80, 1)], version=1)
    b2 = svc("b", [{"port": 81}])
    two = build_snapshot([a, b2], [inst("a1", "a", "v1", 80, 1)], version=2, previous=one)
    ha, hb = "a.default.svc.cluster.local", "b.default.svc.cluster.local"
    assert two.services[ha] is one.services[ha]
    assert two.endpoints[(ha, 80)] is one.endpoints[(ha, 80)]
    assert two.services[hb] is not one.services[hb]


def test_proxy_metadata_round_trip() -> None:
    p = Proxy(
        id="reviews-v1.default",
        workload="reviews-v1",
        labels={"app": "reviews"},
        outbound_port=15001,
        inbound=(InboundPort(port=9080, listen_port=20000, app_port=30000, name="http"),),
        upstreams=(Upstream("catalog.default.svc.cluster.local", 9090, 15100),),
        gateway_ports=(GatewayPort(port=80, listen_port=18080),),
    )
    # A protobuf Struct turns numbers into floats; the metadata keeps them as strings.
    assert proxy_from_metadata(p.id, p.metadata()) == p
