"""Access logs: Istio's JSON and text formats on every listener; Telemetry turns them off;
envoy validate; the generator translates again when the deciding Telemetry changes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy, Upstream, proxy_from_metadata
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import access_log, clusters, gateway_listeners, listeners
from amimesh.translate.built import LISTENER
from amimesh.translate.generate import Generator

LOG = "/tmp/ami-test/web-0.shop.access.log"
PROXY = Proxy(
    id="web-0.shop",
    workload="web",
    namespace="shop",
    labels={"app": "web"},
    outbound_port=15001,
    inbound=(
        InboundPort(port=8080, listen_port=15006, app_port=8081, name="http"),
        InboundPort(port=5432, listen_port=15008, app_port=5433, protocol="TCP"),
    ),
    upstreams=(
        Upstream(host="catalog.shop.svc.cluster.local", port=9090, listen_port=15010),
        Upstream(host="db.shop.svc.cluster.local", port=5432, listen_port=15011, protocol="TCP"),
    ),
    access_log=LOG,
)
GATEWAY = Proxy(
    id="gw.istio-system",
    kind="gateway",
    namespace="istio-system",
    labels={"istio": "ingressgateway"},
    gateway_ports=(GatewayPort(port=80, listen_port=18080),),
    access_log="/tmp/ami-test/gw.access.log",
)
GATEWAY_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
OFF_FOR_WEB = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  accessLogging: [{disabled: true}]
"""


def snapshot(*texts: str) -> Snapshot:
    result = parse_documents("\n---\n".join(texts), "t.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def file_logs(repeated: Any) -> list[dict[str, Any]]:
    out = []
    for log in repeated:
        if log.name != "envoy.access_loggers.file":
            continue  # the stream to the control plane, for metrics
        f = file_pb2.FileAccessLog()
        assert log.typed_config.Unpack(f)
        out.append(json_format.MessageToDict(f, preserving_proto_field_name=True))
    return out


def logs_by_listener(lis: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Listener name -> the file access logs of its first chain's last network filter."""
    out = {}
    for item in lis:
        f = item.filter_chains[0].filters[-1]
        if f.name == listeners.HCM_FILTER:
            m: Any = hcm_pb2.HttpConnectionManager()
        else:
            m = tcp_proxy_pb2.TcpProxy()
        assert f.typed_config.Unpack(m)
        out[item.name] = file_logs(m.access_log)
    return out


def test_json_log_on_every_listener_with_its_direction() -> None:
    found = logs_by_listener(listeners.listeners(snapshot(), PROXY))
    assert list(found) == [
        "outbound",
        "inbound|8080",
        "inbound|5432",
        "upstream|9090|catalog.shop.svc.cluster.local",
        "upstream|5432|db.shop.svc.cluster.local",
    ]
    for name, logs in found.items():
        (log,) = logs
        assert log["path"] == LOG
        fields = log["log_format"]["json_format"]
        assert fields == {
            **access_log.JSON_FIELDS,
            "direction": "inbound" if name.startswith("inbound") else "outbound",
        }
    assert access_log.JSON_FIELDS["response_code"] == "%RESPONSE_CODE%"
    assert access_log.JSON_FIELDS["upstream_cluster"] == "%UPSTREAM_CLUSTER_RAW%"


def test_text_format() -> None:
    text = Proxy(**{**PROXY.__dict__, "access_log_format": "text"})
    for logs in logs_by_listener(listeners.listeners(snapshot(), text)).values():
        (log,) = logs
        assert log["log_format"] == {
            "text_format_source": {"inline_string": access_log.TEXT_FORMAT}
        }
    assert access_log.TEXT_FORMAT.startswith('[%START_TIME%] "%REQ(:METHOD)% ')
    assert access_log.TEXT_FORMAT.endswith("%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n")


def test_no_path_or_disabled_means_no_access_log() -> None:
    bare = Proxy(**{**PROXY.__dict__, "access_log": ""})
    assert all(not v for v in logs_by_listener(listeners.listeners(snapshot(), bare)).values())
    off = snapshot(OFF_FOR_WEB)
    assert all(not v for v in logs_by_listener(listeners.listeners(off, PROXY)).values())
    other = Proxy(**{**PROXY.__dict__, "labels": {"app": "api"}})
    assert all(logs_by_listener(listeners.listeners(off, other)).values())


def test_gateway_listeners_log_too() -> None:
    (log,) = logs_by_listener(gateway_listeners.listeners(snapshot(GATEWAY_YAML), GATEWAY))[
        "gateway|80"
    ]
    assert log["path"] == GATEWAY.access_log
    assert log["log_format"]["json_format"]["direction"] == "outbound"


def test_metadata_round_trip() -> None:
    text = Proxy(**{**PROXY.__dict__, "access_log_format": "text"})
    meta = text.metadata()
    assert meta["AMI_ACCESS_LOG"] == LOG
    assert meta["AMI_ACCESS_LOG_FORMAT"] == "text"
    back = proxy_from_metadata(text.id, meta)
    assert (back.access_log, back.access_log_format) == (LOG, "text")
    assert proxy_from_metadata("x", {}).access_log == ""


def test_generator_translates_again_when_a_telemetry_decides() -> None:
    gen = Generator(snapshot())
    first = gen.generate(PROXY)[LISTENER]
    gen.update(snapshot(OFF_FOR_WEB))
    second = gen.generate(PROXY)[LISTENER]
    assert second is not first
    assert all(not v for v in logs_by_listener([b.message for b in second.values()]).values())


@pytest.mark.envoy
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_envoy_accepts_listeners_with_access_logs(tmp_path: Path, fmt: str) -> None:
    proxy = Proxy(
        **{**PROXY.__dict__, "upstreams": (), "access_log": str(tmp_path / "a.log")},
    )
    proxy = Proxy(**{**proxy.__dict__, "access_log_format": fmt})
    gateway = Proxy(**{**GATEWAY.__dict__, "access_log": str(tmp_path / "g.log")})
    config = bs.static_bootstrap(
        clusters=clusters.inbound_clusters(proxy),
        listeners=[
            *listeners.listeners(snapshot(), proxy),
            *gateway_listeners.listeners(snapshot(GATEWAY_YAML), gateway),
        ],
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
