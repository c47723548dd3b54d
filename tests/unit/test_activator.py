"""The activator's own answers (a real listener on loopback; no instance behind it):
a request that names no revision, a revision that never becomes ready (asked for
once), a full queue."""

from __future__ import annotations

import asyncio
import socket

from amimesh.agent.http_client import fetch
from amimesh.runtime import activator as act


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_what_the_activator_answers_by_itself() -> None:
    asked: list[tuple[str, str]] = []

    async def activate(ns: str, revision: str) -> None:
        asked.append((ns, revision))

    port = free_port()
    a = act.Activator(port, lambda ns, rev: [], activate, timeout_s=0.5)
    await a.start()
    try:
        url = f"http://127.0.0.1:{port}/x"
        plain = await fetch(url)
        assert plain.status == 400 and b"Knative-Serving-Revision" in plain.body
        headers = {"Knative-Serving-Revision": "hello-00001", "Knative-Serving-Namespace": "ns"}
        waited = await asyncio.gather(*(fetch(url, headers=headers) for _ in range(3)))
        assert [r.status for r in waited] == [504, 504, 504]
        assert b"did not become ready" in waited[0].body
        assert ("ns", "hello-00001") in asked  # an instance was asked for at once
        act.QUEUE_DEPTH, depth = 1, act.QUEUE_DEPTH
        try:
            first = asyncio.ensure_future(fetch(url, headers=headers))
            await asyncio.sleep(0.1)
            second = await fetch(url, headers=headers)
            assert second.status == 503 and b"queue full" in second.body
            assert (await first).status == 504
        finally:
            act.QUEUE_DEPTH = depth
    finally:
        await a.stop()
