"""Tekton runs on the local runner, each beside its baseline (one JSON line per figure).

    .venv/bin/python bench/pipelines.py [--quick]

- `step_overhead_ms_p50`, `_p99`: a TaskRun of 20 `true` steps, its time per step
  beyond the same 20 commands run by one shell script in the same TaskRun (per
  step). The anchor: Tekton starts a container per step in a pod per TaskRun.
- `pipeline_fanout_s`: a PipelineRun of 10 independent tasks of one `sleep 1` step
  (wall time, start to completion; the ideal is 1 s given cores enough: the core
  count is printed beside it).

`webhook_to_run_started_ms` waits for Triggers, which are not built yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from amimesh.pipelines.pipelinerunner import Lookups, PipelineControl, Runs
from amimesh.resources import parse_documents
from amimesh.resources import tekton as tk
from common import pct

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (well under 2 minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ami-bench-pipelines-") as work:
        await step_overhead(Path(work), 5 if args.quick else 30)
        await fanout(Path(work))


if __name__ == "__main__":
    asyncio.run(main())
