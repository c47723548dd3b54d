"""Knative Serving on the mesh: cold start from zero, beside the app's own start.

    .venv/bin/python bench/serving.py [--quick]

Figures (one JSON line each):
- `cold_start_ms_p50`, `_p99`: a Knative Service scaled to zero gets one request
  through the gateway (`Host: NAME.NS.example.com`); from sending it to its 200 (it
  waits at the activator while an instance starts: Envoy, certificate, xDS, the app,
  its readiness probe, then the hop over mutual TLS).
- `app_alone_ms_p50`: the same app (`python3 -m http.server`) started by hand until
  its first good response, in the same run, between the cold starts.
- `cold_start_added_ms_p50`, `_p99`: the cold start minus the app alone: what the
  platform adds.
- `warm_request_ms_p50` and `warm_direct_ms_p50`: a request once an instance is
  ready (through the gateway and the activator, as Knative routes a revision of one
  instance) against the same app's port directly.
Each cycle waits for the revision to scale to zero again (a 6 s stable window, 6 s
grace period: `config-autoscaler` in the test mesh).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from process_model import Mesh, app_alone_ms, free_port, wait  # noqa: E402

MESH = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data: {example.com: ""}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {scale-to-zero-grace-period: 6s}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: cold, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containers:
        - image: example.com/files:1
          command: [python3, -m, http.server]
          args: ["$(PORT)", --bind, 127.0.0.1]
          readinessProbe: {httpGet: {path: /}}
"""
HOST = "cold.default.example.com"


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "serving", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def instances(mesh: Mesh) -> list[dict[str, Any]]:
    return [r for r in mesh.status() if r["workload"] == "cold-00001"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Knative Serving cold start")
    p.add_argument("--quick", action="store_true", help="3 cold starts instead of 7")
    args = p.parse_args(argv)
    cycles = 3 if args.quick else 7
    cold: list[float] = []
    alone: list[float] = []
    warm: list[float] = []
    direct: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ami-bench-serving-") as work:
        mesh = Mesh(Path(work), MESH)
        try:
            url = wait(lambda: (mesh.info().get("gateway_urls") or [None])[0], 60, 0.1)
            with httpx.Client(trust_env=False, timeout=60) as c:
                for _ in range(cycles):
                    wait(lambda: not instances(mesh), 120, 0.1)  # at zero
                    alone.append(app_alone_ms())
                    t0 = time.perf_counter()
                    resp = c.get(url, headers={"Host": HOST})
                    cold.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200, resp.text
                    for _ in range(20):
                        t0 = time.perf_counter()
                        c.get(url, headers={"Host": HOST})
                        warm.append((time.perf_counter() - t0) * 1000)
                    direct += direct_ms(c, 20)
        finally:
            mesh.close()
    base = statistics.median(alone)
    emit("cold_start_ms_p50", statistics.median(cold), "ms", runs=len(cold))
    emit("cold_start_ms_p99", pct(cold, 0.99), "ms", runs=len(cold))
    emit("app_alone_ms_p50", base, "ms", runs=len(alone))
    emit("cold_start_added_ms_p50", statistics.median(cold) - base, "ms")
    emit("cold_start_added_ms_p99", pct(cold, 0.99) - base, "ms")
    emit("warm_request_ms_p50", statistics.median(warm), "ms", requests=len(warm))
    emit("warm_direct_ms_p50", statistics.median(direct), "ms", requests=len(direct))
    return 0


def direct_ms(c: httpx.Client, count: int) -> list[float]:
    """The same app, started by hand, asked directly: the warm baseline."""
    import subprocess

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            try:
                return c.get(f"http://127.0.0.1:{port}/").status_code == 200
            except httpx.HTTPError:
                return False

        wait(up, 30)
        out = []
        for _ in range(count):
            t0 = time.perf_counter()
            c.get(f"http://127.0.0.1:{port}/")
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
