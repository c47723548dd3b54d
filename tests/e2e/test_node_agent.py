"""The process model under `ami up`: one node agent runs every instance (an instance is
its Envoy and its app), each Envoy gets only its own identity by SDS, and the data
plane outlives both its control plane and its node agent.

Traffic runs through the gateway to `web`, whose app calls `api` through its sidecar
(gateway → web's sidecar → api's sidecar), while processes are killed under it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import psutil
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from amimesh.identity import pem
from tests.e2e.harness import free_port
from tests.e2e.test_runtime import Up, get, kill_everything, start_up, until, write_mesh
from tests.unit.test_sds import unpack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# An app that listens on a port of its own choosing, not on $PORT.
STRAY_APP = """
import http.server as h
h.ThreadingHTTPServer(("127.0.0.1", %d), h.SimpleHTTPRequestHandler).serve_forever()
"""
ACCOUNTS = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: stray, labels: {app: stray}}
spec:
  command: [python, apps/stray.py]
  serviceAccount: stray-sa
  ports: [{name: http, port: 8080}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("node")
    root = write_mesh(base / "shop")
    wrong_port = free_port()
    (root / "mesh" / "stray.yaml").write_text(ACCOUNTS)
    (root / "apps" / "stray.py").write_text(STRAY_APP % wrong_port)
    up = start_up(root, base / "state", "--gateway-port", str(free_port()), "--cert-ttl", "20s")
    up.wrong_port = wrong_port  # type: ignore[attr-defined]
    family: list[psutil.Process] = []
    try:
        until(lambda: ready_but_stray(up), "every instance ready but stray", timeout=60)
        family = up.family()
        yield up
    finally:
        kill_everything(up, family)


def ready_but_stray(up: Up) -> dict[str, dict[str, Any]] | None:
    rows = up.instances()
    if rows and all(
        r["ready"] or r["state"] == "completed" or r["workload"] == "stray" for r in rows.values()
    ):
        return rows
    return None


class Traffic:
    """Requests through the gateway (web → api), back to back, counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as c:
            while not self._stop.is_set():
                try:
                    r = c.get(self.url)
                    if r.status_code == 200 and r.text.startswith("web -> api"):
                        self.ok += 1
                    else:
                        self.failed.append(f"{r.status_code} {r.text[:80]}")
                except httpx.HTTPError as e:
                    self.failed.append(repr(e))
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def wait_for(self, count: int) -> None:
        target = self.ok + count
        until(lambda: self.ok >= target, f"{count} more good requests")


def info(up: Up) -> dict[str, Any]:
    return dict(json.loads(up.state.info_file.read_text()))


def synced(up: Up) -> bool:
    """Every instance's proxy connected to the control plane and in sync."""
    running = [r for r in up.instances().values() if r["state"] not in ("completed", "exited")]
    with up.client() as c:
        body = c.get("/api/v1/proxies").json()
    return bool(body["synced"]) and len(body["proxies"]) == len(running)


def test_an_instance_is_its_envoy_and_its_app(mesh: Up) -> None:
    rows = mesh.instances()
    family = mesh.family()
    names = [" ".join(p.cmdline()) for p in family]
    # ami up, the control plane, the node agent, and two processes per instance: the
    # gateway's second is its Envoy alone, a completed job has none left.
    running = [r for r in rows.values() if r["state"] not in ("completed", "exited")]
    sidecars = [r for r in running if r["kind"] == "sidecar"]
    assert len(family) == 3 + 2 * len(sidecars) + 1, names
    assert sum(1 for n in names if " node --state " in n) == 1
    assert sum(1 for n in names if " controlplane --state " in n) == 1
    assert not any(" agent " in n for n in names)
    pids = {p.pid for p in family}
    for r in sidecars:
        assert r["pid"] in pids and r["envoy_pid"] in pids


