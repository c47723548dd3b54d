"""The agent's config file and the environment it gives the app (docs/runtime.md)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from amimesh.agent import config as ac
from amimesh.agent.env import NO_PROXY, app_command, app_env, env_name, upstream_var
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy, Upstream


def sidecar_config(tmp_path: Path) -> ac.AgentConfig:
    proxy = Proxy(
        id="web-0.shop",
        workload="web",
        namespace="shop",
        labels={"app": "web", "version": "v1"},
        service_account="web-sa",
        outbound_port=41001,
        inbound=(
            InboundPort(port=8080, listen_port=41002, app_port=41003, name="http"),
            InboundPort(
                port=9090, listen_port=41004, app_port=41005, name="grpc-api", protocol="GRPC"
            ),
        ),
        locality="eu/west-1a",
        upstreams=(
            Upstream("catalog.shop.svc.cluster.local", 9090, 41006, "GRPC"),
            Upstream("cache-db.shop.svc.cluster.local", 6379, 41007, "TCP"),
        ),
        admin_port=41008,
        max_concurrency=4,
    )
    return ac.AgentConfig(
        name="web-0",
        proxy=proxy,
        xds=ac.XdsSpec(port=40000),
        envoy=ac.EnvoySpec(bootstrap=str(tmp_path / "envoy.json"), log=str(tmp_path / "e.log")),
        app=ac.AppSpec(
            command=("python", "web.py", "--debug"),
            cwd=str(tmp_path),
            log=str(tmp_path / "web.log"),
            env={"GREETING": "hi", "NO_PROXY": "override"},
            probe=ac.ProbeSpec(kind="http", port=41003, path="/health", failure_threshold=2),
        ),
        grace_s=0.25,
    )


def test_config_round_trips_through_a_private_file(tmp_path: Path) -> None:
    cfg = sidecar_config(tmp_path)
    path = ac.write(tmp_path / "agent.json", cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ac.read(path) == cfg
    data = json.loads(path.read_text())
    assert data["version"] == ac.VERSION
    assert data["proxy"]["inbound"][1] == {
        "port": 9090,
        "listen_port": 41004,
        "app_port": 41005,
        "name": "grpc-api",
        "protocol": "GRPC",
    }
    assert data["app"]["command"] == ["python", "web.py", "--debug"]


def test_gateway_config_round_trips_without_an_app(tmp_path: Path) -> None:
    cfg = ac.AgentConfig(
        name="gw-0",
        proxy=Proxy(
            id="gw-0.istio-system",
            kind="gateway",
            labels={"istio": "ingressgateway"},
            gateway_ports=(GatewayPort(80, 41000),),
            admin_port=41001,
        ),
        xds=ac.XdsSpec(port=40000, delta=False),
        envoy=ac.EnvoySpec(bootstrap="b.json", log="e.log"),
    )
    assert ac.AgentConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    data = sidecar_config(tmp_path).to_json() | {"version": 99}
    with pytest.raises(ValueError, match="version 99"):
        ac.AgentConfig.from_json(data)


def test_app_env_is_the_runtime_contract(tmp_path: Path) -> None:
    cfg = sidecar_config(tmp_path)
    inherited = {"PATH": "/usr/bin", "HOME": "/home/me", "HTTP_PROXY": "http://corp:3128"}
    env = app_env(cfg, inherited, "/venv/bin")
    assert env["PATH"] == f"/venv/bin{os.pathsep}/usr/bin"
    assert env["HOME"] == "/home/me"
    assert env["PORT"] == "41003"  # the first port's app port
    assert env["PORT_HTTP"] == "41003"
    assert env["PORT_GRPC_API"] == "41005"
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://127.0.0.1:41001"
    assert env["no_proxy"] == NO_PROXY == "localhost,127.0.0.1,::1"
    assert env["NO_PROXY"] == "override"  # the Workload's env comes last
    assert env["AMI_UPSTREAM_CATALOG_9090"] == "127.0.0.1:41006"
    assert env["AMI_UPSTREAM_CACHE_DB_6379"] == "127.0.0.1:41007"
    assert env["AMI_WORKLOAD"] == "web"
    assert env["AMI_NAMESPACE"] == "shop"
    assert env["AMI_INSTANCE"] == "web-0"
    assert env["AMI_SERVICE_ACCOUNT"] == "web-sa"
    assert env["GREETING"] == "hi"
    assert inherited["HTTP_PROXY"] == "http://corp:3128"  # not modified in place


def test_app_env_names_the_sidecars_admin_and_the_identitys_socket(tmp_path: Path) -> None:
    cfg = sidecar_config(tmp_path)
    env = app_env(cfg, {}, "/venv/bin", "/state/instances/web-0.shop/sds.sock")
    assert env["AMI_PROXY_ADMIN_PORT"] == str(cfg.proxy.admin_port)
    assert env["AMI_SDS_SOCKET"] == "/state/instances/web-0.shop/sds.sock"
    assert "AMI_SDS_SOCKET" not in app_env(cfg, {}, "/venv/bin")  # no identity served


def test_app_env_without_ports_or_outbound() -> None:
    cfg = ac.AgentConfig(
        name="job-0",
        proxy=Proxy(id="job-0.default", workload="job"),
        xds=ac.XdsSpec(port=1),
        envoy=ac.EnvoySpec(bootstrap="b", log="l"),
        app=ac.AppSpec(command=("true",), cwd="/", log="l"),
    )
    env = app_env(cfg, {}, "/venv/bin")
    assert "PORT" not in env and "HTTP_PROXY" not in env
    assert env["PATH"] == "/venv/bin"
    assert not any(k.startswith("AMI_UPSTREAM_") for k in env)


def test_env_names() -> None:
    assert env_name("grpc-api") == "GRPC_API"
    assert env_name("a.b c") == "A_B_C"
    assert upstream_var(Upstream("reviews.default.svc.cluster.local", 9080, 1)) == (
        "AMI_UPSTREAM_REVIEWS_9080"
    )


def test_command_and_env_expand_var_references(tmp_path: Path) -> None:
    """`$(VAR)` in a Workload's command, args and env, with Kubernetes' rules: the mesh's
    variables (PORT, ...) and the Workload's env are visible, the inherited ones are not."""
    cfg = sidecar_config(tmp_path)
    assert cfg.app is not None
    app = replace(
        cfg.app,
        command=(
            "python3",
            "-m",
            "http.server",
            "$(PORT)",
            "--bind=$(HOST)",
            "$$(PORT)",
            "$(HOME)",
            "$(URL)",
            "$(UNDEFINED)",
        ),
        env={
            "HOST": "127.0.0.1",
            "URL": "http://$(HOST):$(PORT_GRPC_API)/$(LATER)",
            "LATER": "x",
            "AMI_WORKLOAD": "renamed-$(AMI_WORKLOAD)",
        },
    )
    cfg = replace(cfg, app=app)
    env = app_env(cfg, {"HOME": "/home/me"}, "/venv/bin")
    assert app_command(cfg) == (
        "python3",
        "-m",
        "http.server",
        "41003",
        "--bind=127.0.0.1",
        "$(PORT)",
        "$(HOME)",  # the agent's own environment is not for $(VAR), as an image's is not
        "http://127.0.0.1:41005/$(LATER)",  # LATER is defined after URL
        "$(UNDEFINED)",
    )
    assert env["URL"] == "http://127.0.0.1:41005/$(LATER)"
    assert env["AMI_WORKLOAD"] == "renamed-web"  # the mesh's value, then overridden
    assert env["PORT"] == "41003"


def test_app_command_of_a_gateway_is_empty() -> None:
    cfg = ac.AgentConfig(
        name="gw-0",
        proxy=Proxy(id="gw-0.istio-system", kind="gateway"),
        xds=ac.XdsSpec(port=1),
        envoy=ac.EnvoySpec(bootstrap="b", log="l"),
    )
    assert app_command(cfg) == ()
