"""The Kubernetes Gateway API end to end: Gateways and HTTPRoutes converted by the
control plane into the mesh's config, served by a real gateway Envoy and real sidecars.

One mesh for the module: workloads web-v1 and web-v2 (Services `web-v1`, `web-v2`, and
`web` over both), `shadow`, and `remote` in namespace `other`, each an HTTP echo
backend behind its sidecar; a client sidecar; a gateway Envoy serving the Gateway
`edge` of namespace `infra` on port 8080. The sequences follow Istio's Gateway API
tasks (ingress, traffic shifting, header routing, redirects, rewrites, header
modifiers, mirroring, cross-namespace references, mesh routing).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest

from tests.e2e.harness import GrpcBackend, Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

T = TypeVar("T")

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1}
spec: {selector: {app: web, version: v1}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2}
spec: {selector: {app: web, version: v2}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow}
spec: {selector: {app: shadow}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec: {selector: {app: greeter}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: remote, namespace: other}
spec: {selector: {app: remote}, ports: [{name: http, port: 9080}]}
"""

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    hostname: "*.example.com"
    port: 8080
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
  - name: infra-only
    hostname: infra.example.org
    port: 8080
    protocol: HTTP
  - name: passthrough
    port: 8443
    protocol: TLS
    tls: {mode: Passthrough}
    allowedRoutes: {namespaces: {from: All}}
"""

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge, namespace: infra, sectionName: http}]
  hostnames: [web.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs:
    - {name: web-v1, port: 9080, weight: 1}
    - {name: web-v2, port: 9080, weight: 1}
  - matches: [{path: {type: PathPrefix, value: /none-to-v2}}]
    backendRefs:
    - {name: web-v1, port: 9080, weight: 1}
    - {name: web-v2, port: 9080, weight: 0}
  - matches: [{headers: [{name: X-Version, value: v2}]}]
    backendRefs: [{name: web-v2, port: 9080}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: moved.example.com
        path: {type: ReplaceFullPath, replaceFullPath: /new}
        statusCode: 301
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /store}}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs: [{name: web-v1, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: rewritten.example.com
        path: {type: ReplaceFullPath, replaceFullPath: /replaced}
    backendRefs: [{name: web-v1, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Added, value: "100%"}]
        remove: [X-Drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Resp, value: resp-value}]
        remove: [X-Backend]
    backendRefs: [{name: web-v1, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    backendRefs: [{name: web-v1, port: 9080}]
    timeouts: {request: 500ms}
  - matches: [{path: {type: PathPrefix, value: /flaky}}]
    backendRefs: [{name: web-v1, port: 9080}]
    retry: {attempts: 3, codes: [503]}
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 9080}}
    backendRefs: [{name: web-v1, port: 9080}]
  - backendRefs: [{name: web-v1, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: remote}
spec:
  parentRefs: [{name: edge, namespace: infra}]
  hostnames: [remote.example.com]
  rules:
  - backendRefs: [{name: remote, namespace: other, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: not-allowed}
spec:
  parentRefs: [{name: edge, namespace: infra, sectionName: infra-only}]
  rules:
  - backendRefs: [{name: web-v1, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 9080}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: web-v2, port: 9080}]
  - backendRefs: [{name: web-v1, port: 9080}]
"""

GRPC_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter}
spec:
  parentRefs: [{name: edge, namespace: infra}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: test.Echo, method: Say}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-route, value: grpc}]}
    backendRefs: [{name: greeter, port: 9090}]
"""

GRANT = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-default, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service, name: remote}]
"""


