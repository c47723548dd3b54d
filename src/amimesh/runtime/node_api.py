"""The node agent's side of the control plane's HTTP API: what to run, and reports.

    api = NodeApi("http://127.0.0.1:40075", token)
    version, docs = await api.config(since=-1, wait_s=30)   # long poll for changes
    await api.report("local", body)                          # the node's whole view

`Reporter` keeps the node's view (ready instances, status rows, gateway URLs) and
sends it whole whenever it changes, retrying with backoff while the control plane is
away: once it is back, one report puts everything right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from amimesh.agent.http_client import fetch
from amimesh.controlplane.api_json import instance_body
from amimesh.model.snapshot import Instance

log = logging.getLogger(__name__)

RETRY_MAX_S = 2.0
REPORT_TIMEOUT_S = 10.0
MAX_CONFIG_BODY = 64 * 1024 * 1024


class ApiUnavailable(RuntimeError):
    """The control plane could not be reached, or failed."""


class NodeApi:
    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        """Nothing held between requests (one connection each)."""

    async def config(self, since: int, wait_s: float) -> tuple[int, list[dict[str, Any]]]:
        """The resources in force and their version, once it is not `since` (or after
        `wait_s`). Raises ApiUnavailable."""
        url = f"{self.base}/api/v1/node/config?since={since}&wait={wait_s:g}"
        try:
            resp = await fetch(
                url,
                headers=self._headers,
                timeout_s=wait_s + REPORT_TIMEOUT_S,
                max_body=MAX_CONFIG_BODY,
            )
            if resp.status != 200:
                raise ApiUnavailable(f"{url}: {resp.status} {resp.text()}")
            data = resp.json()
            return int(data["version"]), list(data["resources"])
        except (TimeoutError, OSError, ValueError, KeyError, TypeError) as e:
            raise ApiUnavailable(f"{url}: {e or type(e).__name__}") from None

    async def activate(self, namespace: str, revision: str) -> None:
        """Ask for an instance of a Knative revision now (a request waits for it).
        Raises ApiUnavailable."""
        await self._send(
            "POST", "/api/v1/serving/activate", {"namespace": namespace, "revision": revision}
        )

    async def concurrency(
        self, node: str, in_flight: dict[str, float], rps: dict[str, float]
    ) -> None:
        """Requests in flight and per second per instance, for the autoscaler. Raises
        ApiUnavailable."""
        body = {"instances": in_flight, "rps": rps}
        await self._send("PUT", f"/api/v1/nodes/{node}/concurrency", body)

    async def report(self, node: str, body: dict[str, Any]) -> None:
        await self._send("PUT", f"/api/v1/nodes/{node}", body)

    async def _send(self, method: str, path: str, body: dict[str, Any]) -> None:
        url = self.base + path
        try:
            resp = await fetch(
                url,
                method=method,
                json_body=body,
                headers=self._headers,
                timeout_s=REPORT_TIMEOUT_S,
            )
        except (TimeoutError, OSError) as e:
            raise ApiUnavailable(f"{url}: {e or type(e).__name__}") from None
        if resp.status != 200:
            raise ApiUnavailable(f"{url}: {resp.status} {resp.text()}")


class Reporter:
    """The node's registry of ready instances; every change is reported, whole."""

    def __init__(
        self,
        api: NodeApi,
        node: str,
        status: Callable[[], list[dict[str, Any]]],
        gateway_urls: Callable[[], tuple[str, ...]],
    ) -> None:
        self._api = api
        self._node = node
        self._status = status
        self._gateway_urls = gateway_urls
        self._ready: dict[str, Instance] = {}
        self._dirty = asyncio.Event()
        self.failures = 0

    def register_instance(self, instance: Instance) -> None:
        self._ready[instance.id] = replace(instance, ready=True)
        self.changed()

    def deregister_instance(self, instance_id: str) -> None:
        if self._ready.pop(instance_id, None) is not None:
            self.changed()

    def changed(self) -> None:
        self._dirty.set()

    def body(self) -> dict[str, Any]:
        return {
            "instances": [instance_body(i) for _, i in sorted(self._ready.items())],
            "status": self._status(),
            "gateway_urls": list(self._gateway_urls()),
        }

    async def run(self) -> None:
        """Report every change, for ever (an owned task); retries while the control
        plane is away."""
        delay = 0.05
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0)  # what else changes in this loop turn goes along
            self._dirty.clear()
            try:
                await self._api.report(self._node, self.body())
            except ApiUnavailable as e:
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    log.warning("cannot report to the control plane (%s): retrying", e)
                self._dirty.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self.failures:
                log.info("reported to the control plane again")
            self.failures, delay = 0, 0.05
