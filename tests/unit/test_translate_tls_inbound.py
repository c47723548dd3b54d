"""Inbound listeners by PeerAuthentication mode; the generator's listener cache; envoy validate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model import authz
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, inbound_filters, listeners
from amimesh.translate.built import LISTENER
from amimesh.translate.generate import Generator
from amimesh.translate.scope import Scope

PROXY = Proxy(
    id="reviews-0.shop",
    workload="reviews",
    namespace="shop",
    labels={"app": "reviews"},
    address="127.0.0.2",
    inbound=(
        InboundPort(port=9080, listen_port=15006, app_port=8081),
        InboundPort(port=7070, listen_port=15007, app_port=7071, protocol="GRPC"),
        InboundPort(port=5432, listen_port=15008, app_port=5433, protocol="TCP"),
    ),
)
SDS = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [
            {
                "envoy_grpc": {
                    "cluster_name": "sds-grpc",
                    "retry_policy": {
                        "retry_back_off": {"base_interval": "0.100s", "max_interval": "1s"}
                    },
                }
            }
        ],
    },
    "resource_api_version": "V3",
}


def pa(name: str, namespace: str, spec: str) -> str:
    return (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )


def snapshot(*texts: str, version: int = 1, previous: Snapshot | None = None) -> Snapshot:
    result = parse_documents("\n---\n".join(texts), "pa.yaml") if texts else None
    resources = result.resources if result is not None else []
    assert result is None or result.ok, [str(e) for e in result.errors]
    return build_snapshot(resources, version=version, previous=previous)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def inbound(snap: Snapshot, port: int, proxy: Proxy = PROXY) -> Any:
    (lis,) = [x for x in listeners.listeners(snap, proxy) if x.name == f"inbound|{port}"]
    return lis


def hcm(chain: Any) -> Any:
    m = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].typed_config.Unpack(m)
    return m


def shape(lis: Any) -> list[tuple[str, dict[str, Any], str]]:
    """(chain name, match, transport socket) per filter chain."""
    return [
        (c.name, as_dict(c.filter_chain_match), c.transport_socket.name) for c in lis.filter_chains
    ]


MTLS = ("mtls", {"transport_protocol": "tls"}, "envoy.transport_sockets.tls")


def test_permissive_by_default_tls_and_plain_text_told_apart_by_the_inspector() -> None:
    lis = inbound(snapshot(), 9080)
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert shape(lis) == [MTLS, ("plaintext", {"transport_protocol": "raw_buffer"}, "")]
    assert as_dict(lis.address)["socket_address"] == {"address": "127.0.0.2", "port_value": 15006}
    ctx = tls_pb2.DownstreamTlsContext()
    assert lis.filter_chains[0].transport_socket.typed_config.Unpack(ctx)
    assert as_dict(ctx) == {
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": SDS}],
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": SDS},
            "alpn_protocols": ["h2", "http/1.1"],
        },
    }


def test_strict_accepts_only_mutual_tls() -> None:
    lis = inbound(snapshot(pa("default", "istio-system", "{mtls: {mode: STRICT}}")), 9080)
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert shape(lis) == [MTLS]


def test_disable_accepts_only_plain_text() -> None:
    lis = inbound(snapshot(pa("default", "shop", "{mtls: {mode: DISABLE}}")), 9080)
    assert not lis.listener_filters
    assert shape(lis) == [("plaintext", {}, "")]


def test_port_level_modes_per_listener() -> None:
    snap = snapshot(
        pa("default", "istio-system", "{mtls: {mode: STRICT}}"),
        pa(
            "reviews",
            "shop",
            "{selector: {matchLabels: {app: reviews}},"
            " portLevelMtls: {7070: {mode: PERMISSIVE}, 5432: {mode: DISABLE}}}",
        ),
    )
    assert len(inbound(snap, 9080).filter_chains) == 1
    assert len(inbound(snap, 7070).filter_chains) == 2
    assert shape(inbound(snap, 5432)) == [("plaintext", {}, "")]


def test_every_chain_forwards_the_peer_identity_and_runs_the_inbound_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []

    def policy_filters(policies: authz.InboundPolicies, port: InboundPort) -> list[Any]:
        seen.append(port.port)
        return [listeners.http_filter("envoy.filters.http.fault", fault_pb2.HTTPFault())]

    monkeypatch.setattr(inbound_filters, "policy_filters", policy_filters)
    lis = inbound(snapshot(), 9080)
    for chain in lis.filter_chains:
        m = hcm(chain)
        assert [f.name for f in m.http_filters] == [
            "envoy.filters.http.fault",
            "envoy.filters.http.router",
        ]
        assert m.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
        assert as_dict(m.set_current_client_cert_details) == {"uri": True}
        assert m.route_config.virtual_hosts[0].routes[0].route.cluster == "inbound|9080||"
    assert 9080 in seen


def test_tcp_ports_terminate_mutual_tls_and_proxy_bytes() -> None:
    lis = inbound(snapshot(), 5432)
    for chain in lis.filter_chains:
        tcp = tcp_proxy_pb2.TcpProxy()
        assert chain.filters[0].typed_config.Unpack(tcp)
        assert tcp.cluster == "inbound|5432||"
    ctx = tls_pb2.DownstreamTlsContext()
    assert lis.filter_chains[0].transport_socket.typed_config.Unpack(ctx)
    assert not ctx.common_tls_context.alpn_protocols


def test_listeners_follow_the_policies_that_apply_to_their_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    web = Proxy(
        id="web-0.web",
        namespace="web",
        inbound=(InboundPort(port=8080, listen_port=16000, app_port=16001),),
    )
    built: list[str] = []
    real = listeners.sidecar_listeners

    def spy(scope: Scope) -> Any:
        built.append(scope.proxy.id)
        return real(scope)

    monkeypatch.setattr(listeners, "sidecar_listeners", spy)
    one = snapshot(version=1)
    gen = Generator(one)
    shop_before, web_before = gen.generate(PROXY)[LISTENER], gen.generate(web)[LISTENER]
    assert len(shop_before["inbound|9080"].message.filter_chains) == 2
    built.clear()

    # A policy for another namespace: web's listeners change, shop's are not even rebuilt.
    two = snapshot(pa("default", "web", "{mtls: {mode: STRICT}}"), version=2, previous=one)
    gen.update(two)
    shop_after, web_after = gen.generate(PROXY)[LISTENER], gen.generate(web)[LISTENER]
    assert shop_after is shop_before
    assert web_after is not web_before
    assert len(web_after["inbound|8080"].message.filter_chains) == 1
    assert built == ["web-0.web"]

    # A mesh-wide policy that changes no mode: rebuilt (it applies), same objects.
    built.clear()
    three_text = pa("default", "istio-system", "{mtls: {mode: PERMISSIVE}}")
    three = snapshot(
        pa("default", "web", "{mtls: {mode: STRICT}}"), three_text, version=3, previous=two
    )
    gen.update(three)
    assert gen.generate(PROXY)[LISTENER] is shop_before
    assert gen.generate(web)[LISTENER] is web_after
    assert built == ["reviews-0.shop", "web-0.web"]


@pytest.mark.envoy
@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE", "DISABLE"])
def test_envoy_accepts_the_inbound_listeners(tmp_path: Path, mode: str) -> None:
    snap = snapshot(pa("default", "shop", f"{{mtls: {{mode: {mode}}}}}"))
    config = bs.static_bootstrap(
        clusters=clusters.inbound_clusters(PROXY), listeners=listeners.listeners(snap, PROXY)
    )
    config["static_resources"]["clusters"].append(bs.sds_cluster(str(tmp_path / "sds.sock")))
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_instance_bounds_its_requests_as_its_annotations_say() -> None:
    route = listeners.inbound_route_config(
        InboundPort(port=8080, listen_port=16000, app_port=16001), 30, 5
    )
    action = route.virtual_hosts[0].routes[0].route
    assert action.max_stream_duration.max_stream_duration.seconds == 30
    assert action.retry_policy.per_try_idle_timeout.seconds == 5
    assert action.retry_policy.num_retries.value == 0
    plain = listeners.inbound_route_config(InboundPort(port=8080, listen_port=1, app_port=2))
    action = plain.virtual_hosts[0].routes[0].route
    assert action.max_stream_duration.max_stream_duration.seconds == 0
    assert not action.HasField("retry_policy")


def test_timeout_annotations_are_whole_seconds() -> None:
    text = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata:
  name: w
  annotations: {ami.dev/request-timeout: "1.5", ami.dev/idle-timeout: "-1"}
spec: {command: [python3, app.py], ports: [{name: http, port: 8080}]}
"""
    errors = [str(e) for e in parse_documents(text, "w.yaml").errors]
    assert len(errors) == 2, errors
    assert any('metadata.annotations["ami.dev/request-timeout"]' in e for e in errors)
    assert all("whole number of seconds" in e for e in errors)
