"""TLS origination to a destination outside the mesh: a DestinationRule's SIMPLE and MUTUAL
`tls` with certificate files, against a real TLS server (Python's ssl)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import HttpsServer, Mesh, Sidecar, self_signed_cert

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

HOST = "secure.example.test"
URL = f"http://{HOST}/hello"


def echo(path: str, sni: str | None, client: dict[str, str]) -> bytes:
    """The path, the SNI and the client certificate's subject, as JSON."""
    return json.dumps({"path": path, "sni": sni, "client": client}).encode()


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    server_cert, server_key = self_signed_cert(tmp_path, HOST)
    client_cert, client_key = self_signed_cert(tmp_path, "client.example.test")
    return {
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


def service_entry(port: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [{HOST}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {port}}}]
  endpoints: [{{address: 127.0.0.1}}]
"""


def rule(tls: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure}}
spec: {{host: {HOST}, trafficPolicy: {{tls: {tls}}}}}
"""


@pytest.fixture
def server(certs: dict[str, Path]) -> Iterator[HttpsServer]:
    s = HttpsServer(certs["server_cert"], certs["server_key"], echo, client_ca=certs["client_cert"])
    s.start()
    try:
        yield s
    finally:
        s.stop()


def get(client: Sidecar) -> tuple[int, dict[str, Any]]:
    with client.http() as http:
        r = http.get(URL)
    return r.status_code, (r.json() if r.status_code == 200 else {})


def test_simple_and_mutual_tls_from_files(
    mesh: Mesh, certs: dict[str, Path], server: HttpsServer
) -> None:
    client = mesh.client()
    mesh.apply(service_entry(server.port), "se.yaml")
    # The server wants a client certificate: SIMPLE gets through the handshake's
    # verification of the server, then is refused.
    mesh.apply(rule(f"{{mode: SIMPLE, caCertificates: {certs['server_cert']}}}"), "dr.yaml")
    mesh.wait_synced()
    assert get(client)[0] == 503
    mesh.apply(
        rule(
            f"{{mode: MUTUAL, caCertificates: {certs['server_cert']},"
            f" clientCertificate: {certs['client_cert']}, privateKey: {certs['client_key']}}}"
        ),
        "dr.yaml",
    )
    mesh.wait_synced()
    status, body = get(client)
    assert status == 200
    # SNI is the ServiceEntry host; the server saw the client's certificate.
    assert body == {"path": "/hello", "sni": HOST, "client": {"commonName": "client.example.test"}}


def test_the_server_certificate_is_verified(
    mesh: Mesh, certs: dict[str, Path], tmp_path: Path
) -> None:
    s = HttpsServer(certs["server_cert"], certs["server_key"], echo).start()
    try:
        client = mesh.client()
        mesh.apply(service_entry(s.port), "se.yaml")
        # Signed by a CA the rule does not trust: refused.
        mesh.apply(rule(f"{{mode: SIMPLE, caCertificates: {certs['client_cert']}}}"), "dr.yaml")
        mesh.wait_synced()
        assert get(client)[0] == 503
        # Trusted, but the certificate does not name the host the rule expects: refused.
        mesh.apply(
            rule(
                f"{{mode: SIMPLE, caCertificates: {certs['server_cert']},"
                " subjectAltNames: [other.example.test]}"
            ),
            "dr.yaml",
        )
        mesh.wait_synced()
        assert get(client)[0] == 503
        mesh.apply(rule(f"{{mode: SIMPLE, caCertificates: {certs['server_cert']}}}"), "dr.yaml")
        mesh.wait_synced()
        status, body = get(client)
        assert status == 200 and body["client"] == {}
    finally:
        s.stop()
