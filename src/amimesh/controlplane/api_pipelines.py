"""The HTTP API's Tekton endpoints (see `api`'s table):

GET  /api/v1/pipelines/config?since=V&wait=S   what node agents run runs from (Tasks,
                                                Pipelines, TaskRuns, PipelineRuns,
                                                ConfigMaps) and the runs they reported
PUT  /api/v1/pipelines/nodes/{node}             a node agent's runs, whole
GET  /api/v1/pipelines/runs?kind=&namespace=&name=
                                                TaskRuns and PipelineRuns with status
POST /api/v1/pipelines/cancel/{kind}/{namespace}/{name}
                                                spec.status: Cancelled (TaskRunCancelled)
GET  /api/v1/pipelines/graph/{kind}/{namespace}/{name}
                                                a run's task graph with states and steps
                                                (`dashboard.rungraph`)
GET  /api/v1/pipelines/logs/{namespace}/{taskrun}/{step}?offset=N
                                                a step's log: the bytes after N (no N: the
                                                end), at most MAX_LOG_BYTES, whole lines
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from amimesh.controlplane import api_json
from amimesh.resources.kube import Secret

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/pipelines"
MAX_WAIT_S = 60.0
# A log answer's most bytes: a view reads the end of a huge log, not all of it.
MAX_LOG_BYTES = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


def _errors(errors: list[str], status: int = 400) -> web.Response:
    return _json({"errors": errors}, status)


class PipelinesApi:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/config", self.config),
            web.put(f"{PREFIX}/nodes/{{node}}", self.put_node),
            web.get(f"{PREFIX}/runs", self.runs),
            web.post(f"{PREFIX}/cancel/{{kind}}/{{namespace}}/{{name}}", self.cancel),
            web.get(f"{PREFIX}/graph/{{kind}}/{{namespace}}/{{name}}", self.graph),
            web.get(f"{PREFIX}/logs/{{namespace}}/{{taskrun}}/{{step}}", self.logs),
        ]

    async def config(self, request: web.Request) -> web.Response:
        from amimesh.controlplane import pipelines as pl

        try:
            since = int(request.query.get("since", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT_S)
        except ValueError:
            return _errors(["since and wait: want numbers"])
        version = await self.cp.wait_config(since, wait)
        every = self.cp.store.resources()
        wanted = [r for r in every if (r.API_GROUP, r.KIND) in pl.CONFIG_KINDS]
        items = [api_json.resource_json(r) for r in sorted(wanted, key=lambda r: r.key)]
        # The Secrets runs bind as workspaces, with their values (the node agent writes
        # them as the workspace's files); no other Secret leaves the control plane.
        bound = pl.secrets_for_runs(wanted)
        items += [
            api_json.resource_json(r, redact=False)
            for r in sorted(every, key=lambda r: r.key)
            if isinstance(r, Secret) and (r.namespace, r.name) in bound
        ]
        node = request.query.get("node", "")
        # What the node reported before matters to a node agent just started (since -1).
        known = self.cp.pipelines.known(node) if node and since == -1 else []
        return _json({"version": version, "resources": items, "known": known})

    async def put_node(self, request: web.Request) -> web.Response:
        from amimesh.controlplane import pipelines as pl

        node = request.match_info["node"]
        try:
            runs = pl.parse_report(json.loads(await request.text()))
        except ValueError as err:
            return _errors([str(err)])
        self.cp.pipelines.report(node, runs)
        return _json({"node": node, "runs": len(runs)})

    async def runs(self, request: web.Request) -> web.Response:
        from amimesh.controlplane import pipelines as pl

        q = request.query
        kind = q.get("kind") or None
        if kind is not None and kind not in pl.RUN_KINDS:
            return _errors([f"kind: want one of {', '.join(pl.RUN_KINDS)}, got {kind!r}"])
        items = self.cp.pipelines.objects(kind, q.get("namespace") or None, q.get("name") or None)
        return _json({"items": items})

    async def cancel(self, request: web.Request) -> web.Response:
        from amimesh.controlplane import pipelines as pl

        kind, ns, name = (request.match_info[k] for k in ("kind", "namespace", "name"))
        if kind not in pl.RUN_KINDS:
            return _errors([f"kind: want one of {', '.join(pl.RUN_KINDS)}, got {kind!r}"])
        updated = pl.cancelled(self.cp.store, kind, ns, name)
        if updated is None:
            return _json({"error": f"{kind} {ns}/{name} not found"}, 404)
        return _json({"cancelled": updated.ref})

    async def graph(self, request: web.Request) -> web.Response:
        from amimesh.controlplane import pipelines as pl
        from amimesh.dashboard import rungraph

        kind, ns, name = (request.match_info[k] for k in ("kind", "namespace", "name"))
        if kind not in pl.RUN_KINDS:
            return _errors([f"kind: want one of {', '.join(pl.RUN_KINDS)}, got {kind!r}"])
        run = self.cp.pipelines.get(kind, ns, name)
        if run is None:
            return _json({"error": f"{kind} {ns}/{name} not found"}, 404)
        if kind == "TaskRun":
            return _json(rungraph.taskrun_graph(run))
        taskruns = [
            t
            for t in self.cp.pipelines.objects("TaskRun", ns)
            if (t["metadata"].get("labels") or {}).get(rungraph.PIPELINE_RUN) == name
        ]
        return _json(rungraph.run_graph(run, taskruns))

    async def logs(self, request: web.Request) -> web.Response:
        from amimesh.pipelines import records, runner

        ns, name, step = (request.match_info[k] for k in ("namespace", "taskrun", "step"))
        try:
            offset = int(request.query["offset"]) if "offset" in request.query else None
        except ValueError:
            return _errors(["offset: want a number of bytes"])
        run = self.cp.pipelines.get("TaskRun", ns, name)
        if run is None:
            return _json({"error": f"TaskRun {ns}/{name} not found"}, 404)
        run_dir = (run["metadata"].get("annotations") or {}).get(records.RUN_DIR_ANNOTATION)
        steps = {s.get("name"): s for s in (run.get("status") or {}).get("steps") or []}
        container = str((steps.get(step) or {}).get("container") or "")
        if step not in steps or not _plain_name(container):
            return _json({"error": f"TaskRun {ns}/{name} has no step {step!r}"}, 404)
        if not run_dir:
            return _json({"error": f"TaskRun {ns}/{name} has not started"}, 404)
        path = runner.log_path(str(run_dir), container)
        finished = "terminated" in steps[step]
        chunk = read_log(path, offset, MAX_LOG_BYTES, whole_lines=not finished)
        chunk["finished"] = finished
        return _json(chunk)


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def read_log(path: Path, offset: int | None, limit: int, *, whole_lines: bool) -> dict[str, Any]:
    """A step log's bytes from `offset` (None: the last `limit`), at most `limit` of them;
    with `whole_lines` (the step is still writing) up to the last line's end. When more
    than `limit` came since `offset`, the first ones are left out (`skipped` says how
    many), from a line's start.

    {"text": ..., "offset": where the next read starts, "size": the log's size,
     "skipped": bytes left out before text}"""
    # Only a regular file: a FIFO or a device named there would block or never end.
    if not path.is_file():
        return {"text": "", "offset": offset or 0, "size": 0, "skipped": 0}
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            start = size - limit if offset is None else offset
            start = max(0, min(start, size), size - limit)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return {"text": "", "offset": offset or 0, "size": 0, "skipped": 0}
    skipped = start - (offset or 0) if offset is not None else start
    if start > 0 and (offset is None or start > offset):
        # Cut to the first whole line: the bytes before belong to a line left out.
        cut = data.find(b"\n")
        if 0 <= cut < len(data) - 1:
            data, start, skipped = data[cut + 1 :], start + cut + 1, skipped + cut + 1
    end = data.rfind(b"\n") + 1
    if whole_lines and (end > 0 or len(data) < limit):
        data = data[:end]
    return {
        "text": data.decode(errors="replace"),
        "offset": start + len(data),
        "size": size,
        "skipped": skipped,
    }
