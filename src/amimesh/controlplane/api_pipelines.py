"""The HTTP API's Tekton endpoints (see `api`'s table):

GET  /api/v1/pipelines/config?since=V&wait=S   what node agents run runs from (Tasks,
                                                Pipelines, TaskRuns, PipelineRuns,
                                                ConfigMaps) and the runs they reported
PUT  /api/v1/pipelines/nodes/{node}             a node agent's runs, whole
GET  /api/v1/pipelines/runs?kind=&namespace=&name=
                                                TaskRuns and PipelineRuns with status
POST /api/v1/pipelines/cancel/{kind}/{namespace}/{name}
                                                spec.status: Cancelled (TaskRunCancelled)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from amimesh.controlplane import api_json
from amimesh.resources.kube import Secret

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/pipelines"
MAX_WAIT_S = 60.0


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