def sds_secrets(socket_path: str, names: list[str]) -> dict[str, secret_pb2.Secret]:
    """Ask an SDS socket for `names`, as an Envoy would; what it answers."""
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        request = discovery_pb2.DiscoveryRequest(
            resource_names=names,
            type_url="type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        )
        stream = stub.StreamSecrets(iter([request]), timeout=5)
        response = next(stream)
        stream.cancel()
    return unpack(response)


def test_each_sds_socket_serves_its_own_identity_only(mesh: Up) -> None:
    homes = {p.name: p for p in mesh.state.instances.iterdir()}
    web = sds_secrets(str(homes["web-0.default"] / "sds.sock"), ["default", "ROOTCA", "stray"])
    stray = sds_secrets(str(homes["stray-0.default"] / "sds.sock"), ["default", "web"])
    assert set(web) == {"default", "ROOTCA"} and set(stray) == {"default"}
    for secrets, uri in ((web, "default/sa/default"), (stray, "default/sa/stray-sa")):
        chain = secrets["default"].tls_certificate.certificate_chain.inline_bytes
        (leaf, *_) = pem.load_certificates(chain)
        assert pem.uri_sans(leaf) == [f"spiffe://cluster.local/ns/{uri}"]
    # On the wire, each sidecar's inbound listener shows its own identity (the stray's
    # instance never gets ready: its Envoy's listener may still be on its way).
    for name, uri in (("web-0", "default/sa/default"), ("stray-0", "default/sa/stray-sa")):
        port = inbound_port(mesh, name)
        der = until(lambda port=port: peer_certificate(port), f"{name}'s inbound listener")
        (leaf,) = pem.load_certificates(ssl.DER_cert_to_PEM_cert(der).encode())
        assert pem.uri_sans(leaf) == [f"spiffe://cluster.local/ns/{uri}"]


def peer_certificate(port: int) -> bytes | None:
    """The certificate a TLS listener on `port` presents (DER), None while none listens."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as raw:
            with context.wrap_socket(raw) as tls:
                return tls.getpeercert(binary_form=True)
    except OSError:
        return None


def inbound_port(up: Up, instance: str) -> int:
    config = json.loads((up.state.instances / f"{instance}.default" / "agent.json").read_text())
    return int(config["proxy"]["inbound"][0]["listen_port"])


def test_a_workload_on_the_wrong_port_says_so(mesh: Up) -> None:
    wrong = mesh.wrong_port  # type: ignore[attr-defined]
    row = until(
        lambda: (r := mesh.instances()["stray-0"]) and str(wrong) in r["reason"] and r,
        "the stray's reason",
    )
    assert row["state"] == "starting" and not row["ready"]
    should = row["reason"].split("$PORT=")[1].rstrip(")")
    assert f"the app listens on {wrong} instead" in row["reason"]
    out = mesh_status(mesh)
    assert f"listens on {wrong}" in out and f"$PORT={should}" in out


def mesh_status(up: Up) -> str:
    import subprocess
    import sys

    env = {**os.environ, "AMI_STATE_DIR": str(up.state_root), "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "amimesh.cli.main", "status", "--mesh", str(up.state.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def kill_under_traffic(up: Up, who: str, back: Callable[[], object]) -> None:
    """SIGKILL `who` (controlplane, node) while requests flow; until `ami up` has
    started it again and `back()` holds, no request may fail."""
    before = info(up)[f"{who}_pid"]
    with Traffic(up.info().gateway_urls[0]) as traffic:
        traffic.wait_for(5)
        os.kill(before, signal.SIGKILL)
        traffic.wait_for(20)
        until(lambda: info(up)[f"{who}_pid"] != before, f"a new {who}")
        until(back, f"{who} back")
        traffic.wait_for(20)
    assert traffic.failed == []


def test_the_data_plane_outlives_a_killed_control_plane(mesh: Up) -> None:
    url = mesh.info().gateway_urls[0]
    kill_under_traffic(mesh, "controlplane", lambda: synced(mesh))
    # A change made after that reaches every proxy.
    with mesh.client() as c:
        vs = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "hosts": ["*"],
                "gateways": ["web"],
                "http": [
                    {
                        "route": [{"destination": {"host": "web", "port": {"number": 8080}}}],
                        "headers": {"response": {"set": {"x-after-restart": "yes"}}},
                    }
                ],
            },
        }
        c.post("/api/v1/apply", content=json.dumps(vs)).raise_for_status()
    until(lambda: httpx.get(url, trust_env=False).headers.get("x-after-restart") == "yes", "new")
    until(lambda: synced(mesh), "synced")


def serial(up: Up, instance: str) -> str:
    chain = (up.state.instances / instance / "cert.pem").read_bytes()
    return str(pem.summary(pem.load_certificates(chain)[0]).serial)


def test_certificates_renew_once_a_stalled_control_plane_is_back(mesh: Up) -> None:
    url = mesh.info().gateway_urls[0]
    cp = info(mesh)["controlplane_pid"]
    with Traffic(url) as traffic:
        traffic.wait_for(5)
        # Right after a renewal (TTL 20 s: the next is due in about 10 s), the control
        # plane stops answering for 13 s: across the renewal, not past the expiry.
        last = serial(mesh, "web-0.default")
        until(lambda: serial(mesh, "web-0.default") != last, "a renewal")
        os.kill(cp, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # a renewal on its way when it stopped has landed
            first = serial(mesh, "web-0.default")
            outage_ends = time.monotonic() + 12.5
            while time.monotonic() < outage_ends:  # nobody can renew meanwhile
                assert serial(mesh, "web-0.default") == first
                time.sleep(0.5)
            traffic.wait_for(5)
        finally:
            os.kill(cp, signal.SIGCONT)
        until(lambda: serial(mesh, "web-0.default") != first, "a renewed certificate")
        traffic.wait_for(20)
    assert traffic.failed == []


def test_the_data_plane_outlives_a_killed_node_agent(mesh: Up) -> None:
    rows = mesh.instances()
    pids = {n: (r["pid"], r["envoy_pid"]) for n, r in rows.items() if r["ready"]}
    kill_under_traffic(mesh, "node", lambda: ready_but_stray(mesh))
    after = mesh.instances()
    for name, (pid, envoy) in pids.items():
        assert after[name]["ready"], after[name]
        assert (after[name]["pid"], after[name]["envoy_pid"]) == (pid, envoy), name
    get(mesh.info().gateway_urls[0])
