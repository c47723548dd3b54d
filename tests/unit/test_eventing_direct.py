"""Which subscribers the broker reaches straight at their inbound sidecars (pure, from
the resources), the endpoints it reads from its sidecar's admin API, and the
delivery client's TLS way against a real TLS server."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import textwrap
from pathlib import Path

import aiohttp
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from amimesh.eventing import direct, http1
from amimesh.eventing import expand as ex
from amimesh.eventing.addressing import direct_cluster
from amimesh.resources import knative_eventing as ke
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource

BASE = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: v1
kind: Service
metadata: {name: sink}
spec:
  selector: {app: sink}
  ports: [{port: 8080}]
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: default
  subscriber: {ref: {apiVersion: v1, kind: Service, name: sink}}
"""
CLUSTER = "outbound|8080||sink.default.svc.cluster.local"
SINK_ID = "spiffe://cluster.local/ns/default/sa/sink"


def resources(*more: str) -> list[Resource]:
    text = "\n---\n".join([BASE, *(textwrap.dedent(m) for m in more)])
    result = parse_documents(text, "x.yaml")
    assert result.errors == []
    return list(result.resources)


def cluster_of(rs: list[Resource]) -> str:
    (t,) = [r for r in rs if isinstance(r, ke.Trigger)]
    return direct_cluster(t.spec.subscriber, t.namespace, rs)


def test_a_service_on_the_default_route_is_reached_straight() -> None:
    rs = resources()
    assert cluster_of(rs) == CLUSTER
    runner = ex.Runner("/usr/bin/python3", "nats://127.0.0.1:4222", "/c")
    (entry,) = ex.expand(rs, runner).config.triggers
    assert entry.direct == CLUSTER


@pytest.mark.parametrize(
    "extra",
    [
        # A VirtualService for the mesh naming the host (short name, FQDN, wildcard).
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
        "spec: {hosts: [sink], http: [{route: [{destination: {host: sink}}]}]}",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: v, namespace: other}\nspec: {hosts: ['*.default.svc.cluster.local'],"
        " http: [{route: [{destination: {host: sink.default}}]}]}",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
        "spec: {host: sink.default.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n"
        "spec: {hosts: [sink.default.svc.cluster.local], ports: [{number: 8080, name: http, "
        "protocol: HTTP}], resolution: DNS}",
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n"
        "spec: {egress: [{hosts: ['./*']}]}",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
        "spec: {mtls: {mode: DISABLE}}",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
        "spec: {parentRefs: [{group: '', kind: Service, name: sink}], rules: [{backendRefs: "
        "[{name: sink, port: 8080}]}]}",
    ],
    ids=["vs", "vs-wildcard", "dr", "serviceentry", "sidecar", "mtls-off", "gamma"],
)
def test_anything_on_the_outbound_hop_keeps_the_sidecar(extra: str) -> None:
    assert cluster_of(resources(extra)) == ""


def test_what_does_not_touch_the_host_keeps_it_straight() -> None:
    other = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
        "spec: {hosts: [other], http: [{route: [{destination: {host: other}}]}]}"
    )
    gateway_only = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: g}\n"
        "spec: {hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: sink}}]}]}"
    )
    strict = (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
        "spec: {mtls: {mode: STRICT}}"
    )
    assert cluster_of(resources(other, gateway_only, strict)) == CLUSTER


def test_a_grpc_or_http2_port_keeps_the_sidecar() -> None:
    for port in ("{name: grpc, port: 8080}", "{port: 8080, appProtocol: kubernetes.io/h2c}"):
        text = BASE.replace("ports: [{port: 8080}]", f"ports: [{port}]")
        rs = list(parse_documents(text, "x.yaml").resources)
        assert cluster_of(rs) == "", port


def test_only_kubernetes_services_are_reached_straight() -> None:
    rs = resources()
    uri = ke.Destination.model_validate({"uri": "http://sink.default.svc.cluster.local/"})
    assert direct_cluster(uri, "default", rs) == ""
    ksvc = ke.Destination.model_validate(
        {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "sink"}}
    )
    assert direct_cluster(ksvc, "default", rs) == ""


def lb(port: int, health: str | None = "HEALTHY", tls: str | None = "istio") -> dict[str, object]:
    out: dict[str, object] = {
        "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
    }
    if health is not None:
        out["health_status"] = health
    if tls is not None:
        out["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": tls}}}
    return out


ENDPOINTS = {
    "configs": [
        {
            "endpoint_config": {
                "cluster_name": CLUSTER,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            lb(4001),
                            lb(4002, health="UNHEALTHY"),
                            lb(4003, health=None),  # EDS said nothing: not known unhealthy
                            lb(4004, tls=None),  # plain text: not the mesh's mutual TLS
                        ]
                    }
                ],
            }
        },
        {"endpoint_config": {"cluster_name": "outbound|80||other.default.svc.cluster.local"}},
    ]
}


