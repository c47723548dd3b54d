"""Istio's JWT tasks on a real mesh: RequestAuthentication, then authorization on it.

A client sidecar calls `httpbin` through the mesh; keys and tokens are made here
(RS256, ES256, ES512). The steps follow Istio's "JWT authentication" and
"Authorization with JWT" tasks:

1. a RequestAuthentication alone: an invalid token → 401, no token → 200 (left to
   authorization), a valid token → 200;
2. an ALLOW policy on `requestPrincipals`: no token → 403, a valid token → 200;
3. a `when` on the `groups` claim: a token in the group → 200, one that is not → 403.

A config change reaches the sidecars' listeners at once, but a connection opened before
it keeps the old filters while it drains, so each step waits for the drain (`settle`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e import test_jwt_support as jwt
from tests.e2e.harness import Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ISSUER = "testing@secure.istio.io"
URL = "http://httpbin:8000/headers"
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000}]}
"""


def request_authentication(jwks: str, name: str = "jwt-example") -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks}'
"""


REQUIRE_JWT = f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-jwt}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/{ISSUER}"]}}}}]
"""

REQUIRE_GROUP = (
    REQUIRE_JWT
    + """    when:
    - key: request.auth.claims[groups]
      values: [group1]
"""
)


def status(client: Sidecar, token: str | None = None, url: str = URL) -> int:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    with client.http() as http:
        return http.get(url, headers=headers).status_code


def stat(sidecar: Sidecar, name: str) -> int:
    for line in sidecar.stats().splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def settle(mesh: Mesh, *servers: Sidecar, timeout: float = 15.0) -> None:
    """Until every proxy acked the config and `servers` drained the connections opened
    under their previous filters (which keep those filters until they close)."""
    mesh.wait_synced()
    deadline = time.monotonic() + timeout
    for server in servers:
        while stat(server, "listener_manager.total_filter_chains_draining"):
            assert time.monotonic() < deadline, f"{server.proxy.id} is still draining"
            time.sleep(0.1)


@pytest.fixture
def signers() -> list[jwt.Signer]:
    return [jwt.signer("RS256"), jwt.signer("ES256"), jwt.signer("ES512")]


def test_jwt_task(mesh: Mesh, signers: list[jwt.Signer]) -> None:
    mesh.apply(SERVICE, "service.yaml")
    httpbin = mesh.workload("httpbin", {"app": "httpbin"}, port=8000)
    client = mesh.client()
    mesh.wait_synced()
    assert status(client) == 200

    # 1. RequestAuthentication: bad tokens are refused, no token is let through.
    mesh.apply(request_authentication(jwt.jwks(*signers)), "authn.yaml")
    settle(mesh, httpbin)
    assert status(client, "not-a-token") == 401
    with client.http() as http:
        r = http.get(URL, headers={"authorization": "Bearer not-a-token"})
    assert r.text.startswith("Jwt")  # Envoy's reason, e.g. "Jwt is not in the form..."
    assert status(client) == 200
    good = {s.alg: s.token(jwt.claims(ISSUER, ISSUER)) for s in signers}
    for alg, token in good.items():
        assert status(client, token) == 200, alg
        assert status(client, jwt.tamper(token)) == 401, alg
    assert status(client, signers[0].token(jwt.claims(ISSUER, ISSUER, ttl=-3600))) == 401
    assert status(client, signers[0].token(jwt.claims("other-issuer", ISSUER))) == 401
    stranger = jwt.signer("ES256", kid=signers[1].kid)
    assert status(client, stranger.token(jwt.claims(ISSUER, ISSUER))) == 401
    # The token is checked by the sidecar and not passed on (forwardOriginalToken: false).
    assert httpbin.backend is not None
    assert "authorization" not in httpbin.backend.requests[-1].headers

    # 2. Require a token from the issuer: no token is now refused by authorization.
    mesh.apply(REQUIRE_JWT, "authz.yaml")
    settle(mesh, httpbin)
    assert status(client) == 403
    with client.http() as http:
        assert http.get(URL).text == "RBAC: access denied"
    for alg, token in good.items():
        assert status(client, token) == 200, alg
    assert status(client, signers[0].token(jwt.claims(ISSUER, "someone-else"))) == 403
    assert status(client, "not-a-token") == 401

    # 3. Require the groups claim to hold group1.
    mesh.apply(REQUIRE_GROUP, "authz.yaml")
    settle(mesh, httpbin)
    in_group = signers[2].token(jwt.claims(ISSUER, ISSUER, groups=["group1", "group2"]))
    not_in_group = signers[2].token(jwt.claims(ISSUER, ISSUER, groups=["group2"]))
    assert status(client, good["ES512"]) == 403
    assert status(client, in_group) == 200
    assert status(client, not_in_group) == 403
    assert status(client) == 403

    # Removing the policies opens the workload again.
    mesh.remove("authz.yaml")
    mesh.remove("authn.yaml")
    settle(mesh, httpbin)
    assert status(client, "not-a-token") == 200


@pytest.fixture
def jwks_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server answering every GET with the JWKS in `served[0]`; yields its port
    and that one-element list (the test sets the JWKS)."""
    served = ['{"keys": []}']

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served[0].encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield int(server.server_address[1]), served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_keys_from_a_mesh_service(mesh: Mesh, jwks_server: tuple[int, list[str]]) -> None:
    """`jwksUri` naming a mesh service: the sidecar fetches the keys through the mesh."""
    port, served = jwks_server
    users = jwt.signer("ES512", kid="users-key")
    served[0] = jwt.jwks(users)
    mesh.apply(
        SERVICE
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: users}\n"
        + "spec: {selector: {app: users}, ports: [{name: http, port: 8080}]}\n",
        "services.yaml",
    )
    mesh.workload("users", {"app": "users"}, port=8080, app_port=port)
    mesh.workload("httpbin", {"app": "httpbin"}, port=8000)
    client = mesh.client()
    mesh.apply(
        """
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: users}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: users.shop.ami
    jwksUri: http://users.default.svc.cluster.local:8080/.well-known/jwks.json
    fromHeaders: [{name: x-jwt}]
    outputPayloadToHeader: x-jwt-payload
""",
        "authn.yaml",
    )
    mesh.wait_synced()
    token = users.token(jwt.claims("users.shop.ami", "jason", groups=["customers"]))

    def check(token: str) -> tuple[int, Any]:
        with client.http() as http:
            r = http.get(URL, headers={"x-jwt": token})
        payload = r.json()["headers"].get("x-jwt-payload") if r.status_code == 200 else None
        return r.status_code, payload

    code, payload = check(token)
    assert code == 200
    decoded = json.loads(jwt.b64decode(payload))
    assert (decoded["sub"], decoded["groups"]) == ("jason", ["customers"])
    assert (
        check(jwt.signer("ES512", kid="users-key").token(jwt.claims("users.shop.ami", "x")))[0]
        == 401
    )


def test_jwks_uri_naming_no_service_refuses_tokens(mesh: Mesh) -> None:
    mesh.apply(SERVICE, "service.yaml")
    httpbin = mesh.workload("httpbin", {"app": "httpbin"}, port=8000)
    client = mesh.client()
    mesh.apply(
        """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: nowhere}
spec:
  jwtRules:
  - issuer: nowhere.example
    jwksUri: http://keys.example.com/jwks.json
""",
        "authn.yaml",
    )
    settle(mesh, httpbin)
    token = jwt.signer("ES256").token(jwt.claims("nowhere.example", "x"))
    assert status(client, token) == 401
    assert status(client) == 200
