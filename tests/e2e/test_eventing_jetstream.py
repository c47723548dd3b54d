"""The broker's store on a real JetStream server (no mesh): streams and consumers made
as the config says, and those of deleted brokers, channels and triggers removed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js.api import RetentionPolicy

from amimesh.eventing import jetstream
from amimesh.eventing.config import BrokerConfig, BrokerEntry, TriggerEntry
from amimesh.eventing.delivery import Delivery
from amimesh.runtime import nats as nats_server
from tests.e2e.test_runtime import until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
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


def test_a_brokers_config_makes_its_stream_and_a_change_updates_it(server: str) -> None:
    """A Broker's `spec.config` (`eventing.brokerconfig`) as the server keeps it."""
    own = BrokerEntry("default", "own", retention="limits", max_age_s=3600.0, max_bytes=1 << 21)

    async def run() -> tuple[Any, Any, Any]:
        nc = await jetstream.connect(server, "", "")
        js = nc.jetstream()
        await jetstream.ensure_stream(js, BrokerEntry("default", "plain"))
        await jetstream.ensure_stream(js, own)
        plain = await js.stream_info("KNB_default_plain")
        made = await js.stream_info(own.stream)
        await jetstream.ensure_stream(js, replace(own, max_age_s=60.0))
        changed = await js.stream_info(own.stream)
        await nc.close()
        return plain.config, made.config, changed.config

    plain, made, changed = asyncio.run(run())
    assert (plain.retention, plain.max_age, plain.max_bytes) == (
        RetentionPolicy.INTEREST,
        0,
        1 << 30,
    )
    assert (made.retention, made.max_age, made.max_bytes) == (
        RetentionPolicy.LIMITS,
        3600.0,
        1 << 21,
    )
    assert changed.max_age == 60.0


def test_the_broker_stops_when_its_server_is_gone(tmp_path: Path) -> None:
    # Stopping drains the JetStream connection; with the server gone that drain would
    # wait for a reconnection without end (or fail), and the process would not end well.
    port, http_port = _free_port(), _free_port()
    argv = [nats_server.binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = BrokerConfig(
        brokers=(BrokerEntry("default", "default"),),
        triggers=(TriggerEntry("default", "t", "default", "http://127.0.0.1:9/", Delivery()),),
    )
    env = {
        **os.environ,
        "AMI_EVENTING_CONFIG": config.encode(),
        "AMI_NATS_URL": f"nats://127.0.0.1:{port}",
        "PORT": str(http_port),
    }
    log = (tmp_path / "broker.log").open("wb")
    broker = subprocess.Popen(
        [sys.executable, "-m", "amimesh.eventing.broker"], env=env, stdout=log, stderr=log
    )
    try:
        until(
            lambda: httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200,
            "the broker ready",
            timeout=60,
        )
        server.kill()
        server.wait(10)
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(30) == 0
    finally:
        broker.kill()
        server.kill()
        log.close()
