"""VirtualService tcp/tls routes and mirrors, Gateway TCP and passthrough servers, and
DestinationRule `h2UpgradePolicy`, as translated (the traffic itself:
tests/e2e/test_l4_routes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format

from amimesh.model.proxy import GatewayPort, Proxy, Upstream
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, listeners
from tests.unit import envoy_check

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {selector: {app: echo}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 9080}]}
"""


def snapshot(text: str) -> Any:
    result = parse_documents(SERVICES + "---\n" + text, "test.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def as_dict(message: Any) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))


def client(*upstreams: Upstream, labels: dict[str, str] | None = None) -> Proxy:
    return Proxy(
        id="client.default",
        workload="client",
        labels=labels or {"app": "client"},
        upstreams=upstreams,
    )


def tcp_proxy(listener: Any, chain: int = 0) -> dict[str, Any]:
    d = as_dict(listener)
    return dict(d["filter_chains"][chain]["filters"][-1]["typed_config"])


ECHO = Upstream(host="echo.default.svc.cluster.local", port=9000, listen_port=15001, protocol="TCP")


def test_tcp_route_weights_and_placement() -> None:
    snap = snapshot("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: db}}]
  - match: [{port: 9000, destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: db}}]
  - route:
    - {destination: {host: echo}, weight: 80}
    - {destination: {host: db}, weight: 20}
""")
    [lst] = listeners.listeners(snap, client(ECHO))
    tcp = tcp_proxy(lst)
    assert tcp["weighted_clusters"]["clusters"] == [
        {"name": "outbound|9000||echo.default.svc.cluster.local", "weight": 80},
        {"name": "outbound|9000||db.default.svc.cluster.local", "weight": 20},
    ]
    [canary] = listeners.listeners(snap, client(ECHO, labels={"app": "canary"}))
    assert tcp_proxy(canary)["cluster"] == "outbound|9000||db.default.svc.cluster.local"


def test_no_tcp_route_goes_to_the_service() -> None:
    [lst] = listeners.listeners(snapshot(""), client(ECHO))
    assert tcp_proxy(lst)["cluster"] == "outbound|9000||echo.default.svc.cluster.local"


GATEWAY_L4 = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 5000, name: tcp-unused, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: echo}}]
  tls:
  - match: [{sniHosts: [a.example.com, other.org]}]
    route: [{destination: {host: db}}]
  - match: [{sniHosts: [a.example.com, b.example.com]}]
    route: [{destination: {host: echo}}]
"""


def test_gateway_tcp_and_passthrough_ports() -> None:
    snap = snapshot(GATEWAY_L4)
    gateway = Proxy(
        id="gw.default",
        kind="gateway",
        workload="gw",
        labels={"istio": "ingressgateway"},
        gateway_ports=(
            GatewayPort(port=31400, listen_port=20001),
            GatewayPort(port=443, listen_port=20002),
            GatewayPort(port=5000, listen_port=20003),
        ),
    )
    found = listeners.listeners(snap, gateway)
    # Port 5000 has no route: no listener.
    assert [lst.name for lst in found] == ["gateway|31400", "gateway|443"]
    assert tcp_proxy(found[0])["cluster"] == "outbound|9000||echo.default.svc.cluster.local"
    tls = as_dict(found[1])
    chains = tls["filter_chains"]
    # other.org is outside the server's hosts; a.example.com was taken by the first route.
    assert [c["filter_chain_match"]["server_names"] for c in chains] == [
        ["a.example.com"],
        ["b.example.com"],
    ]
    assert tls["listener_filters"][0]["name"] == "envoy.filters.listener.tls_inspector"


def test_envoy_accepts_the_gateway_l4_config(tmp_path: Path) -> None:
    outcome = envoy_check.check(SERVICES + "---\n" + GATEWAY_L4, envoy_check.Files.create(tmp_path))
    assert outcome.kind == "accepted", outcome


def test_h2_upgrade_policy() -> None:
    def protocol_options(policy: str) -> dict[str, Any]:
        snap = snapshot(f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web}}
spec:
  host: web
  trafficPolicy: {{connectionPool: {{http: {{h2UpgradePolicy: {policy}}}}}}}
""")
        [c] = [c for c in clusters.outbound_clusters(snap) if "web" in c.name]
        opts = as_dict(c)["typed_extension_protocol_options"]
        return dict(opts["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"])

    assert "http2_protocol_options" in protocol_options("UPGRADE")["explicit_http_config"]
    for policy in ("DEFAULT", "DO_NOT_UPGRADE"):
        assert "http_protocol_options" in protocol_options(policy)["explicit_http_config"]


def test_mirrors_and_mirror_are_exclusive() -> None:
    result = parse_documents(
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
    mirror: {host: echo}
    mirrors: [{destination: {host: db}}]
""",
        "vs.yaml",
    )
    assert [e.message for e in result.errors] == [
        "set either mirror or mirrors, not both (as Istio)"
    ]
