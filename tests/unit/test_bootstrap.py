"""Envoy bootstrap, command line and static configs; the bootstrap passes envoy validate."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from envoy.config.route.v3 import route_pb2

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy, proxy_from_metadata
from amimesh.model.snapshot import Endpoint
from amimesh.translate import clusters, endpoints, listeners

PROXY = Proxy(
    id="reviews-v1-0.shop",
    workload="reviews-v1",
    namespace="shop",
    labels={"app": "reviews", "version": "v1"},
    service_account="bookinfo-reviews",
    outbound_port=15001,
    inbound=(InboundPort(port=9080, listen_port=15006, app_port=8081, name="http"),),
    max_concurrency=3,
)


def config(**kwargs: Any) -> dict[str, Any]:
    return bs.bootstrap(PROXY, xds_port=18000, admin_port=19000, **kwargs)


def validate(cfg: dict[str, Any], path: Path) -> None:
    bs.write_bootstrap(path, cfg)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_node_identifies_the_proxy_for_the_control_plane() -> None:
    node = config()["node"]
    assert node["id"] == "reviews-v1-0.shop"
    assert node["cluster"] == "reviews-v1"
    # The bootstrap adds the admin port it configures, for tools that read the node.
    assert proxy_from_metadata(node["id"], node["metadata"]) == replace(PROXY, admin_port=19000)
    assert "locality" not in node
    located = config(locality="us-east/a", cluster="reviews")["node"]
    assert located["locality"] == {"region": "us-east", "zone": "a"}
    assert located["cluster"] == "reviews"


@pytest.mark.parametrize(("delta", "api_type"), [(False, "GRPC"), (True, "DELTA_GRPC")])
def test_ads_for_clusters_and_listeners(delta: bool, api_type: str) -> None:
    dyn = config(delta=delta)["dynamic_resources"]
    assert dyn["ads_config"] == {
        "api_type": api_type,
        "transport_api_version": "V3",
        "set_node_on_first_message_only": True,
        "grpc_services": [
            {
                "envoy_grpc": {
                    "cluster_name": "xds-grpc",
                    # Back soon after the control plane is (the default waits up to 30 s).
                    # Envoy reads the stream's backoff here, not from the GrpcService.
                    "retry_policy": {
                        "retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}
                    },
                }
            }
        ],
    }
    ads = {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}
    assert dyn["cds_config"] == ads
    assert dyn["lds_config"] == ads


def test_xds_cluster_and_admin_stay_on_loopback() -> None:
    cfg = config()
    xds, telemetry = cfg["static_resources"]["clusters"]
    assert (xds["name"], telemetry["name"]) == ("xds-grpc", "ami-telemetry-http")
    assert xds["type"] == "STATIC"
    assert xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 18000}
    }
    h2 = xds["typed_extension_protocol_options"][bs.HTTP_PROTOCOL_OPTIONS]
    assert "http2_protocol_options" in h2["explicit_http_config"]
    assert cfg["admin"] == {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 19000}}
    }
    remote = bs.bootstrap(PROXY, xds_host="cp.example.com", xds_port=1, admin_port=2)
    assert remote["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


def test_downstream_connections_are_capped() -> None:
    (monitor,) = config(max_downstream_connections=1000)["overload_manager"]["resource_monitors"]
    assert monitor["name"] == "envoy.resource_monitors.global_downstream_max_connections"
    assert monitor["typed_config"]["max_active_downstream_connections"] == 1000


def test_bootstrap_is_json_and_written_as_such(tmp_path: Path) -> None:
    path = bs.write_bootstrap(tmp_path / "b.json", config())
    assert json.loads(path.read_text()) == config()


def test_envoy_command_line(tmp_path: Path) -> None:
    cmd = bs.envoy_command(tmp_path / "b.json", log_level="debug", drain_time_s=7)
    assert cmd[1:] == [
        "-c",
        str(tmp_path / "b.json"),
        "--disable-hot-restart",
        "--drain-time-s",
        "7",
        "--drain-strategy",
        "immediate",
        "-l",
        "debug",
        "--concurrency",
        "2",
    ]
    assert os.access(cmd[0], os.X_OK)
    assert "--concurrency" not in bs.envoy_command("x", concurrency=None)


def test_envoy_path_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    path = bs.envoy_path()
    assert path.endswith("envoy") and os.access(path, os.X_OK)


def test_static_bootstrap_inlines_eds_and_rds() -> None:
    eds = clusters.Cluster(name="outbound|80||a", type=clusters.Cluster.EDS)
    eds.eds_cluster_config.service_name = "outbound|80||a"
    cla = endpoints.load_assignment("outbound|80||a", [Endpoint(address="127.0.0.1", port=9)])
    route = route_pb2.RouteConfiguration(name="outbound")
    cfg = bs.static_bootstrap(
        clusters=[eds],
        load_assignments=[cla],
        listeners=[listeners.outbound_listener(15001)],
        routes=[route],
    )
    (c,) = cfg["static_resources"]["clusters"]
    assert c["type"] == "STATIC" and "eds_cluster_config" not in c
    assert c["load_assignment"]["cluster_name"] == "outbound|80||a"
    (lis,) = cfg["static_resources"]["listeners"]
    hcm = lis["filter_chains"][0]["filters"][0]["typed_config"]
    assert "rds" not in hcm and hcm["route_config"] == {"name": "outbound"}
    # The inputs are left untouched.
    assert eds.type == clusters.Cluster.EDS


@pytest.mark.envoy
def test_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    validate(config(delta=True, locality="us/a/b"), tmp_path / "bootstrap.json")
