"""A sidecar's upstream ports end to end: a real gRPC client, real sidecars, real servers.

The client app dials 127.0.0.1:<upstream port> of its own sidecar (no HTTP proxy: gRPC
cannot use one); the sidecar routes by the mesh's rules to `greeter` v1 or v2, each a
gRPC server behind its own sidecar. VirtualService changes apply to that traffic. A
TCP upstream (`ledger`, an echo backend behind a TCP port) carries bytes unchanged.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
import yaml

from amimesh.telemetry.labels import TCP_LABELS
from amimesh.translate import metrics_log as ml
from tests.e2e.harness import GrpcBackend, Mesh, Sidecar, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

BASE = """
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec: {selector: {app: greeter}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: greeter
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger}
spec: {selector: {app: ledger}, ports: [{name: tcp, port: 7000}]}
"""


@dataclass
class Greeters:
    mesh: Mesh
    client: Sidecar
    servers: list[Sidecar]
    channel: grpc.Channel

    def say(self, text: bytes) -> bytes:
        call = self.channel.unary_unary(GrpcBackend.METHOD)
        reply: bytes = call(text, timeout=5)
        return reply

    def served_by(self, n: int) -> Counter[str]:
        return Counter(self.say(b"hi").split(b"|")[0].decode() for _ in range(n))

    def route(self, http: list[dict[str, object]]) -> None:
        doc = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "greeter"},
            "spec": {"hosts": ["greeter"], "http": http},
        }
        runs = self.mesh.cp.xds.regenerations
        self.mesh.apply(yaml.safe_dump(doc), source="greeter-vs.yaml")
        deadline = time.monotonic() + 10
        while self.mesh.cp.xds.regenerations == runs and time.monotonic() < deadline:
            time.sleep(0.005)
        self.mesh.wait_synced()


@pytest.fixture(scope="module")
def greeters(module_mesh: Mesh) -> Iterator[Greeters]:
    module_mesh.apply(BASE, source="greeter.yaml")
    servers = [
        module_mesh.workload(
            f"greeter-{version}",
            {"app": "greeter", "version": version},
            port=9090,
            protocol="GRPC",
        )
        for version in ("v1", "v2")
    ]
    module_mesh.workload("ledger", {"app": "ledger"}, port=7000, protocol="TCP")
    client = module_mesh.client(upstreams=[("greeter", 9090), ("ledger", 7000, "TCP")])
    module_mesh.wait_synced()
    target = f"127.0.0.1:{client.upstream_port('greeter', 9090)}"
    with grpc.insecure_channel(target) as channel:
        yield Greeters(module_mesh, client, servers, channel)


def to(subset: str, weight: int) -> dict[str, object]:
    return {"destination": {"host": "greeter", "subset": subset}, "weight": weight}


def inbound_requests(sidecar: Sidecar) -> int:
    for line in sidecar.stats().splitlines():
        if line.startswith("http.inbound_9090.downstream_rq_total:"):
            return int(line.split(":")[1])
    return 0


def test_grpc_through_the_upstream_port(greeters: Greeters) -> None:
    before = sum(inbound_requests(s) for s in greeters.servers)
    name, text = greeters.say(b"hello").split(b"|")
    assert (name in (b"greeter-v1", b"greeter-v2"), text) == (True, b"hello")
    assert set(greeters.served_by(20)) == {"greeter-v1", "greeter-v2"}
    # Through the servers' sidecars too, not only the client's.
    assert sum(inbound_requests(s) for s in greeters.servers) == before + 21


def test_tcp_through_the_upstream_port(greeters: Greeters) -> None:
    port = greeters.client.upstream_port("ledger", 7000)
    with httpx.Client(trust_env=False, timeout=10.0) as raw:
        response = raw.get(f"http://127.0.0.1:{port}/entries", headers={"host": "anything"})
    assert response.json()["backend"] == "ledger"
    assert response.json()["host"] == "anything"  # bytes pass unchanged


def tcp_series(mesh: Mesh, reporter: str) -> tuple[int, int, int, int]:
    """(opened, closed, sent, received) of connections to ledger, as `reporter` counts."""
    _http, tcp = mesh.cp.metrics.snapshot()
    out = [0, 0, 0, 0]
    for key, s in tcp.items():
        labels = dict(zip(TCP_LABELS, key, strict=True))
        if labels["reporter"] == reporter and labels["destination_workload"] == "ledger":
            for i, v in enumerate((s.opened, s.closed, s.sent, s.received)):
                out[i] += v
    return out[0], out[1], out[2], out[3]


def test_tcp_connections_counted_when_opened_and_when_closed(greeters: Greeters) -> None:
    mesh = greeters.mesh
    # Connections of earlier tests are all closed; once the proxies have flushed,
    # each was counted opened and closed.
    time.sleep(ml.FLUSH_INTERVAL_S + 1)
    wait_for(lambda: len(set(tcp_series(mesh, "source")[:2])) == 1, timeout=30)
    before = {r: tcp_series(mesh, r) for r in ("source", "destination")}
    port = greeters.client.upstream_port("ledger", 7000)
    request = b"GET /entries HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        assert conn.recv(4096)
        # Opened, not yet closed, as the client's sidecar reports (the server's counts
        # a connection when it closes: only then does it know the client's identity).
        wait_for(lambda: tcp_series(mesh, "source")[0] == before["source"][0] + 1, timeout=30)
        assert tcp_series(mesh, "source")[1] == before["source"][1]
    for r in before:
        wait_for(lambda r=r: tcp_series(mesh, r)[1] == before[r][1] + 1, timeout=30)
        opened, closed, sent, received = tcp_series(mesh, r)
        assert (opened, closed) == (before[r][0] + 1, before[r][1] + 1)
        assert received - before[r][3] >= len(request)
        assert sent > before[r][2]
    # The client's sidecar counted what the app sent as received from it.
    src = tcp_series(mesh, "source")
    assert src[3] - before["source"][3] == len(request)
    # The server's sidecar knew the client by its certificate (every workload here runs
    # as `default`, so the identity names no single workload).
    (key,) = [
        k
        for k in mesh.cp.metrics.snapshot()[1]
        if k[0] == "destination" and k[TCP_LABELS.index("destination_workload")] == "ledger"
    ]
    labels = dict(zip(TCP_LABELS, key, strict=True))
    assert (labels["source_principal"], labels["connection_security_policy"]) == (
        "spiffe://cluster.local/ns/default/sa/default",
        "mutual_tls",
    )


def test_virtual_service_subsets_and_weights_apply_to_grpc(greeters: Greeters) -> None:
    greeters.route([{"route": [to("v2", 100)]}])
    assert greeters.served_by(20) == Counter({"greeter-v2": 20})
    greeters.route([{"route": [to("v1", 1), to("v2", 0)]}])
    assert greeters.served_by(20) == Counter({"greeter-v1": 20})


def test_virtual_service_fault_applies_to_grpc(greeters: Greeters) -> None:
    greeters.route([{"fault": {"abort": {"grpcStatus": "UNAVAILABLE"}}, "route": [to("v1", 100)]}])
    with pytest.raises(grpc.RpcError) as failed:
        greeters.say(b"hi")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    greeters.route([{"route": [to("v1", 100)]}])
    assert greeters.say(b"again") == b"greeter-v1|again"
