"""An EventListener's process (`python -m amimesh.pipelines.listener`): an HTTP server
on loopback at `$PORT`, behind its sidecar, that hands each webhook to the control
plane and answers with what it says (202 and Tekton's JSON body).

It reads `AMI_EVENTLISTENER`, `AMI_EVENTLISTENER_NAMESPACE`, `AMI_CONTROLPLANE` and
`AMI_EVENTLISTENER_TOKEN_FILE` (the listener's own token, which the control plane
wrote). A body over 4 MiB is refused (413) before anything reads it as JSON.
`GET /live` and `/ready` answer 200.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

log = logging.getLogger("amimesh.eventlistener")

MAX_BODY = 4 * 1024 * 1024
TIMEOUT_S = 30.0


class Listener:
    def __init__(self, name: str, namespace: str, api: str, token: str) -> None:
        self.name = name
        self.namespace = namespace
        self.sink = f"{api.rstrip('/')}/api/v1/triggers/sink/{namespace}/{name}"
        self._auth = {"Authorization": f"Bearer {token}"}
        self._session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/live", self.live)
        app.router.add_get("/ready", self.live)
        app.router.add_route("*", "/{tail:.*}", self.event)
        app.on_cleanup.append(self._close)
        return app

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def event(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.json_response({"errorMessage": "send events with POST"}, status=405)
        if (request.content_length or 0) > MAX_BODY:
            return web.json_response({"errorMessage": "event too large"}, status=413)
        body = await request.read()  # aiohttp stops at client_max_size (413)
        headers: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            headers.setdefault(k, []).append(v)
        payload = {
            "headers": headers,
            "body": base64.b64encode(body).decode(),
            "url": str(request.rel_url),
        }
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=TIMEOUT_S))
        try:
            async with self._session.post(self.sink, json=payload, headers=self._auth) as resp:
                answer = await resp.read()
                status = resp.status
        except (TimeoutError, OSError) as err:
            log.warning("control plane unreachable: %s", err)
            return web.json_response(
                {
                    "eventListener": self.name,
                    "namespace": self.namespace,
                    "errorMessage": "the control plane is unreachable",
                },
                status=503,
            )
        try:
            data = json.loads(answer)
        except ValueError:
            data = {"errorMessage": "the control plane answered no JSON"}
        if status >= 300 and status != 404:
            log.warning("control plane answered %d", status)
        return web.json_response(data, status=status)


async def serve(listener: Listener, port: int) -> None:
    runner = web.AppRunner(listener.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    log.info("eventlistener %s/%s on 127.0.0.1:%d", listener.namespace, listener.name, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = os.environ
    try:
        token = Path(env["AMI_EVENTLISTENER_TOKEN_FILE"]).read_text().strip()
        listener = Listener(
            env["AMI_EVENTLISTENER"],
            env.get("AMI_EVENTLISTENER_NAMESPACE", "default"),
            env["AMI_CONTROLPLANE"],
            token,
        )
        port = int(env["PORT"])
    except (KeyError, OSError, ValueError) as err:
        log.error("cannot start: %s", err)
        return 2
    asyncio.run(serve(listener, port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
