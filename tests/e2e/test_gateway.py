"""An ingress gateway end to end: a real gateway Envoy in front of real sidecars.

One mesh for the module: workloads `shop` and `api` (HTTP echo backends) and `greeter`
(a gRPC server) behind their sidecars, a client sidecar, and a gateway Envoy serving
Gateway `ingress`: plain HTTP on 8080, HTTP on 8081 redirecting to HTTPS, and HTTPS
(SIMPLE, a self-signed certificate made here) on 8443 for shop.example.com, and
HTTPS with client certificates (MUTUAL: the mesh CA's, SAN .../sa/partner) on 8444.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from amimesh.identity import csr as csr_mod
from amimesh.identity.spiffe import SpiffeId
from tests.e2e.harness import GrpcBackend, Mesh, Sidecar, self_signed_cert

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {selector: {app: shop}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec: {selector: {app: greeter}, ports: [{name: grpc, port: 9090}]}
"""

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8081, name: http-redirect, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, serverCertificate: CERT, privateKey: KEY}
  - port: {number: 8444, name: https-mutual, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: MUTUAL, serverCertificate: CERT, privateKey: KEY, caCertificates: CLIENT_CA,
          subjectAltNames: ["spiffe://cluster.local/ns/default/sa/partner"]}
"""

ROUTES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-edge}
spec:
  hosts: [shop.example.com, shop]
  gateways: [ingress]
  http:
  - match: [{uri: {prefix: /which}}]
    directResponse: {status: 200, body: {string: edge}}
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api}}]
  - route: [{destination: {host: shop}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-mesh}
spec:
  hosts: [shop]
  http:
  - match: [{uri: {prefix: /which}}]
    directResponse: {status: 200, body: {string: mesh}}
  - route: [{destination: {host: shop}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter-edge}
spec:
  hosts: [grpc.example.com]
  gateways: [default/ingress]
  http:
  - route: [{destination: {host: greeter, port: {number: 9090}}}]
"""


@dataclass
class Edge:
    mesh: Mesh
    gateway: Sidecar
    client: Sidecar
    cert: Path
    http: httpx.Client


@pytest.fixture(scope="module")
def edge(module_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    certs = tmp_path_factory.mktemp("certs")
    cert, key = self_signed_cert(certs, "shop.example.com")
    client_ca = certs / "client-ca.pem"
    client_ca.write_text(module_mesh.trust_bundle)
    gateway = GATEWAY.replace("CLIENT_CA", str(client_ca))
    gateway = gateway.replace("CERT", str(cert)).replace("KEY", str(key))
    module_mesh.apply(SERVICES + "---" + gateway + "---" + ROUTES, source="edge.yaml")
    module_mesh.workload("shop", {"app": "shop"}, port=9080)
    module_mesh.workload("api", {"app": "api"}, port=9080)
    module_mesh.workload("greeter", {"app": "greeter"}, port=9090, protocol="GRPC")
    client = module_mesh.client()
    gw = module_mesh.gateway(ports={8080: 0, 8081: 0, 8443: 0, 8444: 0})
    module_mesh.wait_synced()
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        yield Edge(module_mesh, gw, client, cert, http)


def backend(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    return str(response.json()["backend"])


def test_routes_by_host_and_path(edge: Edge) -> None:
    url = edge.gateway.url(8080)
    host = {"host": "shop.example.com"}
    api = edge.http.get(url + "/api/items?x=1", headers=host)
    assert backend(api) == "api"
    assert api.json()["path"] == "/api/items?x=1"
    assert backend(edge.http.get(url + "/", headers=host)) == "shop"
    # The port of the Host header does not matter; an unknown host gets 404.
    assert backend(edge.http.get(url + "/", headers={"host": "shop.example.com:8080"})) == "shop"
    assert edge.http.get(url + "/", headers={"host": "other.example.com"}).status_code == 404


def test_gateway_and_mesh_bindings_stay_apart(edge: Edge) -> None:
    at_gateway = edge.http.get(edge.gateway.url(8080) + "/which", headers={"host": "shop"})
    assert (at_gateway.status_code, at_gateway.text) == (200, "edge")
    with edge.client.http() as through_mesh:
        in_mesh = through_mesh.get("http://shop:9080/which")
    assert (in_mesh.status_code, in_mesh.text) == (200, "mesh")


def test_https_simple_with_sni(edge: Edge) -> None:
    context = ssl.create_default_context(cafile=str(edge.cert))
    with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
        response = https.get(
            edge.gateway.url(8443, "https") + "/api/secure",
            headers={"host": "shop.example.com"},
            extensions={"sni_hostname": "shop.example.com"},
        )
    assert backend(response) == "api"
    assert response.json()["headers"]["x-forwarded-proto"] == "https"


def _mutual_get(edge: Edge, client_cert: tuple[str, str] | None) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(edge.cert))
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
        return https.get(
            edge.gateway.url(8444, "https") + "/api/mutual",
            headers={"host": "shop.example.com"},
            extensions={"sni_hostname": "shop.example.com"},
        )


def _client_cert(edge: Edge, account: str, directory: Path) -> tuple[str, str]:
    issued, key = edge.mesh.issue(SpiffeId("cluster.local", "default", account))
    chain, key_file = directory / f"{account}.pem", directory / f"{account}.key"
    chain.write_text(issued.certificate_chain)
    key_file.write_text(csr_mod.key_pem(key))
    return str(chain), str(key_file)


def test_https_mutual_requires_a_client_certificate_of_the_ca(edge: Edge, tmp_path: Path) -> None:
    refused = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
    with pytest.raises(refused):
        _mutual_get(edge, None)
    assert backend(_mutual_get(edge, _client_cert(edge, "partner", tmp_path))) == "api"
    # Signed by the CA, but not one of subjectAltNames.
    with pytest.raises(refused):
        _mutual_get(edge, _client_cert(edge, "stranger", tmp_path))
    # Its own CA, not the configured one.
    with pytest.raises(refused):
        _mutual_get(edge, (str(edge.cert), str(edge.cert.with_suffix(".key"))))


def test_https_redirect(edge: Edge) -> None:
    response = edge.http.get(
        edge.gateway.url(8081) + "/cart?id=7", headers={"host": "shop.example.com"}
    )
    assert response.status_code == 301
    assert response.headers["location"] == "https://shop.example.com/cart?id=7"


def grpc_web_frame(flag: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def read_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while body:
        flag, length = struct.unpack(">BI", body[:5])
        frames.append((flag, body[5 : 5 + length]))
        body = body[5 + length :]
    return frames


def test_grpc_web_through_the_gateway(edge: Edge) -> None:
    response = edge.http.post(
        edge.gateway.url(8080) + GrpcBackend.METHOD,
        headers={
            "host": "grpc.example.com",
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
        },
        content=grpc_web_frame(0, b"hello"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/grpc-web")
    (flag, message), (trailer_flag, trailers) = read_frames(response.content)
    assert (flag, message) == (0, b"greeter|hello")
    assert trailer_flag == 0x80
    assert b"grpc-status:0" in trailers.replace(b" ", b"")
