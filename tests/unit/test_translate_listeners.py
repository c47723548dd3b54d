"""Listeners: the outbound explicit proxy and the inbound listeners; envoy validate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import build_snapshot
from amimesh.translate import cluster_external, clusters, listeners

SNAP = build_snapshot([])
PROXY = Proxy(
    id="reviews-v1.default",
    workload="reviews-v1",
    outbound_port=15001,
    inbound=(
        InboundPort(port=9080, listen_port=15006, app_port=8081, name="http"),
        InboundPort(port=7070, listen_port=15007, app_port=7071, protocol="GRPC"),
        InboundPort(port=5432, listen_port=15008, app_port=5433, protocol="TCP"),
    ),
)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def by_name() -> dict[str, Any]:
    return {lis.name: lis for lis in listeners.listeners(SNAP, PROXY)}


def hcm_of(lis: Any) -> Any:
    m = hcm_pb2.HttpConnectionManager()
    assert lis.filter_chains[0].filters[0].name == listeners.HCM_FILTER
    assert lis.filter_chains[0].filters[0].typed_config.Unpack(m)
    return m


def test_listener_set() -> None:
    assert list(by_name()) == ["outbound", "inbound|9080", "inbound|7070", "inbound|5432"]
    no_outbound = Proxy(id="x", inbound=PROXY.inbound)
    assert [lis.name for lis in listeners.listeners(SNAP, no_outbound)] == [
        "inbound|9080",
        "inbound|7070",
        "inbound|5432",
    ]
    assert listeners.listeners(SNAP, Proxy(id="gw", kind="gateway", outbound_port=8080)) == []


def test_outbound_listener_is_an_explicit_http_proxy_with_rds() -> None:
    lis = by_name()["outbound"]
    assert as_dict(lis.address) == {"socket_address": {"address": "127.0.0.1", "port_value": 15001}}
    assert lis.traffic_direction == base_pb2.OUTBOUND
    m = hcm_of(lis)
    assert m.codec_type == hcm_pb2.HttpConnectionManager.AUTO
    assert m.http_protocol_options.allow_absolute_url.value is True
    assert m.HasField("use_remote_address")
    assert m.use_remote_address.value is False
    assert as_dict(m.rds) == {
        "config_source": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
        "route_config_name": "outbound",
    }
    assert [f.name for f in m.http_filters] == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.dynamic_forward_proxy",
        "envoy.filters.http.router",
    ]
    assert all(f.HasField("typed_config") for f in m.http_filters)
    assert m.normalize_path.value is True
    assert [u.upgrade_type for u in m.upgrade_configs] == ["websocket"]


def test_outbound_dfp_filter_shares_the_clusters_dns_cache() -> None:
    m = hcm_of(by_name()["outbound"])
    dfp = as_dict(m.http_filters[3])["typed_config"]["dns_cache_config"]
    assert dfp == as_dict(cluster_external.dns_cache_config())


def test_inbound_http_listener_routes_everything_to_the_app_without_timeout() -> None:
    lis = by_name()["inbound|9080"]
    assert as_dict(lis.address) == {"socket_address": {"address": "127.0.0.1", "port_value": 15006}}
    m = hcm_of(lis)
    assert [f.name for f in m.http_filters] == ["envoy.filters.http.router"]
    assert as_dict(m.route_config) == {
        "name": "inbound|9080",
        "virtual_hosts": [
            {
                "name": "inbound|http|9080",
                "domains": ["*"],
                "routes": [
                    {
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {
                            "cluster": "inbound|9080||",
                            "timeout": "0s",
                            "max_stream_duration": {
                                "max_stream_duration": "0s",
                                "grpc_timeout_header_max": "0s",
                            },
                        },
                    }
                ],
            }
        ],
    }
    assert hcm_of(by_name()["inbound|7070"]).codec_type == hcm_pb2.HttpConnectionManager.AUTO


def test_inbound_tcp_listener_proxies_bytes() -> None:
    f = by_name()["inbound|5432"].filter_chains[0].filters[0]
    assert f.name == "envoy.filters.network.tcp_proxy"
    tcp = tcp_proxy_pb2.TcpProxy()
    assert f.typed_config.Unpack(tcp)
    assert tcp.cluster == "inbound|5432||"


@pytest.mark.envoy
def test_envoy_accepts_the_listeners(tmp_path: Path) -> None:
    config = bs.static_bootstrap(
        clusters=clusters.inbound_clusters(PROXY),
        listeners=listeners.listeners(SNAP, PROXY),
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
