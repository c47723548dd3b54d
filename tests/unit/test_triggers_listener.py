"""The EventListener's process: bounded bodies, what it hands to the control plane,
and its answers when the control plane cannot be reached."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from aiohttp import test_utils, web

from amimesh.pipelines import listener


async def test_the_listener_hands_over_each_webhook() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def sink(request: web.Request) -> web.Response:
        seen.append((request.headers["Authorization"], await request.json()))
        return web.json_response({"eventListener": "ci", "eventID": "e"}, status=202)

    cp = web.Application()
    cp.router.add_post("/api/v1/triggers/sink/default/ci", sink)
    async with test_utils.TestServer(cp) as server:
        api = str(server.make_url("")).rstrip("/")
        app = listener.Listener("ci", "default", api, "tok").app()
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            assert (await client.get("/live")).status == 200
            assert (await client.get("/")).status == 405
            resp = await client.post("/hook", data=b'{"a": 1}', headers={"X-GitHub-Event": "push"})
            assert resp.status == 202
            assert await resp.json() == {"eventListener": "ci", "eventID": "e"}
            big = io.BytesIO(b"x" * (listener.MAX_BODY + 1))
            too_big = await client.post("/", data=big)
            assert too_big.status == 413
    [(auth, payload)] = seen
    assert auth == "Bearer tok"
    assert base64.b64decode(payload["body"]) == b'{"a": 1}'
    assert payload["headers"]["X-GitHub-Event"] == ["push"]
    assert payload["url"] == "/hook"


async def test_without_a_control_plane_the_listener_says_so() -> None:
    app = listener.Listener("ci", "default", "http://127.0.0.1:9", "tok").app()
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        resp = await client.post("/", data=json.dumps({}).encode())
        assert resp.status == 503
        assert "unreachable" in (await resp.json())["errorMessage"]
