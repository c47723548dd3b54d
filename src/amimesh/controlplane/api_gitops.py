"""The HTTP API's Argo CD endpoints (see `api`'s table), in Argo CD's words:

GET  /api/v1/gitops/applications?namespace=N     each Application, with its status
GET  /api/v1/gitops/applications/{ns}/{name}?refresh=1
                                                 one (`refresh`: read git first)
POST /api/v1/gitops/applications/{ns}/{name}/sync
                                                 {"revision": str, "prune": bool}: a
                                                 manual sync; its operationState
GET  /api/v1/gitops/applications/{ns}/{name}/diff?revision=R
                                                 what a sync would change, per resource
POST /api/webhook                                a git push (GitHub's payload): refresh
                                                 the Applications it concerns now; signed
                                                 (X-Hub-Signature-256) under Argo CD's
                                                 `argocd-secret` `webhook.github.secret`
                                                 when that Secret exists, else with the
                                                 API's bearer token
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from amimesh.controlplane import api_json
from amimesh.gitops import webhook as hooks
from amimesh.resources.kube import Secret

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/gitops/applications"
MAX_SYNC_BODY = 64 * 1024
# Argo CD's path; it checks its own credentials (the API's middleware lets it through).
WEBHOOK = "/api/webhook"
MAX_WEBHOOK_BODY = 4 * 1024 * 1024
# Where Argo CD keeps the GitHub webhook's secret.
WEBHOOK_SECRET = ("Secret", "argocd", "argocd-secret")
WEBHOOK_SECRET_KEY = "webhook.github.secret"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is past `limit` bytes (with or without a
    Content-Length: nothing beyond is read)."""
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class GitOpsApi:
    def __init__(self, cp: ControlPlane, token: str = "") -> None:
        self.cp = cp
        self._token = token

    def routes(self) -> list[web.RouteDef]:
        one = f"{PREFIX}/{{namespace}}/{{name}}"
        return [
            web.get(PREFIX, self.list),
            web.get(one, self.get),
            web.post(f"{one}/sync", self.sync),
            web.get(f"{one}/diff", self.diff),
            web.post(WEBHOOK, self.webhook),
        ]

    def _item(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        gitops = self.cp.gitops
        found = self.cp.store.get(key)
        if found is None:
            return None
        item = api_json.resource_json(found, self.cp.store.source_of(key))
        item["status"] = gitops.status_of(key)
        return item

    async def list(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace") or None
        items = []
        for app in self.cp.gitops.applications():
            if namespace is None or app.namespace == namespace:
                item = self._item(app.key)
                if item is not None:
                    items.append(item)
        return _json({"items": items})

    async def get(self, request: web.Request) -> web.Response:
        from amimesh.controlplane.gitops import AppNotFound

        ns, name = request.match_info["namespace"], request.match_info["name"]
        if request.query.get("refresh"):
            try:
                await self.cp.gitops.refresh(ns, name)
            except AppNotFound as err:
                return _json({"error": str(err)}, 404)
        item = self._item(("Application", ns, name))
        if item is None:
            return _json({"error": f'applications.argoproj.io "{name}" not found in {ns}'}, 404)
        return _json(item)

    async def sync(self, request: web.Request) -> web.Response:
        from amimesh.controlplane.gitops import AppNotFound

        ns, name = request.match_info["namespace"], request.match_info["name"]
        if (request.content_length or 0) > MAX_SYNC_BODY:
            return _json({"error": "body too large"}, 413)
        raw = await request.read()
        try:
            data = json.loads(raw) if raw else {}
            if not isinstance(data, dict):
                raise ValueError
            revision = data.get("revision") or None
            prune = data.get("prune", False)
            if not isinstance(revision, str | None) or not isinstance(prune, bool):
                raise ValueError
        except ValueError:
            return _json({"errors": ['body: want {"revision": "...", "prune": false}']}, 400)
        try:
            operation = await self.cp.gitops.sync(ns, name, revision=revision, prune=prune)
        except AppNotFound as err:
            return _json({"error": str(err)}, 404)
        except ValueError as err:
            return _json({"errors": [str(err)]}, 400)
        status = 200 if operation.get("phase") == "Succeeded" else 409
        return _json({"operationState": operation}, status)

    async def diff(self, request: web.Request) -> web.Response:
        from amimesh.controlplane.gitops import AppNotFound

        ns, name = request.match_info["namespace"], request.match_info["name"]
        revision = request.query.get("revision") or None
        if revision is not None and revision.startswith("-"):
            return _json(
                {"errors": [f"revision {revision!r}: not a branch, a tag or a commit"]}, 400
            )
        try:
            return _json(await self.cp.gitops.diff(ns, name, revision=revision))
        except AppNotFound as err:
            return _json({"error": str(err)}, 404)

    def _webhook_secret(self) -> bytes | None:
        found = self.cp.store.get(WEBHOOK_SECRET)
        return found.value(WEBHOOK_SECRET_KEY) if isinstance(found, Secret) else None

    def _bearer_ok(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode(errors="replace")
        return bool(self._token) and hmac.compare_digest(given, f"Bearer {self._token}".encode())

    async def webhook(self, request: web.Request) -> web.Response:
        """Argo CD's git webhook: a push refreshes the Applications of its repository
        and branch at once, rather than at the next poll."""
        if (request.content_length or 0) > MAX_WEBHOOK_BODY:
            return _json({"error": f"body larger than {MAX_WEBHOOK_BODY} bytes"}, 413)
        body = await _read_at_most(request, MAX_WEBHOOK_BODY)
        if body is None:
            return _json({"error": f"body larger than {MAX_WEBHOOK_BODY} bytes"}, 413)
        secret = self._webhook_secret()
        signature = request.headers.get("X-Hub-Signature-256", "")
        if not self._bearer_ok(request):
            if secret is None:
                return _json(
                    {
                        "error": "unauthorized: no webhook secret is configured (Secret "
                        f"argocd/argocd-secret, key {WEBHOOK_SECRET_KEY}): send "
                        "Authorization: Bearer <token of the mesh>"
                    },
                    401,
                )
            if not signature:
                return _json({"error": "no X-Hub-Signature-256 header set"}, 401)
            if not hooks.signed(secret, body, signature):
                return _json({"error": "payload signature check failed"}, 401)
        event = request.headers.get("X-GitHub-Event", "push")
        if event == "ping":
            return _json({"event": "ping", "refreshed": []})
        if event != "push":
            return _json({"event": event, "refreshed": [], "ignored": "not a push"})
        try:
            push = hooks.parse_push(body)
        except ValueError as err:
            return _json({"errors": [str(err)]}, 400)
        refreshed = await self.cp.gitops.on_push(push)
        return _json({"event": "push", "revision": push.revision, "refreshed": refreshed})
