"""A sidecar's upstream ports: listeners, route tables equal to the outbound table's."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import Proxy, Upstream
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, endpoints, listeners, route_upstream, routes
from amimesh.translate.built import LISTENER, ROUTE
from amimesh.translate.generate import Generator

CATALOG = "catalog.default.svc.cluster.local"
DB = "db.default.svc.cluster.local"
BASE = """
apiVersion: v1
kind: Service
metadata: {name: catalog}
spec: {selector: {app: catalog}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog}
spec:
  host: catalog
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def split(v1: int) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog}}
spec:
  hosts: [catalog]
  http:
  - retries: {{attempts: 1, retryOn: unavailable}}
    route:
    - {{destination: {{host: catalog, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: catalog, subset: v2}}, weight: {100 - v1}}}
"""


def snapshot(text: str = "", previous: Snapshot | None = None) -> Snapshot:
    result = parse_documents(BASE + text, "up.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources, previous=previous)


UPSTREAMS = (
    Upstream(CATALOG, 9090, 16001, "GRPC"),
    Upstream(DB, 5432, 16002, "TCP"),
    Upstream("nowhere.default.svc.cluster.local", 80, 16003, "HTTP"),
)
PROXY = Proxy(id="app.default", outbound_port=15001, upstreams=UPSTREAMS)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def test_upstream_listeners() -> None:
    found = {lis.name: lis for lis in listeners.listeners(snapshot(), PROXY)}
    assert list(found) == [
        "outbound",
        f"upstream|9090|{CATALOG}",
        f"upstream|5432|{DB}",
        "upstream|80|nowhere.default.svc.cluster.local",
    ]
    grpc = found[f"upstream|9090|{CATALOG}"]
    assert as_dict(grpc.address) == {
        "socket_address": {"address": "127.0.0.1", "port_value": 16001}
    }
    m = hcm_pb2.HttpConnectionManager()
    assert grpc.filter_chains[0].filters[0].typed_config.Unpack(m)
    assert m.codec_type == hcm_pb2.HttpConnectionManager.AUTO
    assert m.rds.route_config_name == f"upstream|9090|{CATALOG}"
    assert [f.name for f in m.http_filters][-1] == "envoy.filters.http.router"
    tcp = tcp_proxy_pb2.TcpProxy()
    db = found[f"upstream|5432|{DB}"].filter_chains[0].filters[0]
    assert db.name == "envoy.filters.network.tcp_proxy"
    assert db.typed_config.Unpack(tcp)
    assert tcp.cluster == f"outbound|5432||{DB}"


def test_upstream_tables_carry_the_outbound_routes() -> None:
    snap = snapshot(split(80))
    outbound = routes.outbound(snap, "default", {})
    (mesh,) = [v for v in outbound.virtual_hosts if v.name == f"{CATALOG}:9090"]
    configs = route_upstream.upstream_configs(snap, "default", {}, UPSTREAMS)
    assert [c.name for c in configs] == [
        f"upstream|9090|{CATALOG}",
        "upstream|80|nowhere.default.svc.cluster.local",
    ]
    catalog, nowhere = configs
    (v,) = catalog.virtual_hosts
    assert list(v.domains) == ["*"]
    assert [as_dict(r) for r in v.routes] == [as_dict(r) for r in mesh.routes]
    weights = [(w.name, w.weight.value) for w in v.routes[0].route.weighted_clusters.clusters]
    assert weights == [(f"outbound|9090|v1|{CATALOG}", 80), (f"outbound|9090|v2|{CATALOG}", 20)]
    assert v.routes[0].route.retry_policy.num_retries.value == 1
    assert nowhere.virtual_hosts[0].routes[0].direct_response.status == 503


def test_upstream_tables_are_shared_and_memoised() -> None:
    gen = Generator(snapshot(split(80)))
    twin = Proxy(id="twin", upstreams=UPSTREAMS)
    one, two = gen.generate(PROXY), gen.generate(twin)
    assert one[ROUTE] is two[ROUTE]
    assert sorted(one[ROUTE]) == sorted(
        ["outbound", f"upstream|9090|{CATALOG}", "upstream|80|nowhere.default.svc.cluster.local"]
    )
    plain = gen.generate(Proxy(id="plain"))
    assert list(plain[ROUTE]) == ["outbound"]
    assert plain[ROUTE]["outbound"] is one[ROUTE]["outbound"]

    # An unrelated change keeps the upstream table's very object; a split change does not.
    name = f"upstream|9090|{CATALOG}"
    other = (
        "\n---\n{apiVersion: v1, kind: Service, metadata: {name: other}, "
        "spec: {ports: [{port: 80}]}}\n"
    )
    gen.update(snapshot(split(80) + other, previous=gen.snapshot))
    assert gen.generate(PROXY)[ROUTE][name] is one[ROUTE][name]
    gen.update(snapshot(split(50), previous=gen.snapshot))
    after = gen.generate(PROXY)[ROUTE][name]
    assert after is not one[ROUTE][name]
    clusters_ = after.message.virtual_hosts[0].routes[0].route.weighted_clusters.clusters
    assert [w.weight.value for w in clusters_] == [50, 50]
    assert list(gen.generate(PROXY)[LISTENER])[1:] == [
        f"upstream|9090|{CATALOG}",
        f"upstream|5432|{DB}",
        "upstream|80|nowhere.default.svc.cluster.local",
    ]


@pytest.mark.envoy
def test_envoy_accepts_upstream_listeners_and_routes(tmp_path: Path) -> None:
    snap = snapshot(split(80))
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap),
        load_assignments=[
            a for svc in snap.services.values() for a in endpoints.service_assignments(snap, svc)
        ],
        listeners=listeners.listeners(snap, PROXY),
        routes=[
            routes.outbound(snap, "default", {}),
            *route_upstream.upstream_configs(snap, "default", {}, UPSTREAMS),
        ],
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
