"""Knative Serving on the mesh: cold starts, the activator's cost, a scale-up, zero.

    .venv/bin/python bench/serving.py [--quick]      # needs hey (make bench-deps)

Figures (one JSON line each), all from one mesh started here:
- `cold_start_ms_p50`, `_p99`: the first request to a revision at zero (20 Knative
  Services that start at zero, `initial-scale: "0"`; 8 with `--quick`), through the
  gateway, until its 200: it waits at the activator while an instance starts.
- `process_start_ms_p50`, `_p99`: the same app (`python3 -m http.server`) started by
  hand until its first good response, as many times, in the same run.
- `cold_start_added_ms_p50`, `_p99`: cold start minus process start (pairwise
  percentiles of the two series).
- `activator_max_rps_ratio`: `hey` through a sidecar (its outbound port as HTTP
  proxy) to one revision of one instance: by its route, where Knative's
  target-burst-capacity rule keeps the activator in the path, over its revision's own
  host, straight to the instance's sidecar. Printed beside both rates.
- `scale_up_s`: 50 concurrent clients start against a revision at one instance with
  `autoscaling.knative.dev/target: "10"`; until every instance the KPA asked for is
  ready; printed beside the count it decided (`scale_up_instances`).
- `revision_at_zero_processes`: processes left of a revision scaled to zero (0).
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
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from process_model import Mesh, app_alone_ms, wait  # noqa: E402

CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data: {example.com: ""}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {allow-zero-initial-scale: "true", scale-to-zero-grace-period: 6s}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  command: [sleep, "3600"]
"""


def ksvc(name: str, annotations: dict[str, str]) -> str:
    notes = json.dumps(annotations)
    return f"""---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata: {{annotations: {notes}}}
    spec:
      containers:
        - image: example.com/files:1
          command: [python3, -m, http.server]
          args: ["$(PORT)", --bind, 127.0.0.1]
          readinessProbe: {{httpGet: {{path: /}}}}
"""


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "serving", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rows_of(mesh: Mesh, workload: str) -> list[dict[str, Any]]:
    return [r for r in mesh.status() if r["workload"] == workload]


def hey_rps(url: str, proxy: str, seconds: int, workers: int = 16) -> float:
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(workers), "-x", proxy, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"hey printed no rate:\n{out}")
    return float(found.group(1))


def replicas(mesh: Mesh, workload: str) -> int:
    items = mesh.http.get("/api/v1/resources", params={"kind": "wl", "name": workload}).json()
    return int(items["items"][0]["spec"].get("replicas", 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Knative Serving on the mesh")
    p.add_argument("--quick", action="store_true", help="8 cold starts, shorter load runs")
    args = p.parse_args(argv)
    if shutil.which("hey") is None:
        print("bench/serving.py needs hey: make bench-deps", file=sys.stderr)
        return 2
    colds = 8 if args.quick else 20
    seconds = 3 if args.quick else 8
    text = CONFIG
    for i in range(colds):
        text += ksvc(f"cold-{i}", {"autoscaling.knative.dev/initial-scale": "0"})
    text += ksvc("load", {"autoscaling.knative.dev/min-scale": "1"})
    text += ksvc(
        "step",
        {
            "autoscaling.knative.dev/target": "10",
            "autoscaling.knative.dev/window": "6s",
            "autoscaling.knative.dev/min-scale": "1",
        },
    )
    text += ksvc("sleepy", {"autoscaling.knative.dev/window": "6s"})
    with tempfile.TemporaryDirectory(prefix="ami-bench-serving-") as work:
        mesh = Mesh(Path(work), text)
        try:
            wait(mesh.all_ready, 120, 0.1)
            url = mesh.info()["gateway_urls"][0]
            cold: list[float] = []
            alone: list[float] = []
            with httpx.Client(trust_env=False, timeout=60) as c:
                c.get(url, headers={"Host": "load.default.example.com"})  # warm the path
                for i in range(colds):
                    alone.append(app_alone_ms())
                    t0 = time.perf_counter()
                    resp = c.get(url, headers={"Host": f"cold-{i}.default.example.com"})
                    cold.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200, resp.text
            emit("cold_start_ms_p50", statistics.median(cold), "ms", runs=len(cold))
            emit("cold_start_ms_p99", pct(cold, 0.99), "ms", runs=len(cold))
            emit("process_start_ms_p50", statistics.median(alone), "ms", runs=len(alone))
            emit("process_start_ms_p99", pct(alone, 0.99), "ms", runs=len(alone))
            emit(
                "cold_start_added_ms_p50", statistics.median(cold) - statistics.median(alone), "ms"
            )
            emit("cold_start_added_ms_p99", pct(cold, 0.99) - pct(alone, 0.99), "ms")

            agent = json.loads(
                (mesh.state / "instances" / "client-0.default" / "agent.json").read_text()
            )
            proxy = f"http://127.0.0.1:{agent['proxy']['outbound_port']}"
            through = hey_rps("http://load.default.svc.cluster.local/", proxy, seconds)
            direct = hey_rps("http://load-00001.default.svc.cluster.local/", proxy, seconds)
            emit("activator_max_rps_ratio", through / direct, "ratio", seconds=seconds)
            emit("activator_path_rps", through, "rps")
            emit("direct_path_rps", direct, "rps")

            load = subprocess.Popen(
                ["hey", "-z", "120s", "-c", "50", "-host", "step.default.example.com", url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                t0 = time.perf_counter()

                def settled() -> int:
                    want = replicas(mesh, "step-00001")
                    ready = [r for r in rows_of(mesh, "step-00001") if r["ready"]]
                    return want if want > 1 and len(ready) == want else 0

                decided = wait(settled, 90, 0.05)
                emit("scale_up_s", time.perf_counter() - t0, "s", clients=50, target=10)
                emit("scale_up_instances", decided, "instances")
            finally:
                load.kill()
                load.wait()

            # sleepy: idle since its start; a stable window and the grace period later,
            # nothing of it runs.
            wait(lambda: not rows_of(mesh, "sleepy-00001"), 120, 0.2)
            time.sleep(1)
            left = [
                p
                for p in psutil.process_iter(["cmdline"])
                if "sleepy-00001" in " ".join(p.info["cmdline"] or ())
            ]
            emit("revision_at_zero_processes", len(left), "processes")
        finally:
            mesh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
