"""AuthorizationPolicy on a TCP port, on real connections through a real Envoy.

The listener is what a sidecar's TCP inbound port gets once it runs
`inbound_filters.network_filters` before its TCP proxy: here Envoy runs from a static
bootstrap (no control plane), in front of an echo server, one Envoy per policy set.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from amimesh.agent import bootstrap as bs
from amimesh.agent.envoy import EnvoyProcess
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, inbound_filters, names
from amimesh.translate.listener_hcm import FilterChain, listener, tcp_proxy_filter
from tests.e2e.harness import free_port

pytestmark = [pytest.mark.envoy]


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    """A TCP server that sends back what it receives; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def policy(spec: str, name: str = "p") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}}}\nspec: {spec}\n---\n"
    )


def echoes(tmp_path: Path, echo_port: int, policies: str) -> bool:
    """Whether a connection through an Envoy running `policies` gets its bytes back."""
    result = parse_documents(policies, "tcp.yaml")
    assert result.ok, [str(e) for e in result.errors]
    port = InboundPort(port=5432, listen_port=free_port(), app_port=echo_port, protocol="TCP")
    proxy = Proxy(id="db.default", labels={"app": "db"}, inbound=(port,))
    filters = inbound_filters.network_filters(build_snapshot(result.resources), proxy, port)
    chain = FilterChain(filters=[*filters, tcp_proxy_filter(names.inbound_cluster(5432))])
    lis = listener("inbound|5432", "127.0.0.1", port.listen_port, 0, [chain])
    admin = free_port()
    config = bs.static_bootstrap(
        clusters=clusters.inbound_clusters(proxy), listeners=[lis], admin_port=admin
    )
    path = bs.write_bootstrap(tmp_path / f"envoy-{port.listen_port}.json", config)
    envoy = EnvoyProcess(path, admin, tmp_path / f"envoy-{port.listen_port}.log")
    try:
        envoy.start()
        envoy.wait_ready()
        with socket.create_connection(("127.0.0.1", port.listen_port), timeout=5) as conn:
            conn.sendall(b"ping")
            try:
                return conn.recv(4) == b"ping"
            except ConnectionResetError:
                return False
    finally:
        envoy.stop()


CASES = [
    ("no policy", "", True),
    (
        "allow from this address",
        policy("{rules: [{from: [{source: {ipBlocks: [127.0.0.1]}}]}]}"),
        True,
    ),
    (
        "allow from elsewhere",
        policy("{rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}"),
        False,
    ),
    ("allow nothing", policy("{}"), False),
    ("allow on this port", policy("{rules: [{to: [{operation: {ports: ['5432']}}]}]}"), True),
    ("allow on another port", policy("{rules: [{to: [{operation: {ports: ['80']}}]}]}"), False),
    (
        "allow GET: HTTP-only, cannot match",
        policy("{rules: [{to: [{operation: {methods: [GET]}}]}]}"),
        False,
    ),
    (
        "deny /admin: HTTP-only part dropped, denies all",
        policy("{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}"),
        False,
    ),
    (
        "deny others",
        policy("{action: DENY, rules: [{from: [{source: {notIpBlocks: [127.0.0.1]}}]}]}"),
        True,
    ),
    ("audit everything", policy("{action: AUDIT, rules: [{}]}"), True),
    (
        "peers need mutual TLS",
        policy("{rules: [{from: [{source: {principals: ['cluster.local/ns/default/sa/x']}}]}]}"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("policies", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_tcp_policies(tmp_path: Path, echo: int, policies: str, expected: bool) -> None:
    assert echoes(tmp_path, echo, policies) is expected