@dataclass
class Edge:
    mesh: Mesh
    gateway: Sidecar
    client: Sidecar
    shadow: Sidecar
    http: httpx.Client

    def get(self, path: str, host: str = "web.example.com", **kw: Any) -> httpx.Response:
        headers = {"host": host, **kw.pop("headers", {})}
        return self.http.get(self.gateway.url(8080) + path, headers=headers, **kw)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """`check()`'s first truthy value, polled until `timeout` (a busy machine is slow)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def backend(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    return str(response.json()["backend"])


@pytest.fixture(scope="module")
def edge(module_mesh: Mesh) -> Iterator[Edge]:
    m = module_mesh
    m.apply(
        SERVICES + "---" + GATEWAY + "---" + ROUTES + "---" + GRPC_ROUTE,
        source="gateway-api.yaml",
    )
    m.workload("web-v1", {"app": "web", "version": "v1"}, port=9080)
    m.workload("web-v2", {"app": "web", "version": "v2"}, port=9080)
    shadow = m.workload("shadow", {"app": "shadow"}, port=9080)
    m.workload("remote", {"app": "remote"}, port=9080, namespace="other")
    m.workload("greeter", {"app": "greeter"}, port=9090, protocol="GRPC")
    client = m.client()
    gateway = m.gateway(ports={8080: 0})
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        e = Edge(m, gateway, client, shadow, http)
        eventually(lambda: e.get("/").status_code == 200, "the gateway to route web.example.com")
        yield e


def route_status(mesh: Mesh, name: str, namespace: str = "default") -> dict[str, Any]:
    found = mesh.cp.gateway_api.status_of(("HTTPRoute", namespace, name))
    assert found is not None, name
    return found


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    [parent] = status["parents"]
    return {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}


def test_ingress_through_gateway_and_httproute(edge: Edge) -> None:
    r = edge.get("/anything?x=1")
    assert backend(r) == "web-v1"
    assert r.json()["path"] == "/anything?x=1"
    # A host the route does not name, and one no listener takes: 404.
    assert edge.get("/", host="other.example.com").status_code == 404
    assert edge.get("/", host="web.example.net").status_code == 404


def test_gateway_and_listener_status(edge: Edge) -> None:
    status = edge.mesh.cp.gateway_api.status_of(
        ("Gateway.gateway.networking.k8s.io", "infra", "edge")
    )
    assert status is not None
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
    }
    listeners = {x["name"]: x for x in status["listeners"]}
    http = {c["type"]: c["status"] for c in listeners["http"]["conditions"]}
    assert http["Programmed"] == "True"
    assert listeners["http"]["attachedRoutes"] == 3  # web, remote and greeter
    # A passthrough listener is served too (tests/e2e/test_gateway_api_l4.py), with no
    # route attached here.
    tls = {c["type"]: (c["status"], c["reason"]) for c in listeners["passthrough"]["conditions"]}
    assert tls["Accepted"] == ("True", "Accepted")
    assert tls["Programmed"] == ("True", "Programmed")
    assert listeners["passthrough"]["attachedRoutes"] == 0
    assert conditions(route_status(edge.mesh, "web")) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    # The listener takes routes of its Gateway's namespace only.
    refused = conditions(route_status(edge.mesh, "not-allowed"))
    assert refused["Accepted"] == ("False", "NotAllowedByListeners")


def test_weighted_split(edge: Edge) -> None:
    seen = {backend(edge.get("/split")) for _ in range(60)}
    assert seen == {"web-v1", "web-v2"}
    # Weight 0 gets nothing.
    assert {backend(edge.get("/none-to-v2")) for _ in range(30)} == {"web-v1"}


def test_header_match(edge: Edge) -> None:
    assert backend(edge.get("/", headers={"x-version": "v2"})) == "web-v2"
    assert backend(edge.get("/", headers={"x-version": "v3"})) == "web-v1"
    # A longer path prefix wins over a header match (the API's precedence).
    r = edge.get("/api/x", headers={"x-version": "v2"})
    assert (backend(r), r.json()["path"]) == ("web-v1", "/v2/x")


def test_redirect(edge: Edge) -> None:
    r = edge.get("/old?q=1")
    assert r.status_code == 301
    assert r.headers["location"].startswith("http://moved.example.com")
    assert r.headers["location"].split("moved.example.com", 1)[1].startswith("/new")
    # Exact: /old/more is not redirected.
    assert edge.get("/old/more").status_code == 200
    # ReplacePrefixMatch: the matched prefix is replaced, the rest of the path kept;
    # the status code defaults to 302.
    moved = edge.get("/shop/cart/7?x=1")
    assert moved.status_code == 302
    assert moved.headers["location"].endswith("/store/cart/7?x=1")
    assert edge.get("/shop").headers["location"].endswith("/store")


def test_rewrite(edge: Edge) -> None:
    assert edge.get("/api/items?id=7").json()["path"] == "/v2/items?id=7"
    assert edge.get("/api").json()["path"] == "/v2"
    # A prefix matches whole path elements: /apix is not under /api.
    assert edge.get("/apix").json()["path"] == "/apix"
    full = edge.get("/full/anything?z=1").json()
    assert full["path"] == "/replaced?z=1"
    assert full["host"] == "rewritten.example.com"


def test_request_and_response_header_modifiers(edge: Edge) -> None:
    r = edge.get("/headers", headers={"x-set": "old", "x-drop": "gone", "x-added": "first"})
    seen = r.json()["headers"]
    assert seen["x-set"] == "set-value"
    assert "x-drop" not in seen
    # Added as one more header line (the echo shows the last line of a name); the
    # value is literal, "%" included.
    assert seen["x-added"] == "100%"
    assert r.headers["x-resp"] == "resp-value"
    assert "x-backend" not in r.headers
    # Other paths are untouched.
    assert "x-resp" not in edge.get("/").headers


def test_timeout_and_retries(edge: Edge) -> None:
    slow = edge.get("/slow", headers={"x-echo-delay": "3"})
    assert slow.status_code == 504
    key = f"flaky-{time.monotonic_ns()}"
    flaky = edge.get("/flaky", headers={"x-echo-fail-first": "2", "x-echo-key": key})
    assert flaky.status_code == 200
    assert flaky.json()["headers"]["x-envoy-attempt-count"] == "3"


def test_mirror(edge: Edge) -> None:
    shadow = edge.shadow.backend
    assert shadow is not None
    shadow.clear()
    assert backend(edge.get("/mirror/copy")) == "web-v1"
    copies = eventually(lambda: list(shadow.requests), "the mirrored copy")
    assert copies[0].path == "/mirror/copy"


def test_cross_namespace_backend_needs_a_reference_grant(edge: Edge) -> None:
    status = conditions(route_status(edge.mesh, "remote"))
    assert status["ResolvedRefs"] == ("False", "RefNotPermitted")
    refused = edge.get("/", host="remote.example.com")
    assert refused.status_code == 500
    edge.mesh.apply(GRANT, source="grant.yaml")
    try:
        eventually(
            lambda: edge.get("/", host="remote.example.com").status_code == 200,
            "the granted backend",
        )
        assert backend(edge.get("/", host="remote.example.com")) == "remote"
        granted = conditions(route_status(edge.mesh, "remote"))
        assert granted["ResolvedRefs"] == ("True", "ResolvedRefs")
    finally:
        edge.mesh.remove("grant.yaml")
    eventually(
        lambda: edge.get("/", host="remote.example.com").status_code == 500,
        "the grant's removal",
    )


def test_grpc_route_by_method(edge: Edge) -> None:
    address = edge.gateway.url(8080).removeprefix("http://")
    options = [("grpc.default_authority", "grpc.example.com")]
    with grpc.insecure_channel(address, options=options) as channel:
        say = channel.unary_unary(GrpcBackend.METHOD)
        answer, call = say.with_call(b"hi", timeout=10)
        assert answer == b"greeter|hi"
        assert ("x-route", "grpc") in call.initial_metadata()
        # A method no rule matches: no route.
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/test.Echo/Other")(b"hi", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_mesh_route_between_services(edge: Edge) -> None:
    with edge.client.http() as mesh:
        eventually(
            lambda: (
                mesh.get("http://web:9080/", headers={"x-canary": "yes"}).json()["backend"]
                == "web-v2"
            ),
            "the mesh route",
        )
        assert {mesh.get("http://web:9080/").json()["backend"] for _ in range(20)} == {"web-v1"}
    assert conditions(route_status(edge.mesh, "web-mesh"))["Accepted"] == ("True", "Accepted")


# --- `ami up`: the mesh's own ingress gateway runs a Gateway, and `ami get` shows it --

UP_APP = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else f"api {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

UP_MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: api, labels: {app: api}}
spec:
  command: [python, apps/api.py]
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 0.5}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - name: https
    hostname: api.example.com
    port: 8443
    protocol: HTTPS
    tls: {mode: Terminate, certificateRefs: [{name: api-cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: api, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: lost}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs: [{name: nowhere, port: 8080}]
"""


