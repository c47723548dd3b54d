"""What the runtime decides for each replica and for the gateway, before any process."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from amimesh.agent.config import CredentialSpec, ProbeSpec
from amimesh.config.directory import DirectorySource
from amimesh.config.store import Store
from amimesh.model.proxy import GatewayPort, InboundPort
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import Resource, Workload, parse_documents
from amimesh.resources.workload import Probe
from amimesh.runtime import gateway, plan
from amimesh.runtime.state import StateDir
from amimesh.runtime.supervisor import EXCLUDE_DIRS, config_root

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web, version: v1}}
spec:
  command: [python, web.py]
  args: [--fast]
  env: [{name: GREETING, value: hi}]
  workingDir: apps/web
  serviceAccount: web-sa
  replicas: 2
  locality: eu/west
  restartPolicy: OnFailure
  ports: [{name: http, port: 8080}, {name: admin, port: 9901}]
  readinessProbe:
    httpGet: {path: /health, port: admin}
    periodSeconds: 2
    failureThreshold: 5
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: grpc, port: 9090}, {name: http, port: 80}, {name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: elsewhere}
spec:
  selector: {app: other}
  ports: [{name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*"]
    - port: {number: 80, name: http-80, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: private}
spec:
  selector: {istio: eastwestgateway}
  servers:
    - port: {number: 15443, name: http, protocol: HTTP}
      hosts: ["*"]
"""


