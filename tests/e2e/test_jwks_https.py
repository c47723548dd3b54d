"""https:// `jwksUri` on a real mesh: the sidecar fetches the keys over real TLS from a
local HTTPS server (Python's ssl, a certificate from a test CA), never the internet.

- The URI names a ServiceEntry host: the keys come through its outbound cluster, and a
  DestinationRule's SIMPLE `tls` (`caCertificates` = the test CA) originates the TLS.
- The URI names a host the mesh does not know (`localhost`): the sidecar's own
  `jwks|localhost|PORT` cluster fetches it, verifying the server against the system's
  CAs, which do not know the test CA (tokens refused), until a DestinationRule for the
  host trusts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import test_jwt_support as jwt
from tests.e2e.harness import HttpsServer, Mesh, Sidecar, self_signed_cert

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ISSUER = "idp.example.test"
URL = "http://httpbin:8000/headers"
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000}]}
"""


@dataclass
class JwksServer:
    """An HTTPS server answering every GET with a key set; remembers the path and the
    SNI of each fetch."""

    https: HttpsServer
    fetched: list[tuple[str, str | None]]

    @property
    def port(self) -> int:
        return self.https.port

    @property
    def cert(self) -> Path:
        return self.https.cert


@pytest.fixture
def signer() -> jwt.Signer:
    return jwt.signer("RS256", kid="idp-key")


def serve(tmp_path: Path, host: str, signer: jwt.Signer) -> Iterator[JwksServer]:
    cert, key = self_signed_cert(tmp_path, host)
    fetched: list[tuple[str, str | None]] = []
    body = jwt.jwks(signer).encode()

    def answer(path: str, sni: str | None, client: dict[str, str]) -> bytes:
        fetched.append((path, sni))
        return body

    server = HttpsServer(cert, key, answer).start()
    try:
        yield JwksServer(server, fetched)
    finally:
        server.stop()


def request_authentication(uri: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: idp}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwksUri: {uri}
"""


def destination_rule(host: str, ca: Path) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: idp}}
spec:
  host: {host}
  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: {ca}}}}}
"""


def status(client: Sidecar, token: str) -> int:
    with client.http() as http:
        return http.get(URL, headers={"authorization": f"Bearer {token}"}).status_code


def start(mesh: Mesh, config: str) -> tuple[Sidecar, Sidecar]:
    """httpbin (selected by the RequestAuthentication) and a client, once `config`
    is in place."""
    mesh.apply(SERVICE + "---\n" + config, "mesh.yaml")
    httpbin = mesh.workload("httpbin", {"app": "httpbin"}, port=8000)
    client = mesh.client()
    mesh.wait_synced()
    return httpbin, client


def stat(sidecar: Sidecar, name: str) -> int:
    for line in sidecar.stats().splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def test_keys_from_a_service_entry_over_tls(mesh: Mesh, tmp_path: Path, signer: jwt.Signer) -> None:
    host = "idp.example.test"
    for server in serve(tmp_path, host, signer):
        entry = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: idp}}
spec:
  hosts: [{host}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: https, protocol: HTTPS, targetPort: {server.port}}}]
  endpoints: [{{address: 127.0.0.1}}]
"""
        _, client = start(
            mesh,
            entry
            + "---\n"
            + destination_rule(host, server.cert)
            + "---\n"
            + request_authentication(f"https://{host}/.well-known/jwks.json"),
        )
        token = signer.token(jwt.claims(ISSUER, "alice"))
        assert status(client, token) == 200
        assert status(client, jwt.tamper(token)) == 401
        # A key of the same name, not the one served.
        impostor = jwt.signer("RS256", kid="idp-key")
        assert status(client, impostor.token(jwt.claims(ISSUER, "alice"))) == 401
        assert server.fetched and server.fetched[0] == ("/.well-known/jwks.json", host)


def test_keys_from_a_host_the_mesh_does_not_know(
    mesh: Mesh, tmp_path: Path, signer: jwt.Signer
) -> None:
    host = "localhost"
    for server in serve(tmp_path, host, signer):
        httpbin, client = start(
            mesh, request_authentication(f"https://{host}:{server.port}/jwks.json")
        )
        token = signer.token(jwt.claims(ISSUER, "alice"))
        # The system's CAs do not know the test CA: no keys, so no token is valid.
        assert status(client, token) == 401
        assert server.fetched == []
        assert stat(httpbin, f"cluster.jwks|{host}|{server.port}.ssl.fail_verify_error") > 0
        # A DestinationRule for the host trusts the test CA.
        mesh.apply(destination_rule(host, server.cert), "dr.yaml")
        mesh.wait_synced()
        assert status(client, token) == 200
        assert status(client, jwt.tamper(token)) == 401
        assert server.fetched[0] == ("/jwks.json", host)
