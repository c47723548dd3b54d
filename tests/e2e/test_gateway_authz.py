"""Authorization and JWT checks at the ingress gateway, through a real gateway Envoy.

One mesh for the module: workload `shop` (an HTTP echo backend) behind its sidecar, a
client sidecar, and a gateway Envoy in `istio-system` (labels `istio: ingressgateway`)
serving Gateway `istio-system/ingress`: plain HTTP on 8080, HTTPS (SIMPLE, a
self-signed certificate made here) on 8443, and HTTPS with client certificates of the
mesh CA (MUTUAL) on 8444. VirtualService `shop-edge` sends
`shop.example.com` and `admin.example.com` to `shop`, with a CORS policy.

Each test applies its policies as one source, in `istio-system` and selecting the
gateway as Istio users write them, and removes them when it ends. A connection opened
before a change keeps the old filters while it drains, so every step waits for the
gateway to drain (`settle`) and sends its requests on fresh connections.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from amimesh.identity import csr as csr_mod
from amimesh.identity.spiffe import SpiffeId
from tests.e2e import test_jwt_support as jwt
from tests.e2e.harness import Mesh, Sidecar, self_signed_cert
from tests.e2e.test_jwt import settle, stat

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ORIGIN = "https://app.example"
ISSUER = "https://issuer.example.com"
SELECT_GATEWAY = "selector: {matchLabels: {istio: ingressgateway}}"

MESH = """
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {selector: {app: shop}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, serverCertificate: CERT, privateKey: KEY}
  - port: {number: 8444, name: https-mutual, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: MUTUAL, serverCertificate: CERT, privateKey: KEY, caCertificates: CLIENT_CA}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-edge}
spec:
  hosts: [shop.example.com, admin.example.com]
  gateways: [istio-system/ingress]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example"}]
      allowMethods: [GET, POST]
    route: [{destination: {host: shop}}]
"""


def authorization(name: str, body: str) -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: istio-system}}
spec:
  {SELECT_GATEWAY}
{body}"""


