"""The broker's durability at the issue's size: `bench/eventing.py --durability`.

Three runs, each `events` CloudEvents (2000 by default) with ids of their own, posted
by eight producers through a client's sidecar to a Broker whose Trigger delivers them
to a subscriber that keeps every id it gets:

- `broker`: `kill -9` of the broker process once half are answered 202 (the node
  agent starts it again), then as many more;
- `jetstream`: the same with the mesh's JetStream server (`ami up` starts it again);
- `cluster`: a three-node NATS cluster on loopback (`config-nats`, stream replicas 3),
  `kill -9` of the stream's leader.

`lost_events` (one line per run): events answered 202 and never delivered once the
deliveries have settled (nothing new for 20 s, at most 10 minutes). The target is 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from amimesh.runtime.node_config import read_pids
from eventing import CONFIG  # the same mesh: a Broker, a Trigger, its sink, a client
from process_model import Mesh, wait

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.nats_cluster import PASSWORD, USER, Cluster  # noqa: E402  (three servers)

PRODUCERS = 8
SETTLE_S = 20.0
MAX_WAIT_S = 600.0
BROKER = "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"
SINK_URL = "http://sink.default.svc.cluster.local/"

SINK = r"""
import json, os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
ids = set()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            ids.add(self.headers.get("ce-id", ""))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        with lock:
            body = json.dumps(sorted(ids)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


CLUSTER_CONFIG = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-nats, namespace: knative-eventing}
data: {servers: "%s", credentials: %s, replicas: "3"}
"""


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "eventing", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def proxy_of(mesh: Mesh) -> str:
    agent = json.loads((mesh.state / "instances" / "client-0.default" / "agent.json").read_text())
    return f"http://127.0.0.1:{agent['proxy']['outbound_port']}"


def broker_pid(mesh: Mesh) -> int:
    homes = [h for h in (mesh.state / "instances").iterdir() if h.name.startswith("broker-")]
    return int(read_pids(homes[0]).get("app_pid", 0)) if homes else 0


def produce_across(proxy: str, prefix: str, events: int, kill: Callable[[], None]) -> list[str]:
    """`events` answered 202 (half before `kill`, half after): their ids."""
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(k: int) -> None:
        with httpx.Client(proxy=proxy, trust_env=False, timeout=20) as c:
            i = k
            while not stop.is_set():
                event_id = f"{prefix}-{i}"
                i += PRODUCERS
                headers = {
                    "ce-id": event_id,
                    "ce-source": "/bench",
                    "ce-type": "bench",
                    "ce-specversion": "1.0",
                    "content-type": "application/json",
                }
                try:
                    r = c.post(BROKER, headers=headers, content=b'{"n": 1}')
                except httpx.HTTPError:
                    continue
                if r.status_code == 202:
                    with lock:
                        accepted.append(event_id)
                        if len(accepted) >= events:
                            stop.set()

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(PRODUCERS)]
    for t in threads:
        t.start()
    wait(lambda: len(accepted) >= events // 2, MAX_WAIT_S, 0.05)
    kill()
    for t in threads:
        t.join(MAX_WAIT_S)
    with lock:
        return list(accepted)


def lost(proxy: str, accepted: list[str]) -> int:
    """Accepted ids never delivered, once nothing new arrived for `SETTLE_S`."""
    want = set(accepted)
    with httpx.Client(proxy=proxy, trust_env=False, timeout=30) as c:
        deadline = time.monotonic() + MAX_WAIT_S
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            try:
                got = set(c.get(SINK_URL).json())
            except (httpx.HTTPError, ValueError):
                time.sleep(1)
                continue
            missing = len(want - got)
            if missing == 0:
                return 0
            if len(got) != last:
                last, since = len(got), time.monotonic()
            elif time.monotonic() - since > SETTLE_S:
                return missing
            time.sleep(0.5)
        return len(want - set(c.get(SINK_URL).json()))


def run(events: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ami-bench-durability-") as work:
        text = CONFIG % json.dumps(SINK)
        mesh = Mesh(Path(work) / "one", text)
        try:
            wait(mesh.all_ready, 120, 0.2)
            proxy = proxy_of(mesh)

            def kill_broker() -> None:
                pid = broker_pid(mesh)
                os.kill(pid, signal.SIGKILL)
                wait(lambda: broker_pid(mesh) not in (0, pid), 120, 0.1)

            accepted = produce_across(proxy, "broker", events, kill_broker)
            emit(
                "lost_events", lost(proxy, accepted), "events", run="broker", accepted=len(accepted)
            )

            def kill_server() -> None:
                os.kill(int(mesh.info()["nats_pid"]), signal.SIGKILL)

            accepted = produce_across(proxy, "jetstream", events, kill_server)
            emit(
                "lost_events",
                lost(proxy, accepted),
                "events",
                run="jetstream",
                accepted=len(accepted),
            )
        finally:
            mesh.close()
        root = Path(work) / "cluster"
        root.mkdir()
        cluster = Cluster(root)
        try:
            wait(cluster.ready, 60, 0.2)
            creds = root / "nats.creds"
            creds.write_text(f"{USER}:{PASSWORD}")
            text += CLUSTER_CONFIG % (cluster.servers, json.dumps(str(creds)))
            mesh = Mesh(root / "mesh", text)
            try:
                wait(mesh.all_ready, 180, 0.2)
                proxy = proxy_of(mesh)

                def kill_leader() -> None:
                    leader = cluster.stream().cluster.leader
                    os.kill(cluster.procs[leader].pid, signal.SIGKILL)

                accepted = produce_across(proxy, "cluster", events, kill_leader)
                emit(
                    "lost_events",
                    lost(proxy, accepted),
                    "events",
                    run="cluster",
                    accepted=len(accepted),
                )
            finally:
                mesh.close()
        finally:
            cluster.stop()
