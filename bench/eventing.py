"""Knative Eventing on the mesh: a durable broker's throughput against the same
producers posting straight to the subscriber, and its delivery latency.

    .venv/bin/python bench/eventing.py [--quick]      # needs hey (make bench-deps)

Figures (one JSON line each), from one mesh started here (embedded JetStream server):
- `broker_events_per_s`: `hey` (many producers) posts binary CloudEvents through a
  client's sidecar to a Broker for a fixed time; every event answered 202 is stored
  in JetStream, and a Trigger delivers it through the mesh to a subscriber that
  counts: events delivered over the time from the first post to the last delivery.
  Printed beside `broker_accepted_per_s` (the ingress's 202s per second).
- `direct_events_per_s`: the same producers, the same events, POSTed straight to the
  same subscriber through the same sidecar.
- `broker_throughput_ratio`: the first over the second (the issue's target: >= 0.5).
- `delivery_latency_ms_p50`, `_p99`: at a fixed rate (50 events/s), from the broker's
  ingress (the `time` it gives an event sent without one) to the subscriber.

`--processes N` runs N broker processes (`knative-eventing/config-ami-broker`).

`--durability [--events N]` runs the durability runs instead (`eventing_durability.py`):
`lost_events` after `kill -9` of the broker process, of the JetStream server, and of a
three-node cluster's stream leader, with N events each (2000).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from process_model import Mesh, wait  # noqa: E402

SINK = r"""
import datetime, json, os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
count = 0
latencies = []

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        sent = self.headers.get("ce-time")
        with lock:
            count += 1
            if sent:
                t = datetime.datetime.fromisoformat(sent.replace("Z", "+00:00"))
                now = datetime.datetime.now(datetime.timezone.utc)
                latencies.append((now - t).total_seconds() * 1000)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        global latencies
        with lock:
            body = json.dumps({"count": count, "latencies": latencies}).encode()
            if self.path == "/latencies":
                latencies = []
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

CONFIG = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: sink}
spec:
  broker: default
  filter: {attributes: {type: bench}}
  subscriber: {ref: {apiVersion: v1, kind: Service, name: sink}}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: sink, labels: {app: sink}}
spec:
  command: [python3, -c, %s]
  ports: [{name: http, port: 8080}]
  readinessProbe: {tcpSocket: {port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: sink}
spec:
  selector: {app: sink}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  command: [sleep, "3600"]
"""

BROKER = "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"
SINK_URL = "http://sink.default.svc.cluster.local/"
HEADERS = ["ce-id: bench-1", "ce-source: /bench", "ce-type: bench", "ce-specversion: 1.0"]


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "eventing", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def hey(url: str, proxy: str, seconds: int, workers: int, rate: int = 0) -> tuple[float, int]:
    """(requests per second, 2xx answers) of `hey` POSTing the event for `seconds`."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-m", "POST", "-x", proxy]
    for h in HEADERS:
        cmd += ["-H", h]
    cmd += ["-T", "application/json", "-d", '{"n": 1}']
    if rate:
        cmd += ["-q", str(rate)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"hey printed no rate:\n{out}")
    ok = sum(int(n) for n in re.findall(r"\[2\d\d\]\s+(\d+) responses", out))
    return float(found.group(1)), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Knative Eventing on the mesh")
    p.add_argument("--quick", action="store_true", help="shorter load runs")
    p.add_argument("--processes", type=int, default=1, help="broker processes (config-ami-broker)")
    p.add_argument("--durability", action="store_true", help="the kill -9 runs: lost_events")
    p.add_argument("--events", type=int, default=2000, help="events of each durability run")
    args = p.parse_args(argv)
    if args.durability:
        import eventing_durability

        eventing_durability.run(args.events)
        return 0
    if shutil.which("hey") is None:
        print("bench/eventing.py needs hey: make bench-deps", file=sys.stderr)
        return 2
    seconds = 4 if args.quick else 10
    workers = 16
    with tempfile.TemporaryDirectory(prefix="ami-bench-eventing-") as work:
        text = CONFIG % json.dumps(SINK)
        if args.processes > 1:
            text += (
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-ami-broker, "
                f"namespace: knative-eventing}}\ndata: {{processes: '{args.processes}'}}\n"
            )
        mesh = Mesh(Path(work), text)
        try:
            wait(mesh.all_ready, 120, 0.1)
            agent = json.loads(
                (mesh.state / "instances" / "client-0.default" / "agent.json").read_text()
            )
            proxy = f"http://127.0.0.1:{agent['proxy']['outbound_port']}"
            sink = httpx.Client(proxy=proxy, trust_env=False, timeout=10)

            def delivered() -> int:
                return int(sink.get(SINK_URL).json()["count"])

            # The direct path first (it also warms the sidecars).
            direct, direct_ok = hey(SINK_URL, proxy, seconds, workers)
            base = delivered()
            t0 = time.monotonic()
            accepted, ok = hey(BROKER, proxy, seconds, workers)
            wait(lambda: delivered() >= base + ok, 300, 0.2)
            elapsed = time.monotonic() - t0
            through = ok / elapsed
            emit(
                "broker_events_per_s",
                through,
                "events/s",
                seconds=seconds,
                producers=workers,
                processes=args.processes,
            )
            emit("broker_accepted_per_s", accepted, "events/s", events=ok)
            emit("direct_events_per_s", direct, "events/s", events=direct_ok)
            emit("broker_throughput_ratio", through / direct, "ratio")

            sink.get(SINK_URL + "latencies")  # forget the latencies so far
            base = delivered()
            _, ok = hey(BROKER, proxy, seconds, 5, rate=10)
            wait(lambda: delivered() >= base + ok, 60, 0.2)
            lat = [float(x) for x in sink.get(SINK_URL + "latencies").json()["latencies"]]
            emit("delivery_latency_ms_p50", statistics.median(lat), "ms", rate=50, events=len(lat))
            emit("delivery_latency_ms_p99", pct(lat, 0.99), "ms", rate=50, events=len(lat))
            sink.close()
        finally:
            mesh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