@dataclass
class Edge:
    mesh: Mesh
    gateway: Sidecar
    shop: Sidecar
    client: Sidecar
    cert: Path

    def apply(self, text: str) -> None:
        """Make `text` the test's policies and wait until the gateway enforces them."""
        self.mesh.apply(text, "policies.yaml")
        settle(self.mesh, self.gateway, self.shop)

    def get(
        self,
        path: str = "/",
        host: str = "shop.example.com",
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            return http.request(
                method, self.gateway.url(8080) + path, headers={"host": host, **(headers or {})}
            )

    def get_https(
        self, path: str = "/", client_cert: tuple[str, str] | None = None
    ) -> httpx.Response:
        """Over HTTPS: on 8443, or with `client_cert` (chain, key files) on 8444."""
        context = ssl.create_default_context(cafile=str(self.cert))
        if client_cert is not None:
            context.load_cert_chain(*client_cert)
        port = 8443 if client_cert is None else 8444
        with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
            return https.get(
                self.gateway.url(port, "https") + path,
                headers={"host": "shop.example.com"},
                extensions={"sni_hostname": "shop.example.com"},
            )

    def through_mesh(self) -> int:
        with self.client.http() as http:
            return http.get("http://shop:9080/").status_code


@pytest.fixture(scope="module")
def edge_mesh(module_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    certs = tmp_path_factory.mktemp("certs")
    cert, key = self_signed_cert(certs, "shop.example.com")
    client_ca = certs / "client-ca.pem"
    client_ca.write_text(module_mesh.trust_bundle)
    text = MESH.replace("CLIENT_CA", str(client_ca))
    module_mesh.apply(text.replace("CERT", str(cert)).replace("KEY", str(key)), "mesh.yaml")
    shop = module_mesh.workload("shop", {"app": "shop"}, port=9080)
    client = module_mesh.client()
    gw = module_mesh.gateway(ports={8080: 0, 8443: 0, 8444: 0}, namespace="istio-system")
    module_mesh.wait_synced()
    yield Edge(module_mesh, gw, shop, client, cert)


def client_cert(mesh: Mesh, account: str, directory: Path) -> tuple[str, str]:
    """Files of a certificate of the mesh CA for `default/ACCOUNT` and its key."""
    issued, key = mesh.issue(SpiffeId("cluster.local", "default", account))
    chain, key_file = directory / f"{account}.pem", directory / f"{account}.key"
    chain.write_text(issued.certificate_chain)
    key_file.write_text(csr_mod.key_pem(key))
    return str(chain), str(key_file)


@pytest.fixture
def edge(edge_mesh: Edge) -> Iterator[Edge]:
    """The module's mesh with no policy, as every test starts and leaves it."""
    yield edge_mesh
    edge_mesh.mesh.remove("policies.yaml")
    settle(edge_mesh.mesh, edge_mesh.gateway, edge_mesh.shop)


def test_deny_all_at_the_gateway_leaves_the_mesh_alone(edge: Edge) -> None:
    assert edge.get().status_code == 200
    edge.apply(authorization("deny-all", "  action: ALLOW"))
    refused = edge.get()
    assert (refused.status_code, refused.text) == (403, "RBAC: access denied")
    assert edge.get_https().status_code == 403
    assert edge.shop.backend is not None
    served = edge.shop.backend.count()
    # Selected by its labels, the gateway refuses; the shop's sidecar is not selected.
    assert edge.through_mesh() == 200
    assert edge.shop.backend.count() == served + 1
    assert stat(edge.gateway, "http.gateway_http_8080.rbac.allow.denied") >= 1
    # The route's CORS policy answers a browser's preflight before authorization, and
    # a refusal still carries the CORS headers the browser needs to read it.
    preflight = edge.get(
        "/cart",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
        method="OPTIONS",
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    refused = edge.get("/cart", headers={"origin": ORIGIN})
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert edge.shop.backend.count() == served + 1  # nothing reached the shop


def test_allow_by_path_and_deny_by_host(edge: Edge) -> None:
    edge.apply(
        authorization(
            "public",
            """  action: ALLOW
  rules:
  - to: [{operation: {paths: ["/public/*"], methods: [GET]}}]""",
        )
        + authorization(
            "no-admin",
            """  action: DENY
  rules:
  - to: [{operation: {hosts: [admin.example.com]}}]""",
        )
    )
    assert edge.get("/public/item").status_code == 200
    assert edge.get("/public/item", method="POST").status_code == 403
    assert edge.get("/private").status_code == 403
    # The Host port is stripped at the gateway; the host still matches with one.
    assert edge.get("/public/item", host="admin.example.com").status_code == 403
    assert edge.get("/public/item", host="ADMIN.example.com:8080").status_code == 403
    assert edge.get_https("/public/x").status_code == 200
    assert edge.get_https("/private").status_code == 403
    assert edge.through_mesh() == 200


def test_ports_addresses_and_peers(edge: Edge, tmp_path: Path) -> None:
    edge.apply(
        authorization(
            "https-only",
            """  action: DENY
  rules:
  - to: [{operation: {notPorts: ["8443"]}}]
    when: [{key: "request.headers[x-https-only]", values: ["*"]}]""",
        )
        + authorization(
            "far-away",
            """  action: DENY
  rules:
  - from: [{source: {remoteIpBlocks: [10.0.0.0/8]}}]""",
        )
        + authorization(
            "peers",
            """  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: [127.0.0.1/32]}}]
    to: [{operation: {paths: [/local]}}]
  - from: [{source: {principals: ["*"]}}]
    to: [{operation: {paths: [/any-peer]}}]
  - from: [{source: {principals: [cluster.local/ns/default/sa/partner]}}]""",
        )
    )
    # Ports are the Gateway server ports.
    assert edge.get("/local", headers={"x-https-only": "1"}).status_code == 403
    assert edge.get("/local").status_code == 200
    # The direct peer is 127.0.0.1; X-Forwarded-For from an untrusted client is not the
    # client address, so it neither matches remoteIpBlocks nor is the peer's.
    assert edge.get("/local", headers={"x-forwarded-for": "10.1.2.3"}).status_code == 200
    # A browser's HTTPS has no client certificate: rules on peer identities never match.
    assert edge.get_https("/any-peer").status_code == 403
    assert edge.get("/any-peer").status_code == 403
    # With MUTUAL TLS they match the client certificate's identity.
    partner = client_cert(edge.mesh, "partner", tmp_path)
    stranger = client_cert(edge.mesh, "stranger", tmp_path)
    assert edge.get_https("/any-peer", partner).status_code == 200
    assert edge.get_https("/any-peer", stranger).status_code == 200
    assert edge.get_https("/anything", partner).status_code == 200
    assert edge.get_https("/anything", stranger).status_code == 403


def test_request_authentication_at_the_gateway(edge: Edge) -> None:
    signer = jwt.signer("ES256")
    edge.apply(
        f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: edge-jwt, namespace: istio-system}}
spec:
  {SELECT_GATEWAY}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwt.jwks(signer)}'
"""
        + authorization(
            "require-jwt",
            f"""  action: ALLOW
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/*"]}}}}]""",
        )
    )

    def status(token: str | None) -> int:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        return edge.get("/", headers=headers).status_code

    good = signer.token(jwt.claims(ISSUER, "alice"))
    assert status(None) == 403
    assert status("not-a-token") == 401
    assert status(jwt.tamper(good)) == 401
    assert status(signer.token(jwt.claims(ISSUER, "alice", ttl=-3600))) == 401
    assert status(good) == 200
    assert edge.shop.backend is not None
    # Checked at the gateway and not passed on (forwardOriginalToken: false).
    assert "authorization" not in edge.shop.backend.requests[-1].headers
    # A preflight carries no token: the CORS policy answers it at the edge.
    preflight = edge.get(
        "/", headers={"origin": ORIGIN, "access-control-request-method": "GET"}, method="OPTIONS"
    )
    assert preflight.status_code == 200
    # The shop's sidecar is not selected: tokens do not matter inside the mesh.
    assert edge.through_mesh() == 200
