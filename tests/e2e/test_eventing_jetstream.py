"""The broker's store on a real JetStream server (no mesh): streams and consumers made
as the config says, and those of deleted brokers, channels and triggers removed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from amimesh.eventing import jetstream
from amimesh.eventing.config import BrokerEntry, TriggerEntry
from amimesh.eventing.delivery import Delivery
from amimesh.runtime import nats as nats_server
from tests.e2e.test_runtime import until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [nats_server.binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"

    def up() -> bool:
        async def ping() -> bool:
            nc = await jetstream.connect(url, "", "")
            await nc.close()
            return True

        try:
            return asyncio.run(ping())
        except Exception:
            return False

    try:
        until(up, "the JetStream server")
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def test_stale_streams_and_consumers_are_removed(server: str) -> None:
    keep = BrokerEntry("default", "keep")
    gone = BrokerEntry("default", "gone")
    channel = BrokerEntry("default", "gone", "channel")
    t1 = TriggerEntry("default", "t1", "keep", "http://x/", Delivery())
    t2 = TriggerEntry("default", "t2", "keep", "http://x/", Delivery())

    async def run() -> tuple[list[str], list[str]]:
        nc = await jetstream.connect(server, "", "")
        js = nc.jetstream()
        for b in (keep, gone, channel):
            await jetstream.ensure_stream(js, b)
        await jetstream.ensure_log_stream(js)
        await jetstream.ensure_consumer(js, keep, t1)
        await jetstream.ensure_consumer(js, keep, t2)
        await jetstream.drop_stale_streams(js, [keep])
        await jetstream.drop_stale_consumers(js, keep, [t1])
        streams = sorted(i.config.name or "" for i in await js.streams_info())
        consumers = sorted(i.name for i in await js.consumers_info(keep.stream))
        await nc.close()
        return streams, consumers

    streams, consumers = asyncio.run(run())
    assert streams == ["KNB_LOG", "KNB_default_keep"]
    assert consumers == ["T_t1"]
