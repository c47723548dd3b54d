"""TLS origination to a destination outside the mesh: a DestinationRule's SIMPLE and MUTUAL
`tls` with certificate files, against a real TLS server (Python's ssl)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Mesh, Sidecar, self_signed_cert

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

HOST = "secure.example.test"
URL = f"http://{HOST}/hello"


@dataclass
class TlsServer:
    """An HTTPS server answering JSON with the client certificate's subject (if any)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> TlsServer:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                subject = dict(x[0] for x in peer["subject"]) if peer else {}
                body = json.dumps(
                    {"path": self.path, "sni": self.server.sni, "client": subject}  # type: ignore[attr-defined]
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.sni = None  # type: ignore[attr-defined]

        def remember_sni(sock: ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
            server.sni = name  # type: ignore[attr-defined]

        context.sni_callback = remember_sni
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


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
def server(certs: dict[str, Path]) -> Iterator[TlsServer]:
    s = TlsServer(certs["server_cert"], certs["server_key"], client_ca=certs["client_cert"])
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
    mesh: Mesh, certs: dict[str, Path], server: TlsServer
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
    s = TlsServer(certs["server_cert"], certs["server_key"]).start()
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
