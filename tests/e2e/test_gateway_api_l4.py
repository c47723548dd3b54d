"""The Gateway API's TCP and TLS-passthrough listeners end to end: a Gateway with a
`TCP` listener and a `TLS` listener (`mode: Passthrough`), a `TCPRoute` splitting
connections between two Services by weight and `TLSRoute`s passing TLS through by
SNI, converted by the control plane and served by a real gateway Envoy.

One mesh for the module: TCP echo services `echo-a` and `echo-b` (each answering
`NAME|bytes`), two TLS servers `secure-a` and `secure-b` terminating TLS themselves
with their own certificates for a.example.com and b.example.com, and the ingress
gateway serving the Gateway `l4` on ports 9100 (TCP) and 9443 (TLS); a client sidecar
with a local TCP port for `echo-a`, for a mesh (GAMMA) TCPRoute.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import HttpsServer, Mesh, Sidecar, self_signed_cert, wait_for
from tests.e2e.test_l4_routes import EchoServer, answered, tcp_call

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: echo-a}
spec: {selector: {app: echo-a}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-b}
spec: {selector: {app: echo-b}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: secure-a}
spec: {selector: {app: secure-a}, ports: [{name: tls, port: 8443}]}
---
apiVersion: v1
kind: Service
metadata: {name: secure-b, namespace: other}
spec: {selector: {app: secure-b}, ports: [{name: tls, port: 8443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tcp, port: 9100, protocol: TCP}
  - name: tls
    port: 9443
    protocol: TLS
    hostname: "*.example.com"
    tls: {mode: Passthrough}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: echo}
spec:
  parentRefs: [{name: l4, sectionName: tcp}]
  rules:
  - backendRefs:
    - {name: echo-a, port: 9000, weight: 3}
    - {name: echo-b, port: 9000, weight: 1}
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: TLSRoute
metadata: {name: secure-a}
spec:
  parentRefs: [{name: l4, sectionName: tls}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: secure-a, port: 8443}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: secure-b}
spec:
  parentRefs: [{name: l4, sectionName: tls}]
  hostnames: [b.example.com]
  rules: [{backendRefs: [{name: secure-b, namespace: other, port: 8443}]}]
"""

MESH_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: echo-a-mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo-a, port: 9000}]
  rules:
  - backendRefs:
    - {name: echo-b, port: 9000, weight: 1}
"""

GRANT = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: tls-in, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: default}]
  to: [{group: "", kind: Service, name: secure-b}]
"""


@dataclass
class L4:
    mesh: Mesh
    gateway: Sidecar
    client: Sidecar
    certs: dict[str, Path]


@pytest.fixture(scope="module")
def l4(module_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L4]:
    mesh = module_mesh
    certs_dir = tmp_path_factory.mktemp("certs")
    mesh.apply(CONFIG, source="gateway-api-l4.yaml")
    servers: list[EchoServer | HttpsServer] = []
    for name in ("echo-a", "echo-b"):
        echo = EchoServer(name)
        servers.append(echo)
        mesh.workload(name, {"app": name}, port=9000, app_port=echo.port, protocol="TCP")
    certs: dict[str, Path] = {}
    for name, host, namespace in (
        ("secure-a", "a.example.com", "default"),
        ("secure-b", "b.example.com", "other"),
    ):
        cert, key = self_signed_cert(certs_dir, host)
        certs[host] = cert
        https = HttpsServer(cert, key, lambda path, sni, _, n=name: f'"{n}"'.encode()).start()
        servers.append(https)
        mesh.workload(
            name,
            {"app": name},
            port=8443,
            app_port=https.port,
            protocol="TLS",
            namespace=namespace,
        )
    gateway = mesh.gateway(ports={9100: 0, 9443: 0})
    client = mesh.client(upstreams=[("echo-a", 9000, "TCP")])
    mesh.wait_synced()
    try:
        yield L4(mesh, gateway, client, certs)
    finally:
        for s in servers:
            if isinstance(s, EchoServer):
                s.shutdown()
                s.server_close()
            else:
                s.stop()


def _tls_get(l4: L4, host: str) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(l4.certs[host]))
    with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
        return https.get(
            f"https://127.0.0.1:{l4.gateway.listen_port(9443)}/",
            headers={"host": host},
            extensions={"sni_hostname": host},
        )


def _conditions(l4: L4, kind: str, name: str) -> dict[str, tuple[str, str]]:
    found: dict[str, Any] | None = l4.mesh.cp.gateway_api.status_of((kind, "default", name))
    assert found is not None, name
    [parent] = found["parents"]
    return {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}


def test_tcp_route_splits_connections_by_weight(l4: L4) -> None:
    port = l4.gateway.listen_port(9100)
    wait_for(lambda: (answered(lambda: tcp_call(port, b"hi")) or b"").endswith(b"|hi"))
    seen = Counter(tcp_call(port, b"hi").split(b"|")[0].decode() for _ in range(80))
    assert set(seen) == {"echo-a", "echo-b"}, seen
    assert seen["echo-a"] > seen["echo-b"], seen
    assert _conditions(l4, "TCPRoute", "echo") == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }


def test_tls_passthrough_by_sni(l4: L4) -> None:
    # The backend's own certificate verifies: the gateway did not terminate TLS.
    response = wait_for(lambda: answered(lambda: _tls_get(l4, "a.example.com")))
    assert response.json() == "secure-a"
    status = l4.mesh.cp.gateway_api.status_of(
        ("Gateway.gateway.networking.k8s.io", "default", "l4")
    )
    assert status is not None
    listeners = {x["name"]: x for x in status["listeners"]}
    for name in ("tcp", "tls"):
        programmed = {c["type"]: c["status"] for c in listeners[name]["conditions"]}
        assert programmed["Programmed"] == "True", listeners[name]
    assert listeners["tls"]["attachedRoutes"] == 2


def test_a_cross_namespace_tls_backend_needs_a_reference_grant(l4: L4) -> None:
    wait_for(lambda: answered(lambda: _tls_get(l4, "a.example.com")))
    assert _conditions(l4, "TLSRoute", "secure-b")["ResolvedRefs"] == (
        "False",
        "RefNotPermitted",
    )
    # No route for b.example.com: the gateway does not pass its connections on.
    assert answered(lambda: _tls_get(l4, "b.example.com")) is None
    l4.mesh.apply(GRANT, source="gateway-api-l4-grant.yaml")
    response = wait_for(lambda: answered(lambda: _tls_get(l4, "b.example.com")))
    assert response.json() == "secure-b"
    assert _conditions(l4, "TLSRoute", "secure-b")["ResolvedRefs"] == ("True", "ResolvedRefs")
    # The first route still answers.
    assert _tls_get(l4, "a.example.com").json() == "secure-a"


def test_mesh_tcp_route_on_a_service(l4: L4) -> None:
    port = l4.client.upstream_port("echo-a", 9000)
    wait_for(lambda: answered(lambda: tcp_call(port, b"m")) == b"echo-a|m")
    l4.mesh.apply(MESH_ROUTE, source="gateway-api-l4-mesh.yaml")
    # The client's connections to echo-a now go where the route sends them.
    wait_for(lambda: answered(lambda: tcp_call(port, b"m")) == b"echo-b|m")
    assert {tcp_call(port, b"m") for _ in range(10)} == {b"echo-b|m"}
    assert _conditions(l4, "TCPRoute", "echo-a-mesh")["Accepted"] == ("True", "Accepted")
    l4.mesh.remove("gateway-api-l4-mesh.yaml")
    wait_for(lambda: answered(lambda: tcp_call(port, b"m")) == b"echo-a|m")
