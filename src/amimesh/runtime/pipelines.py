"""Tekton runs in the node agent: it learns the TaskRuns and PipelineRuns (and the
Tasks, Pipelines and ConfigMaps they use) from the control plane, runs each new one
on this host (`amimesh.pipelines`: every step a process) and reports every run's
status, whole, to the control plane, which serves it (`GET /api/v1/pipelines/runs`).

    agent = PipelineAgent(api_url, token, "local", state_dir / "pipelines")
    await agent.start()          # owned tasks: config watch, reporter
    await agent.stop()           # cancels what runs (their processes are stopped)

A run is started once: its record (and the status the control plane keeps) says it
ran. `spec.status: Cancelled` (or `CancelledRunFinally`, `StoppedRunFinally`; a
TaskRun's `TaskRunCancelled`) cancels it; deleting the resource cancels it and
forgets it. Its step logs are files under the node's state directory
(`taskruns/NS/NAME/logs/step-STEP.log`), which `ami pipelinerun logs` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from amimesh.agent.http_client import fetch
from amimesh.agent.process import kill_group, naming
from amimesh.pipelines import records as rec
from amimesh.pipelines.pipelinerunner import Lookups, PipelineControl, Runs
from amimesh.resources import parse_object
from amimesh.resources import tekton as tk
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

CONFIG_PATH = "/api/v1/pipelines/config"
WAIT_S = 30.0
TIMEOUT_S = 10.0
MAX_BODY = 64 * 1024 * 1024
RETRY_MAX_S = 2.0
STOP_REPORT_S = 2.0

RunKey = tuple[str, str, str]  # (kind, namespace, name)


class PipelineAgent:
    def __init__(self, api: str, token: str, node: str, root: Path) -> None:
        self.base = api.rstrip("/")
        self.node = node
        self._headers = {"Authorization": f"Bearer {token}"}
        self.runs = Runs(root, Lookups.of(()), self._changed)
        self._version = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[RunKey, asyncio.Task[None]] = {}
        self._pipeline_controls: dict[tuple[str, str], PipelineControl] = {}
        self._pipeline_runs: dict[tuple[str, str], rec.PipelineRunRecord] = {}
        self._resources: dict[RunKey, Resource] = {}
        self._dirty = asyncio.Event()
        self._adopted: dict[RunKey, dict[str, Any]] = {}

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch(), name="pipelines-config"))
        self._tasks.append(asyncio.create_task(self._report(), name="pipelines-reporter"))

    async def stop(self) -> None:
        for key in list(self._running):
            self._cancel(key, "Cancelled", "the node agent stopped")
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=5.0)
        for task in [*self._tasks, *self._running.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._running.values(), return_exceptions=True)
        if self.objects():  # the last word, briefly: the control plane may be going too
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                await asyncio.wait_for(self._send_report(), STOP_REPORT_S)

    # ---- config ---------------------------------------------------------------------

    async def _watch(self) -> None:
        delay = 0.1
        while True:
            url = f"{self.base}{CONFIG_PATH}?since={self._version}&wait={WAIT_S:g}&node={self.node}"
            try:
                resp = await fetch(
                    url, headers=self._headers, timeout_s=WAIT_S + TIMEOUT_S, max_body=MAX_BODY
                )
                if resp.status != 200:
                    raise OSError(f"{resp.status} {resp.text()[:200]}")
                data = resp.json()
                version, docs = int(data["version"]), list(data["resources"])
                known = list(data.get("known", []))
            except (OSError, TimeoutError, ValueError, KeyError, TypeError) as e:
                log.debug("pipelines config: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = 0.1
            if version != self._version:
                if self._version == -1:
                    self.adopt(known)
                self._version = version
                self.take(docs)

    def adopt(self, known: list[dict[str, Any]]) -> None:
        """The runs this node reported before it started again: they ran, and are not
        run again; one that had not ended is failed (its steps were not watched, and
        what they left running is stopped)."""
        now = time.time()
        for obj in known:
            try:
                key = (
                    str(obj["kind"]),
                    str(obj["metadata"]["namespace"]),
                    str(obj["metadata"]["name"]),
                )
                conditions = obj.setdefault("status", {}).setdefault("conditions", [])
            except (KeyError, TypeError, AttributeError):
                continue
            if not conditions or conditions[0].get("status") == "Unknown":
                _stop_left_behind(obj)
                obj["status"]["conditions"] = [
                    rec.condition("False", rec.FAILED, "the node agent restarted while it ran", now)
                ]
                obj["status"]["completionTime"] = rec.rfc3339(now)
            self._adopted[key] = obj

    def take(self, docs: list[dict[str, Any]]) -> None:
        """The config in force: start new runs, cancel cancelled or deleted ones."""
        result = parse_object({"apiVersion": "v1", "kind": "List", "items": docs}, "control plane")
        for e in result.errors:
            log.error("pipelines: resource from the control plane left out: %s", e)
        self.runs.lookups = Lookups.of(result.resources)
        wanted: dict[RunKey, Resource] = {}
        for r in result.resources:
            if isinstance(r, tk.PipelineRun | tk.TaskRun):
                wanted[(r.KIND, r.namespace, r.name)] = r
        for key in list(self._resources):
            if key not in wanted:
                self._cancel(key, "Cancelled", "the run was deleted")
                self._forget(key)
        for key, r in wanted.items():
            self._resources[key] = r
            if self._known(key):
                self._apply_status(key, r)
            else:
                self._start(key, r)
        self._changed()

    def _known(self, key: RunKey) -> bool:
        kind, ns, name = key
        if key in self._adopted:
            return True
        if kind == "PipelineRun":
            return (ns, name) in self._pipeline_runs
        return (ns, name) in self.runs.task_runs

    def _start(self, key: RunKey, r: Resource) -> None:
        now = time.time()
        if isinstance(r, tk.PipelineRun):
            record = self.runs.pipeline_run(r, now)
            control = PipelineControl()
            self._pipeline_runs[(r.namespace, r.name)] = record
            self._pipeline_controls[(r.namespace, r.name)] = control
            if r.spec.status is not None:
                control.cancel(r.spec.status)
            coro = self.runs.run_pipeline(r, record, control)
        elif isinstance(r, tk.TaskRun):
            tr = self.runs.task_run(r, now)
            if r.spec.status is not None:
                tr.finish(
                    rec.CANCELLED,
                    f'TaskRun "{r.name}" was cancelled. {r.spec.statusMessage}'.rstrip(),
                    now,
                )
                return
            coro = self.runs.run_task_run(r, tr)
        else:
            return
        task = asyncio.create_task(self._guard(key, coro), name=f"pipelines-{key[0]}-{key[2]}")
        self._running[key] = task

    async def _guard(self, key: RunKey, coro: Any) -> None:
        try:
            await coro
        except Exception:
            log.exception("pipelines: %s %s/%s failed in Ami", *key)
        finally:
            self._running.pop(key, None)
            self._changed()

    def _apply_status(self, key: RunKey, r: Resource) -> None:
        if isinstance(r, tk.PipelineRun | tk.TaskRun) and key in self._running:
            if r.spec.status is not None:
                self._cancel(key, r.spec.status, r.spec.statusMessage)

    def _cancel(self, key: RunKey, mode: str, message: str) -> None:
        kind, ns, name = key
        if kind == "PipelineRun":
            control = self._pipeline_controls.get((ns, name))
            if control is not None:
                control.cancel(mode if mode != "TaskRunCancelled" else "Cancelled")
        else:
            self.runs.cancel_task_run(ns, name, message)

    def _forget(self, key: RunKey) -> None:
        kind, ns, name = key
        self._resources.pop(key, None)
        self._adopted.pop(key, None)
        if kind == "PipelineRun":
            record = self._pipeline_runs.pop((ns, name), None)
            self._pipeline_controls.pop((ns, name), None)
            for child, _task in record.children if record else []:
                self.runs.task_runs.pop((ns, child), None)
        else:
            self.runs.task_runs.pop((ns, name), None)

    # ---- reports ----------------------------------------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        """Every run this node knows, as Tekton's API shows it."""
        out = [r.object() for r in self._pipeline_runs.values()]
        out += [t.object() for t in self.runs.task_runs.values()]
        out += list(self._adopted.values())
        return out

    def _changed(self) -> None:
        self._dirty.set()

    async def _report(self) -> None:
        delay = 0.05
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.02)  # a burst of step changes is one report
            self._dirty.clear()
            try:
                await self._send_report()
            except (OSError, TimeoutError, ValueError) as e:
                log.debug("pipelines report: %s", e)
                self._dirty.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = 0.05

    async def _send_report(self) -> None:
        url = f"{self.base}/api/v1/pipelines/nodes/{self.node}"
        body = {"runs": self.objects(), "root": str(self.runs.root)}
        resp = await fetch(
            url, method="PUT", json_body=body, headers=self._headers, timeout_s=TIMEOUT_S
        )
        if resp.status != 200:
            raise OSError(f"{url}: {resp.status} {resp.text()[:200]}")


def _stop_left_behind(obj: dict[str, Any]) -> None:
    """Stop what a TaskRun the last node agent ran left running: every process with an
    argument under its directory (a step's script, or a file of its run), with its
    process group (each step runs in a session of its own)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    run_dir = annotations.get(rec.RUN_DIR_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(run_dir, str) or not run_dir:
        return
    for pid in naming(Path(run_dir)):
        kill_group(pid)
