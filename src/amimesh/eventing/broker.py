"""The broker process (`python -m amimesh.eventing.broker_main`): every Broker's ingress and
every Trigger's dispatcher, on the mesh's JetStream server, and every PingSource. The
node agent runs it as the Workload `knative-eventing/broker-ingress`, with a sidecar:
it listens on `PORT` (loopback) behind its inbound listener, and delivers through
`HTTP_PROXY` (its HTTP client reads it: every delivery leaves into the mesh), or,
to a subscriber on the mesh's default route, straight to the subscriber's inbound
sidecars as its own identity (`eventing.direct`: `AMI_SDS_SOCKET` and
`AMI_PROXY_ADMIN_PORT`, which the node agent sets).

Its settings come from the environment the expansion wrote: the brokers and triggers
(`AMI_EVENTING_CONFIG`), the server (`AMI_NATS_URL`) and the file with its credential
(`AMI_NATS_CREDENTIALS`). It answers `/healthz` once every stream and consumer is
there, so it takes events only when the triggers that want them will see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop
from cloudevents.core.base import BaseCloudEvent
from nats.aio.client import Client
from nats.js import JetStreamContext

from amimesh.eventing import events, http1, http1_server, jetstream, ping
from amimesh.eventing.config import (
    CONFIG_ENV,
    NATS_CREDENTIALS_ENV,
    NATS_URL_ENV,
    BrokerConfig,
    BrokerEntry,
    TriggerEntry,
)
from amimesh.eventing.direct import Direct
from amimesh.eventing.dispatcher import TriggerDispatcher, stop
from amimesh.eventing.ingress import MAX_BODY_BYTES, Ingress
from amimesh.eventing.notes import Notes

log = logging.getLogger("amimesh.eventing.broker")

CONNECT_TIMEOUT_S = 60.0
CONNECT_RETRY_S = 0.2
STOP_WAIT_S = 2.0  # at most, for each server to take what is pending, when stopping


async def serve(config: BrokerConfig, url: str, user: str, password: str, port: int) -> None:
    # With several broker processes (`config-ami-broker`), the first alone runs the
    # PingSources.
    instance = os.environ.get("AMI_INSTANCE", "")
    sources = config.pings if not instance or instance.endswith("-0") else ()
    # Deliveries leave through the sidecar `HTTP_PROXY` names (`http1.proxy_for`).
    client = http1.Client()
    pings = [asyncio.create_task(ping.run(p, client), name=f"ping-{p.name}") for p in sources]
    try:
        if config.brokers:
            await _brokers(config, url, user, password, port, client)
        else:
            await _health_only(port)
    finally:
        await stop(pings)
        await client.close()


async def _health_only(port: int) -> None:
    """No broker: the process answers its readiness probe and runs its sources."""
    ingress = Ingress(BrokerConfig(), _no_store)
    ingress.ready = True
    server = await http1_server.serve(ingress.handle, "127.0.0.1", port, MAX_BODY_BYTES)
    try:
        await _until_signalled()
    finally:
        await server.close()


async def _no_store(broker: BrokerEntry, event: BaseCloudEvent) -> None:
    raise LookupError("no broker")


async def _until_signalled() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()


async def _brokers(
    config: BrokerConfig,
    url: str,
    user: str,
    password: str,
    port: int,
    client: http1.Client,
) -> None:
    nc = await _connect(url, user, password)
    js = nc.jetstream()
    await jetstream.ensure_log_stream(js, config.replicas)
    # The mesh's server holds only this mesh's streams: those of brokers gone go.
    # A broker's own servers (its config's) may serve others too: nothing is removed.
    await jetstream.drop_stale_streams(js, [b for b in config.brokers if not b.servers])
    clients: dict[tuple[str, str], Client] = {("", ""): nc}
    streams: dict[tuple[str, str], JetStreamContext] = {("", ""): js}
    notes = Notes(nc)
    note = notes.note
    tasks: list[asyncio.Task[None]] = []
    direct = _direct(config, client)
    if direct is not None:
        tasks.append(asyncio.create_task(direct.run(), name="direct"))

    async def publish(broker: BrokerEntry, event: BaseCloudEvent) -> None:
        target = streams.get(broker.connection)
        if target is None:  # its own servers are not reached (yet): 503
            raise LookupError(f"the servers of {broker.name} are not reached")
        await target.publish(
            broker.subject,
            events.to_bytes(event),
            stream=broker.stream,
            timeout=jetstream.PUBLISH_TIMEOUT_S,
        )

    ingress = Ingress(config, publish, note)
    server = await http1_server.serve(ingress.handle, "127.0.0.1", port, MAX_BODY_BYTES)

    async def serve_group(key: tuple[str, str], bjs: JetStreamContext) -> None:
        """The streams, consumers and dispatchers of the brokers on one connection."""
        group = [b for b in config.brokers if b.connection == key]
        mine = {(b.namespace, b.name, b.kind): b for b in group}
        for b in group:
            await jetstream.ensure_stream(bjs, b, config.replicas)
            theirs = [t for t in config.triggers if _owner(t) == (b.namespace, b.name, b.kind)]
            await jetstream.drop_stale_consumers(bjs, b, theirs)
        for t in config.triggers:
            owner = mine.get(_owner(t))
            if owner is None:
                continue
            d = TriggerDispatcher(bjs, owner, t, client, publish, note, direct)
            await d.prepare()
            tasks.append(asyncio.create_task(d.run(), name=f"trigger-{t.name}"))
        streams[key] = bjs

    async def own_servers(key: tuple[str, str]) -> None:
        """A broker's own servers (its config's), tried until reached: the other
        brokers do not wait for them."""
        servers, credentials = key
        who = jetstream.read_credentials(Path(credentials)) if credentials else ("", "")
        while True:
            try:
                c = await _connect(servers, *who)
                break
            except Exception as e:  # they are away: its events get 503 meanwhile
                log.warning("JetStream servers %s not reached (%s): trying again", servers, e)
                await asyncio.sleep(CONNECT_RETRY_S * 10)
        clients[key] = c
        await serve_group(key, c.jetstream())
        log.info("brokers on %s served", servers)

    try:
        await serve_group(("", ""), js)
        for key in sorted({b.connection for b in config.brokers if b.servers}):
            tasks.append(asyncio.create_task(own_servers(key), name=f"servers-{key[0]}"))
        ingress.ready = True
        log.info(
            "broker ingress on 127.0.0.1:%d: %d broker(s), %d trigger(s)",
            port,
            len(config.brokers),
            len(config.triggers),
        )
        await _until_signalled()
    finally:
        ingress.ready = False
        await server.close()  # the requests read are answered (stored: 202)
        await stop(tasks)
        # A server away (stopping too, or gone) would be waited for without end.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(notes.close(), STOP_WAIT_S)
        for c in clients.values():
            try:
                await asyncio.wait_for(c.drain(), STOP_WAIT_S)
            except Exception:  # the server is away: what was not sent stays unsent
                await c.close()


def _direct(config: BrokerConfig, client: http1.Client) -> Direct | None:
    """The way straight to the subscribers that allow it, when the node agent gave
    this process its identity and its sidecar's admin port."""
    clusters = {t.direct for t in config.triggers if t.direct}
    sds_socket = os.environ.get("AMI_SDS_SOCKET", "")
    admin = os.environ.get("AMI_PROXY_ADMIN_PORT", "")
    if not clusters or not sds_socket or not admin.isdigit():
        return None
    peer = f"{os.environ.get('AMI_WORKLOAD', '')}.{os.environ.get('AMI_NAMESPACE', '')}"
    return Direct(clusters, int(admin), sds_socket, peer, client)