def test_only_healthy_mesh_endpoints_are_taken() -> None:
    found = direct.healthy_endpoints(ENDPOINTS, [CLUSTER, "outbound|1||gone"])
    assert found == {CLUSTER: [("127.0.0.1", 4001), ("127.0.0.1", 4003)], "outbound|1||gone": []}


def tls_socket(*sans: dict[str, object]) -> dict[str, object]:
    context = {"default_validation_context": {"match_typed_subject_alt_names": list(sans)}}
    return {"typed_config": {"common_tls_context": {"combined_validation_context": context}}}


def test_the_identities_the_sidecar_accepts_are_the_mesh_sockets() -> None:
    uri = {"san_type": "URI", "matcher": {"exact": SINK_ID}}
    dump = {
        "configs": [
            {
                "cluster": {
                    "name": CLUSTER,
                    "transport_socket_matches": [
                        {"match": {"tlsMode": "istio"}, "transport_socket": tls_socket(uri)},
                        {"name": "tlsMode-disabled", "transport_socket": {}},
                    ],
                }
            },
            {
                "cluster": {
                    "name": "outbound|80||prefixed.default.svc.cluster.local",
                    "transport_socket": tls_socket(
                        {"san_type": "URI", "matcher": {"prefix": "spiffe://"}}
                    ),
                }
            },
        ]
    }
    names = [CLUSTER, "outbound|80||prefixed.default.svc.cluster.local"]
    assert direct.peer_identities(dump, names) == {
        CLUSTER: frozenset({SINK_ID}),
        # Not exactly named: not reached straight.
        "outbound|80||prefixed.default.svc.cluster.local": frozenset(),
    }


async def test_a_chunked_admin_answer_is_read_whole() -> None:
    # The sidecar's admin API answers /config_dump chunked: read as one JSON object.
    async def admin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'3\r\n{"a\r\n4;x=1\r\n": 1\r\n1\r\n}\r\n0\r\n\r\n'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(admin, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        way = direct.Direct([CLUSTER], port, "/nonexistent.sock", "peer", None)  # type: ignore[arg-type]
        assert await way._admin("/config_dump") == {"a": 1}


# --- the TLS way, against a real server ------------------------------------------------


def self_signed(tmp: Path) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SINK_ID)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    (tmp / "c.pem").write_text(pem)
    (tmp / "k.pem").write_text(key_pem)
    return tmp / "c.pem", tmp / "k.pem", pem


async def test_a_request_goes_straight_over_mutual_tls(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        client = http1.Client(session)
        try:
            await straight_over_mutual_tls(tmp_path, client)
        finally:
            await client.close()


def test_a_request_goes_straight_over_mutual_tls_on_uvloop(tmp_path: Path) -> None:
    # The broker process runs on uvloop, whose TLS layer is its own.
    async def run() -> None:
        await test_a_request_goes_straight_over_mutual_tls(tmp_path)

    uvloop.run(run())


async def straight_over_mutual_tls(tmp_path: Path, client: http1.Client) -> None:
    cert, key, pem = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server_tls.verify_mode = ssl.CERT_REQUIRED  # the client must show its certificate
    server_tls.load_verify_locations(cafile=str(cert))
    seen: list[bytes] = []
    peers: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peercert"))
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head + await reader.readexactly(2))
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    from amimesh.identity.workload_sds import client_context

    context = client_context(pem, key.read_text(), pem)
    try:
        url = "http://sink.default.svc.cluster.local/path"
        # A peer whose certificate names another identity is not sent to.
        other = http1.Via("127.0.0.1", port, context, frozenset({"spiffe://x/ns/y/sa/z"}))
        with pytest.raises(http1.NotConnected):
            await client.post(url, {}, b"{}", timeout_s=10, limit=100, via=other)
        assert seen == []
        via = http1.Via("127.0.0.1", port, context, frozenset({SINK_ID}))
        answer = await client.post(url, {"ce-id": "1"}, b"{}", timeout_s=10, limit=100, via=via)
        assert answer.status == 202
        assert seen[0].startswith(b"POST /path HTTP/1.1\r\nHost: sink.default.svc.cluster.local")
        assert peers[0]  # the server saw the client's certificate
        # Nothing listening: not connected, so that the caller can take another way.
        server.close()
        await server.wait_closed()
        client.forget(context)
        with pytest.raises(http1.NotConnected):
            await client.post(url, {}, b"{}", timeout_s=10, limit=100, via=via)
    finally:
        server.close()
