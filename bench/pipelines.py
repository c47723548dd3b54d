"""Tekton runs on the local runner, each beside its baseline (one JSON line per figure).

    .venv/bin/python bench/pipelines.py [--quick]

- `step_overhead_ms_p50`, `_p99`: a TaskRun of 20 `true` steps, its time per step
  beyond the same 20 commands run by one shell script in the same TaskRun (per
  step). The anchor: Tekton starts a container per step in a pod per TaskRun.
- `pipeline_fanout_s`: a PipelineRun of 10 independent tasks of one `sleep 1` step
  (wall time, start to completion; the ideal is 1 s given cores enough: the core
  count is printed beside it).
- `webhook_to_run_started_ms_p50`, `_p99`: under `ami up` (the real control plane,
  node agent, gateway and the EventListener's sidecar and process), a signed GitHub
  push through the gateway until the first step's process starts (it writes the
  time, `date +%s%N`, to a file the payload names). Its baseline in the same run,
  `apply_to_run_started_ms_p50`, `_p99`: the same PipelineRun applied straight to the
  control plane's API (as `ami pipeline start` does) until its first step starts; the
  difference is what the webhook's path (gateway, sidecar, listener, interceptors,
  bindings, template) adds: `webhook_added_ms_p50`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from amimesh.pipelines.pipelinerunner import Lookups, PipelineControl, Runs
from amimesh.resources import parse_documents
from amimesh.resources import tekton as tk
from common import pct

sys.path.insert(0, str(Path(__file__).parent))
from process_model import Mesh, wait  # noqa: E402

STEPS = 20


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "pipelines", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def task_runs(n: int) -> str:
    steps = "\n".join(
        f"    - {{name: s{i}, image: busybox, command: ['true']}}" for i in range(STEPS)
    )
    script = "; ".join(["true"] * STEPS)
    docs = []
    for i in range(n):
        docs.append(
            f"""apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {{name: steps-{i}}}
spec:
  taskSpec:
    steps:
{steps}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {{name: script-{i}}}
spec:
  taskSpec:
    steps:
    - {{name: all, image: busybox, script: "{script}"}}
"""
        )
    return "---\n".join(docs)


FANOUT = """apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: fanout}
spec:
  pipelineSpec:
    tasks:
""" + "".join(
    f"""    - name: t{i}
      taskSpec:
        steps: [{{image: busybox, script: "sleep 1"}}]
"""
    for i in range(10)
)


def load(text: str) -> list[Any]:
    result = parse_documents(text, "bench")
    if result.errors:
        raise SystemExit("\n".join(map(str, result.errors)))
    return result.resources


async def run_task(runs: Runs, tr: tk.TaskRun) -> float:
    record = runs.task_run(tr, time.time())
    t0 = time.perf_counter()
    await runs.run_task_run(tr, record)
    elapsed = time.perf_counter() - t0
    if not record.succeeded:
        raise SystemExit(f"{tr.name}: {record.reason}: {record.message}")
    return elapsed


async def step_overhead(root: Path, rounds: int) -> None:
    resources = load(task_runs(rounds))
    runs = Runs(root, Lookups.of(resources))
    by_name = {r.name: r for r in resources if isinstance(r, tk.TaskRun)}
    per_step = []
    for i in range(rounds):
        steps = await run_task(runs, by_name[f"steps-{i}"])
        script = await run_task(runs, by_name[f"script-{i}"])
        per_step.append((steps - script) / (STEPS - 1) * 1000)
    emit("step_overhead_ms_p50", pct(per_step, 0.5), "ms", steps=STEPS, rounds=rounds)
    emit("step_overhead_ms_p99", pct(per_step, 0.99), "ms", steps=STEPS, rounds=rounds)


async def fanout(root: Path) -> None:
    resources = load(FANOUT)
    runs = Runs(root, Lookups.of(resources))
    (pr,) = [r for r in resources if isinstance(r, tk.PipelineRun)]
    record = runs.pipeline_run(pr, time.time())
    t0 = time.perf_counter()
    await runs.run_pipeline(pr, record, PipelineControl())
    elapsed = time.perf_counter() - t0
    if record.reason != "Succeeded":
        raise SystemExit(f"fanout: {record.reason}: {record.message}")
    emit("pipeline_fanout_s", elapsed, "s", tasks=10, ideal_s=1.0, cores=os.cpu_count())


WEBHOOK_SECRET = "bench-webhook-secret"
WEBHOOK_MESH = f"""
apiVersion: v1
kind: Secret
metadata: {{name: hook}}
stringData: {{token: {WEBHOOK_SECRET}}}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {{name: mark}}
spec:
  params: [{{name: marker}}]
  tasks:
  - name: mark
    params: [{{name: marker, value: $(params.marker)}}]
    taskSpec:
      params: [{{name: marker}}]
      steps: [{{name: mark, image: busybox, script: "date +%s%N > $(params.marker)"}}]
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerTemplate
metadata: {{name: mark}}
spec:
  params: [{{name: marker}}]
  resourcetemplates:
  - apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {{generateName: mark-}}
    spec:
      pipelineRef: {{name: mark}}
      params: [{{name: marker, value: $(tt.params.marker)}}]