async def _connect(url: str, user: str, password: str) -> Client:
    """A client of `url`'s servers, which may be starting: tried for a minute."""
    deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT_S
    while True:
        try:
            return await jetstream.connect(url, user, password)
        except Exception as e:  # the server may be starting
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("JetStream server %s not there yet (%s)", url, e)
            await asyncio.sleep(CONNECT_RETRY_S)


def _owner(t: TriggerEntry) -> tuple[str, str, str]:
    """The key of the broker (or channel) a trigger (or subscription) reads."""
    return (t.namespace, t.broker, "channel" if t.subscription else "broker")


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("AMI_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    try:
        config = BrokerConfig.decode(os.environ[CONFIG_ENV])
        url = os.environ[NATS_URL_ENV]
        user, password = "", ""
        credentials = os.environ.get(NATS_CREDENTIALS_ENV, "")
        if config.brokers and credentials:
            user, password = jetstream.read_credentials(Path(credentials))
        port = int(os.environ["PORT"])
    except (KeyError, ValueError, OSError) as e:
        log.error("the broker's settings are missing or wrong: %s", e)
        return 2
    # On uvloop: its event loop and TLS layer are compiled where asyncio's are Python,
    # and every event crosses the loop several times (ingress, JetStream, delivery over
    # mutual TLS): about a tenth less of the broker's CPU per event (docs/performance.md).
    uvloop.run(serve(config, url, user, password, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
