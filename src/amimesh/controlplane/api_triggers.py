"""The HTTP API's Tekton Triggers endpoints (see `api`'s table):

POST /api/v1/triggers/sink/{namespace}/{name}   a listener hands over one webhook:
                                                {"headers": {name: [values]},
                                                 "body": base64, "url": str}; the
                                                listener's own token
GET  /api/v1/triggers/eventlisteners?namespace=N
                                                each EventListener: URL, availability
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/triggers"
SINK = f"{PREFIX}/sink/"
MAX_EVENT = 4 * 1024 * 1024  # a webhook's body, as the listener bounds it (base64: 4/3)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


class TriggersApi:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{SINK}{{namespace}}/{{name}}", self.sink),
            web.get(f"{PREFIX}/eventlisteners", self.eventlisteners),
        ]

    async def sink(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        triggers = self.cp.triggers
        if not given or not triggers.token_ok(ns, name, given):
            return _json({"error": "unauthorized: send the listener's token"}, 401)
        if (request.content_length or 0) > MAX_EVENT * 2:
            return _json({"error": "event too large"}, 413)
        try:
            data = json.loads(await request.read())
            headers = {str(k): [str(v) for v in vs] for k, vs in data["headers"].items()}
            body = base64.b64decode(data["body"], validate=True)
            url = str(data.get("url", ""))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return _json(
                {"error": 'body: want {"headers": {...}, "body": base64, "url": str}'}, 400
            )
        if len(body) > MAX_EVENT:
            return _json({"error": "event too large"}, 413)
        status, answer = triggers.deliver(ns, name, headers, body, url)
        return _json(answer, status)

    async def eventlisteners(self, request: web.Request) -> web.Response:
        from amimesh.pipelines import listeners  # Tekton's modules on first use

        namespace = request.query.get("namespace") or None
        ready: dict[tuple[str, str], int] = {}
        for i in self.cp.store.instances():
            owner = i.labels.get(listeners.LISTENER_LABEL)
            if owner and i.ready:
                ready[(i.namespace, owner)] = ready.get((i.namespace, owner), 0) + 1
        now = time.time()
        items = []
        for el in self.cp.triggers.listeners():
            if namespace and el.namespace != namespace:
                continue
            seen = self.cp.triggers.first_seen(el.namespace, el.name)
            items.append(
                {
                    "name": el.name,
                    "namespace": el.namespace,
                    "url": listeners.url(el),
                    "service": listeners.service_name(el.name),
                    "ageSeconds": None if seen is None else max(now - seen, 0.0),
                    "available": ready.get((el.namespace, el.name), 0) > 0,
                    "readyReplicas": ready.get((el.namespace, el.name), 0),
                }
            )
        return _json({"items": items})