---
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {{name: hooks}}
spec:
  triggers:
  - name: push
    interceptors:
    - ref: {{name: github}}
      params:
      - {{name: secretRef, value: {{secretName: hook, secretKey: token}}}}
      - {{name: eventTypes, value: [push]}}
    - ref: {{name: cel}}
      params: [{{name: filter, value: "body.ref == 'refs/heads/main'"}}]
    bindings: [{{name: marker, value: $(body.marker)}}]
    template: {{ref: mark}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: hooks}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: hooks}}
spec:
  hosts: ["*"]
  gateways: [hooks]
  http: [{{route: [{{destination: {{host: el-hooks, port: {{number: 8080}}}}}}]}}]
"""


def started_ms(marker: Path, sent_ns: int, timeout: float = 30.0) -> float:
    """Milliseconds from `sent_ns` (time.time_ns) to the time the step wrote."""
    text = wait(lambda: marker.exists() and marker.read_text().strip(), timeout, 0.002)
    return (int(text) - sent_ns) / 1e6


def webhook(work: Path, rounds: int) -> None:
    mesh = Mesh(work, WEBHOOK_MESH)
    try:
        wait(mesh.all_ready, 120, 0.1)
        gateway = mesh.info()["gateway_urls"][0]
        hooked: list[float] = []
        applied: list[float] = []
        with httpx.Client(trust_env=False, timeout=30) as c:

            def send(marker: Path) -> int:
                body = json.dumps({"ref": "refs/heads/main", "marker": str(marker)}).encode()
                sig = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": f"sha256={sig}",
                }
                t0 = time.time_ns()
                resp = c.post(gateway, content=body, headers=headers)
                if resp.status_code != 202 or "errorMessage" in resp.json():
                    raise SystemExit(f"webhook: {resp.status_code} {resp.text}")
                return t0

            # The route and the listener are up once one webhook is through.
            warm = work / "warm"
            wait(lambda: _tried(send, warm), 60, 0.2)
            started_ms(warm, 0)
            for i in range(rounds):
                marker = work / f"hook-{i}"
                hooked.append(started_ms(marker, send(marker)))
                marker = work / f"apply-{i}"
                run = (
                    "apiVersion: tekton.dev/v1\nkind: PipelineRun\n"
                    f"metadata: {{name: applied-{i}}}\n"
                    "spec: {pipelineRef: {name: mark}, params: [{name: marker, value: "
                    f"'{marker}'}}]}}\n"
                )
                t0 = time.time_ns()
                resp = mesh.http.post("/api/v1/apply", content=run)
                if resp.status_code != 200:
                    raise SystemExit(f"apply: {resp.status_code} {resp.text}")
                applied.append(started_ms(marker, t0))
        emit("webhook_to_run_started_ms_p50", statistics.median(hooked), "ms", rounds=rounds)
        emit("webhook_to_run_started_ms_p99", pct(hooked, 0.99), "ms", rounds=rounds)
        emit("apply_to_run_started_ms_p50", statistics.median(applied), "ms", rounds=rounds)
        emit("apply_to_run_started_ms_p99", pct(applied, 0.99), "ms", rounds=rounds)
        added = [h - a for h, a in zip(hooked, applied, strict=True)]
        emit("webhook_added_ms_p50", statistics.median(added), "ms", rounds=rounds)
    finally:
        mesh.close()


def _tried(send: Any, marker: Path) -> bool:
    try:
        send(marker)
    except (SystemExit, httpx.HTTPError, ValueError):
        return False
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (well under 2 minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ami-bench-pipelines-") as work:
        await step_overhead(Path(work), 5 if args.quick else 30)
        await fanout(Path(work))
    with tempfile.TemporaryDirectory(prefix="ami-bench-webhook-") as work:
        await asyncio.to_thread(webhook, Path(work), 10 if args.quick else 40)


if __name__ == "__main__":
    asyncio.run(main())
