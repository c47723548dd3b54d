"""VirtualService `tcp` and `tls` routes and `mirrors`, end to end through real Envoys.

One mesh for the module: a TCP echo service `echo` (instances v1 and v2, each answering
`NAME|bytes`), two TLS servers `secure-a` and `secure-b` (their own certificates for
a.example.com and b.example.com), an HTTP service `web` with two mirror targets, a
client sidecar (a local upstream port for `echo`, and the HTTP proxy), and the ingress
gateway: a TCP server on 31400 and a TLS PASSTHROUGH server on 9443.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.e2e.harness import HttpsServer, Mesh, Sidecar, self_signed_cert, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]
T = TypeVar("T")

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {selector: {app: echo}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo, echo.example.com]
  gateways: [mesh, ingress]
  tcp:
  - match: [{port: 31400, gateways: [ingress]}]
    route: [{destination: {host: echo, subset: v2, port: {number: 9000}}}]
  - match: [{port: 9000}]
    route:
    - {destination: {host: echo, subset: v1}, weight: 75}
    - {destination: {host: echo, subset: v2}, weight: 25}
---
apiVersion: v1
kind: Service
metadata: {name: secure-a}
spec: {selector: {app: secure-a}, ports: [{name: tls, port: 8443}]}
---
apiVersion: v1
kind: Service
metadata: {name: secure-b}
spec: {selector: {app: secure-b}, ports: [{name: tls, port: 8443}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [a.example.com, b.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [ingress]
  tls:
  - match: [{port: 9443, sniHosts: [a.example.com]}]
    route: [{destination: {host: secure-a, port: {number: 8443}}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: secure-b}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow-a}
spec: {selector: {app: shadow-a}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow-b}
spec: {selector: {app: shadow-b}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
    mirrors:
    - destination: {host: shadow-a}
    - destination: {host: shadow-b}
      percentage: {value: 100}
"""


class EchoServer(socketserver.ThreadingTCPServer):
    """Answers each connection's first read with `NAME|` and the bytes read."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        self.name = name

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = self.request.recv(1024)
                self.request.sendall(name.encode() + b"|" + data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def tcp_call(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        return s.recv(1024)


def answered(call: Callable[[], T]) -> T | None:
    """`call()`, or None while the route is not there yet (refused, reset, closed)."""
    try:
        return call()
    except (OSError, httpx.TransportError):
        return None


@dataclass
class L4:
    mesh: Mesh
    client: Sidecar
    gateway: Sidecar
    certs: dict[str, Path]
    web: Sidecar
    shadows: list[Sidecar]


@pytest.fixture(scope="module")
def l4(module_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L4]:
    mesh = module_mesh
    certs_dir = tmp_path_factory.mktemp("certs")
    mesh.apply(CONFIG, source="l4.yaml")
    servers: list[EchoServer | HttpsServer] = []
    for version in ("v1", "v2"):
        echo = EchoServer(f"echo-{version}")
        servers.append(echo)
        labels = {"app": "echo", "version": version}
        mesh.workload(f"echo-{version}", labels, port=9000, app_port=echo.port, protocol="TCP")
    certs: dict[str, Path] = {}
    for name, host in (("secure-a", "a.example.com"), ("secure-b", "b.example.com")):
        cert, key = self_signed_cert(certs_dir, host)
        certs[host] = cert
        https = HttpsServer(cert, key, lambda path, sni, _, n=name: f'"{n}"'.encode()).start()
        servers.append(https)
        mesh.workload(name, {"app": name}, port=8443, app_port=https.port, protocol="TLS")
    web = mesh.workload("web", {"app": "web"}, port=9080)
    shadows = [mesh.workload(n, {"app": n}, port=9080) for n in ("shadow-a", "shadow-b")]
    client = mesh.client(upstreams=[("echo", 9000, "TCP")])
    gateway = mesh.gateway(ports={31400: 0, 9443: 0})
    mesh.wait_synced()
    try:
        yield L4(mesh, client, gateway, certs, web, shadows)
    finally:
        for s in servers:
            if isinstance(s, EchoServer):
                s.shutdown()
                s.server_close()
            else:
                s.stop()


def test_tcp_route_splits_connections_by_weight(l4: L4) -> None:
    port = l4.client.upstream_port("echo", 9000)
    wait_for(lambda: (answered(lambda: tcp_call(port, b"hi")) or b"").endswith(b"|hi"))
    seen = Counter(tcp_call(port, b"hi").split(b"|")[0].decode() for _ in range(60))
    assert set(seen) == {"echo-v1", "echo-v2"}, seen
    assert seen["echo-v1"] > seen["echo-v2"]


def test_tcp_route_on_a_gateway_port(l4: L4) -> None:
    port = l4.gateway.listen_port(31400)
    wait_for(lambda: (answered(lambda: tcp_call(port, b"x")) or b"").endswith(b"|x"))
    assert {tcp_call(port, b"edge") for _ in range(10)} == {b"echo-v2|edge"}


def _tls_get(l4: L4, host: str) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(l4.certs[host]))
    with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
        return https.get(
            f"https://127.0.0.1:{l4.gateway.listen_port(9443)}/",
            headers={"host": host},
            extensions={"sni_hostname": host},
        )


def test_tls_passthrough_by_sni_through_the_gateway(l4: L4) -> None:
    # The backend's own certificate verifies: the gateway did not terminate TLS.
    response = wait_for(lambda: answered(lambda: _tls_get(l4, "a.example.com")))
    assert response.json() == "secure-a"
    assert _tls_get(l4, "b.example.com").json() == "secure-b"


def test_mirrors_send_copies_to_each_target(l4: L4) -> None:
    with l4.client.http() as http:
        response = wait_for(lambda: answered(lambda: http.get("http://web:9080/copied")))
    assert response.json()["backend"] == "web"
    for shadow in l4.shadows:
        backend = shadow.backend
        assert backend is not None
        deadline = time.monotonic() + 30
        while backend.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.path for r in backend.requests] == ["/copied"]
