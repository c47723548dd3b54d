"""The HTTP API's intercepts (`ami intercept`; see `intercepts`):

POST   /api/v1/intercepts          {"namespace", "workload", "header": "k=v"|null,
                                    "port": N|null}: a new intercept and its lease
GET    /api/v1/intercepts          every intercept
PUT    /api/v1/intercepts/{id}     renew its lease (404: it ended)
DELETE /api/v1/intercepts/{id}     end it
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from amimesh.controlplane.intercepts import InterceptConflict, InterceptNotFound
from amimesh.model.intercepts import InterceptError, parse_header

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/intercepts"
MAX_BODY = 16 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


class InterceptsApi:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.list),
            web.post(PREFIX, self.create),
            web.put(f"{PREFIX}/{{id}}", self.renew),
            web.delete(f"{PREFIX}/{{id}}", self.end),
        ]

    async def list(self, request: web.Request) -> web.Response:
        return _json({"items": self.cp.intercepts.items()})

    async def create(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BODY:
            return _json({"error": "body too large"}, 413)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return _json({"error": "body too large"}, 413)
        try:
            data = json.loads(raw)
            namespace = data.get("namespace") or "default"
            workload = data["workload"]
            header_text = data.get("header")
            port = data.get("port")
            if not isinstance(namespace, str) or not isinstance(workload, str):
                raise ValueError
            if not isinstance(header_text, str | None):
                raise ValueError
            if port is not None and (
                not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _json(
                {
                    "error": 'body: want {"namespace": "...", "workload": "...", '
                    '"header": "name=value" or null, "port": 1-65535 or null}'
                },
                400,
            )
        try:
            header = parse_header(header_text) if header_text else None
            made = self.cp.intercepts.create(namespace, workload, header=header, port=port)
        except InterceptNotFound as e:
            return _json({"error": str(e)}, 404)
        except InterceptConflict as e:
            return _json({"error": str(e)}, 409)
        except (InterceptError, ValueError) as e:
            return _json({"error": str(e)}, 400)
        return _json(made, 201)

    async def renew(self, request: web.Request) -> web.Response:
        try:
            return _json(self.cp.intercepts.renew(request.match_info["id"]))
        except InterceptNotFound as e:
            return _json({"error": str(e)}, 404)

    async def end(self, request: web.Request) -> web.Response:
        try:
            self.cp.intercepts.end(request.match_info["id"])
        except InterceptNotFound as e:
            return _json({"error": str(e)}, 404)
        return _json({"ended": request.match_info["id"]})