def test_ami_up_serves_a_gateway_and_ami_get_shows_its_status(tmp_path: Path) -> None:
    from tests.e2e.meshes import from_yaml
    from tests.e2e.test_runtime import AMI, until

    with from_yaml(tmp_path, UP_MESH, files={"apps/api.py": UP_APP}) as up:
        urls = up.info().gateway_urls
        http_url = next(u for u in urls if u.startswith("http://"))
        https_url = next(u for u in urls if u.startswith("https://"))

        def get(url: str, **kw: Any) -> httpx.Response:
            with httpx.Client(trust_env=False, timeout=10, **kw) as c:
                return c.get(
                    url + "api/items",
                    headers={"host": "api.example.com"},
                    extensions={"sni_hostname": "api.example.com"},
                )

        answer = until(lambda: get(http_url).status_code == 200 and get(http_url), "HTTP")
        assert answer.text == "api /items"
        # The HTTPS listener's certificate (issued by the mesh CA for its hostname).
        roots = ssl.create_default_context(cafile=str(up.state.ca / "root-cert.pem"))
        tls = until(lambda: get(https_url, verify=roots), "HTTPS")
        assert tls.text == "api /items"

        def ami(*args: str) -> str:
            env = {**os.environ, "COLUMNS": "200"}
            done = subprocess.run(
                [*AMI, *args, "--mesh", str(up.state.path)],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        routes = until(lambda: "BackendNotFound" in (out := ami("get", "httproutes")) and out, "")
        [api] = [line for line in routes.splitlines() if line.startswith("api ")]
        assert "True" in api and "edge" in api
        [lost] = [line for line in routes.splitlines() if line.startswith("lost ")]
        assert "False (BackendNotFound)" in lost
        gateways = ami("get", "gateways.gateway.networking.k8s.io")
        assert "http:8080/HTTP 2 routes" in gateways
        assert "https:8443/HTTPS 2 routes" in gateways
        as_yaml = ami("get", "httproute", "lost", "-o", "yaml")
        assert "reason: BackendNotFound" in as_yaml
