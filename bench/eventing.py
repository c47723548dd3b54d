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
  The two phases alternate in rounds (2 with `--quick`, else 4; the time split evenly),
  so that a machine whose speed drifts during the run gives both the same share of
  each speed.
- `delivery_latency_ms_p50`, `_p99`: at a fixed rate (50 events/s), from the broker's
  ingress (the `time` it gives an event sent without one) to the subscriber.

`--cpu` also prints, for each load phase, the CPU seconds per event of every process
of the mesh (each Envoy by its instance, the broker, the JetStream server, the
subscriber, the node agent, the control plane) and of `hey`, from /proc/PID/stat
before and after the phase, and the machine's idle share meanwhile (/proc/stat): one
JSON line per phase (`cpu_ms_per_event`), and `cpu_throughput_ratio`: the direct
phase's CPU per event over the broker phase's, the ratio both phases would give on a
machine they had to themselves, when both are CPU-bound (on a machine shared with
other work, the measured ratio also compares how much of it each phase got).

`--processes N` runs N broker processes (`knative-eventing/config-ami-broker`).

`--durability [--events N]` runs the durability runs instead (`eventing_durability.py`):
`lost_events` after `kill -9` of the broker process, of the JetStream server, and of a
three-node cluster's stream leader, with N events each (2000).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
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


def hey(url: str, proxy: str, seconds: float, workers: int, rate: int = 0) -> tuple[float, int]:
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


TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _label(pid: int) -> str:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [a.decode(errors="replace") for a in args if a]
    if any(w.endswith("/envoy") for w in words[:1]):
        config = words[words.index("-c") + 1] if "-c" in words else ""
        return "envoy:" + Path(config).parent.name
    if "-m" in words:
        module = words[words.index("-m") + 1]
        if module == "amimesh.cli.main":
            return "ami " + words[words.index("-m") + 2]
        return module.rsplit(".", 1)[-1]
    if words and words[0].endswith("nats-server"):
        return "nats-server"
    if words[:2] == ["python3", "-c"]:
        return "subscriber"
    return Path(words[0]).name if words else str(pid)


def cpu_of(root: int) -> dict[str, float]:
    """CPU seconds (user + system, all threads) of `root` and its descendants, by label."""
    tree = _children()
    todo, seen = [root], {}
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            label = _label(pid)
        except (OSError, ValueError, IndexError):
            continue
        seen[label] = seen.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return seen


def idle_share() -> tuple[float, float]:
    """(idle + iowait jiffies, all jiffies) of the machine so far."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return float(cpu[3] + cpu[4]), float(sum(cpu))


class CpuMeter:
    """Per-process CPU over one phase, in one or more rounds: `start` and `stop(events)`
    around each, then `report(phase)`."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.before: dict[str, float] = {}
        self.idle = (0.0, 0.0)
        self.hey = 0.0
        self.t0 = 0.0
        self.used: dict[str, float] = {}
        self.idle_used = (0.0, 0.0)
        self.events = 0
        self.seconds = 0.0

    def start(self) -> None:
        self.before = cpu_of(self.root)
        self.idle = idle_share()
        self.hey = _children_cpu()
        self.t0 = time.monotonic()

    def stop(self, events: int) -> None:
        after = cpu_of(self.root)
        idle, total = idle_share()
        for k in after:
            self.used[k] = self.used.get(k, 0.0) + after[k] - self.before.get(k, 0.0)
        self.used["hey"] = self.used.get("hey", 0.0) + _children_cpu() - self.hey
        self.idle_used = (
            self.idle_used[0] + idle - self.idle[0],
            self.idle_used[1] + total - self.idle[1],
        )
        self.events += events
        self.seconds += time.monotonic() - self.t0

    def report(self, phase: str) -> float:
        """Print the phase's line; its CPU seconds per event."""
        used, events = self.used, max(1, self.events)
        per = {k: round(v * 1000 / events, 4) for k, v in sorted(used.items()) if v > 0}
        emit(
            "cpu_ms_per_event",
            sum(used.values()) * 1000 / events,
            "ms",
            phase=phase,
            events=self.events,
            seconds=round(self.seconds, 2),
            idle_share=round(self.idle_used[0] / max(1.0, self.idle_used[1]), 3),
            processes=per,
        )
        return sum(used.values()) / events


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Knative Eventing on the mesh")
    p.add_argument("--quick", action="store_true", help="shorter load runs")
    p.add_argument("--processes", type=int, default=1, help="broker processes (config-ami-broker)")
    p.add_argument("--cpu", action="store_true", help="CPU per event of every process")
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
    rounds = 2 if args.quick else 4
    per_round = seconds / rounds
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

            direct_meter = CpuMeter(mesh.proc.pid) if args.cpu else None
            broker_meter = CpuMeter(mesh.proc.pid) if args.cpu else None
            # The phases alternate, a round of each at a time (the direct path first: it
            # also warms the sidecars), so that a machine whose speed drifts (shared
            # with other work) gives both phases the same share of each speed.
            direct_ok = broker_ok = 0
            direct_s = broker_s = accepted_s = 0.0
            for _ in range(rounds):
                if direct_meter:
                    direct_meter.start()
                rate, ok = hey(SINK_URL, proxy, per_round, workers)
                if direct_meter:
                    direct_meter.stop(ok)
                direct_ok += ok
                direct_s += ok / rate if rate else 0.0
                base = delivered()
                t0 = time.monotonic()
                if broker_meter:
                    broker_meter.start()
                rate, ok = hey(BROKER, proxy, per_round, workers)
                wait(lambda: delivered() >= base + ok, 300, 0.05)  # noqa: B023
                broker_s += time.monotonic() - t0
                if broker_meter:
                    broker_meter.stop(ok)
                broker_ok += ok
                accepted_s += ok / rate if rate else 0.0
            direct_cpu = direct_meter.report("direct") if direct_meter else 0.0
            broker_cpu = broker_meter.report("broker") if broker_meter else 0.0
            through = broker_ok / broker_s
            direct = direct_ok / direct_s
            emit(
                "broker_events_per_s",
                through,
                "events/s",
                seconds=seconds,
                rounds=rounds,
                producers=workers,
                processes=args.processes,
            )
            emit("broker_accepted_per_s", broker_ok / accepted_s, "events/s", events=broker_ok)
            emit("direct_events_per_s", direct, "events/s", events=direct_ok)
            emit("broker_throughput_ratio", through / direct, "ratio")
            if broker_cpu > 0:
                emit("cpu_throughput_ratio", direct_cpu / broker_cpu, "ratio")

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