@pytest.fixture
def parsed() -> list[Resource]:
    result = parse_documents(MESH, "mesh.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return list(result.resources)


def ports_from(start: int) -> plan.Allocate:
    counter = itertools.count(start)
    return lambda: next(counter)


def web(parsed: list[Resource]) -> Workload:
    return next(r for r in parsed if isinstance(r, Workload))


def test_replica_gets_names_ports_paths_and_upstreams(parsed: list[Resource]) -> None:
    snap = build_snapshot(parsed)
    state = StateDir(Path("/state/m"))
    spec = plan.workload_instance(
        web(parsed),
        1,
        services=snap.services.values(),
        allocate=ports_from(41000),
        state=state,
        xds_port=40000,
        config_dir=Path("/conf"),
    )
    assert spec.name == "web-1" and spec.id == "web-1.shop"
    assert spec.restart_policy == "OnFailure"
    proxy = spec.agent.proxy
    assert proxy.inbound == (
        InboundPort(8080, 41000, 41001, "http", "HTTP"),
        InboundPort(9901, 41002, 41003, "admin", "HTTP"),
    )
    assert proxy.outbound_port == 41004
    # Only the namespace's GRPC, HTTP2 and TCP ports; `http` ports go by the HTTP proxy.
    assert [(u.host, u.port, u.protocol) for u in proxy.upstreams] == [
        ("catalog.shop.svc.cluster.local", 5432, "TCP"),
        ("catalog.shop.svc.cluster.local", 9090, "GRPC"),
    ]
    assert proxy.admin_port == 41007
    assert proxy.labels == {"app": "web", "version": "v1"}
    assert proxy.service_account == "web-sa" and proxy.locality == "eu/west"
    app = spec.agent.app
    assert app is not None
    assert app.command == ("python", "web.py", "--fast")
    assert app.cwd == "/conf/apps/web"
    assert app.env == {"GREETING": "hi"}
    assert app.log == "/state/m/logs/web-1.shop.log"
    assert app.probe == ProbeSpec(
        kind="http", port=41003, path="/health", period_s=2, failure_threshold=5
    )
    assert spec.config_path == Path("/state/m/instances/web-1.shop/agent.json")
    assert spec.agent.envoy.bootstrap == "/state/m/instances/web-1.shop/envoy.json"
    assert spec.agent.envoy.log == "/state/m/logs/web-1.shop.envoy.log"
    # Envoy runs in the mesh's directory: relative certificate paths are read from there.
    assert spec.agent.envoy.cwd == "/conf"
    assert spec.agent.proxy.access_log == "/state/m/logs/web-1.shop.access.log"
    assert spec.agent.proxy.access_log_format == "json"
    assert spec.agent.xds.port == 40000
    reg = spec.registration
    assert reg is not None and reg.id == "web-1.shop"
    assert reg.ports == {8080: 41000, 9901: 41002}  # workload port → sidecar inbound
    assert reg.port_names == {"http": 8080, "admin": 9901}


def test_max_concurrency_reaches_the_proxy_with_one_envoy_worker(parsed: list[Resource]) -> None:
    snap = build_snapshot(parsed)

    def replica(wl: Workload) -> plan.InstanceSpec:
        return plan.workload_instance(
            wl,
            0,
            services=snap.services.values(),
            allocate=ports_from(41000),
            state=StateDir(Path("/state/m")),
            xds_port=40000,
            config_dir=Path("/conf"),
        )

    plain = replica(web(parsed))
    assert plain.agent.proxy.max_concurrency == 0
    assert plain.agent.envoy.concurrency == 1
    annotated = web(parsed).model_copy(deep=True)
    annotated.metadata.annotations["ami.dev/max-concurrency"] = "4"
    limited = replica(annotated)
    assert limited.agent.proxy.max_concurrency == 4
    # One worker: Envoy's connection pools are per worker, its circuit breakers are not.
    assert limited.agent.envoy.concurrency == 1


def tcp_probe(port: int) -> Probe:
    return Probe.model_validate({"tcpSocket": {"port": port}})


def test_probe_defaults_and_ports() -> None:
    ports = (InboundPort(8080, 1, 2, "http"), InboundPort(9090, 3, 4, "grpc"))
    assert plan.probe_spec(None, ()) is None  # no ports: ready once started
    default = plan.probe_spec(None, ports)
    assert default is not None and (default.kind, default.port) == ("tcp", 2)
    spec = plan.probe_spec(tcp_probe(9090), ports)
    assert spec is not None and (spec.kind, spec.port) == ("tcp", 4)
    http = plan.probe_spec(Probe.model_validate({"httpGet": {"path": "/h"}}), ports)
    assert http is not None and (http.kind, http.port, http.path) == ("http", 2, "/h")
    with pytest.raises(plan.PlanError, match="7777"):
        plan.probe_spec(tcp_probe(7777), ports)
    with pytest.raises(plan.PlanError, match="declares none"):
        plan.probe_spec(tcp_probe(7777), ())


def test_a_liveness_probe_is_aimed_at_the_apps_port_and_none_is_none() -> None:
    ports = (InboundPort(8080, 1, 2, "http"),)
    assert plan.liveness_spec(None, ports) is None  # no default, unlike readiness
    live = Probe.model_validate(
        {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 5, "failureThreshold": 4}
    )
    spec = plan.liveness_spec(live, ports)
    assert spec is not None
    assert (spec.kind, spec.port, spec.path, spec.period_s, spec.failure_threshold) == (
        "http",
        2,
        "/live",
        5,
        4,
    )
    with pytest.raises(plan.PlanError, match="livenessProbe port 7777"):
        plan.liveness_spec(tcp_probe(7777), ports)


def test_gateway_instance_and_server_ports(parsed: list[Resource]) -> None:
    snap = build_snapshot(parsed)
    assert gateway.server_ports(snap) == {80: "http", 8080: "http"}  # not eastwest's
    spec = plan.gateway_instance(
        (GatewayPort(80, 41000),),
        allocate=ports_from(42000),
        state=StateDir(Path("/s")),
        xds_port=1,
        config_dir=Path("/conf"),
    )
    assert spec.agent.envoy.cwd == "/conf"
    assert spec.agent.envoy.concurrency == 2  # a sidecar runs 1
    proxy = spec.agent.proxy
    assert proxy.kind == "gateway"
    assert proxy.labels == {"istio": "ingressgateway", "app": "istio-ingressgateway"}
    assert proxy.gateway_ports == (GatewayPort(80, 41000),)
    assert proxy.admin_port == 42000
    assert spec.agent.app is None and spec.registration is None
    assert spec.restart_policy == "Always"


def test_config_root_and_tasks_are_left_out(tmp_path: Path) -> None:
    doc = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {ports: [{port: 80}]}\n"
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(doc % "from-tasks")
    (tmp_path / "a.yaml").write_text(doc % "top")
    (tmp_path / "sub" / "tasks").mkdir(parents=True)
    (tmp_path / "sub" / "tasks" / "t.yaml").write_text(doc % "nested-task")
    (tmp_path / "sub" / "b.yaml").write_text(doc % "nested")
    assert config_root(tmp_path) == tmp_path
    store = Store()
    assert DirectorySource(store, tmp_path, exclude_dirs=EXCLUDE_DIRS).sync() == []
    assert sorted(r.name for r in store.resources()) == ["nested", "top"]
    # Changes under tasks/ are ignored by the watch too.
    assert (
        DirectorySource(store, tmp_path, exclude_dirs=EXCLUDE_DIRS).reload(
            [tmp_path / "tasks" / "t.yaml"]
        )
        == []
    )
    assert sorted(r.name for r in store.resources()) == ["nested", "top"]
    (tmp_path / "mesh").mkdir()
    assert config_root(tmp_path) == tmp_path / "mesh"


def test_gateway_credentials_from_files_or_the_mesh_ca(tmp_path: Path) -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*", "shop/shop.example.com", "10.0.0.1"]
    tls: {mode: SIMPLE, credentialName: shop-tls}
  - port: {number: 9443, name: https-m, protocol: HTTPS}
    hosts: [partner.example.com]
    tls: {mode: MUTUAL, credentialName: "kubernetes://partner"}
"""
    result = parse_documents(text, "gw.yaml")
    assert result.ok, [str(e) for e in result.errors]
    home = tmp_path / "credentials" / "partner"
    home.mkdir(parents=True)
    (home / "tls.crt").write_text("chain")
    (home / "tls.key").write_text("key")
    specs = gateway.credentials(build_snapshot(result.resources), tmp_path)
    assert specs == (
        CredentialSpec(
            "partner",
            ca_secret=True,
            cert_file=str(home / "tls.crt"),
            key_file=str(home / "tls.key"),
        ),
        CredentialSpec(
            "shop-tls",
            dns_names=("localhost", "shop.example.com"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        ),
    )
