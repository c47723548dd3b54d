"""The broker's store on NATS JetStream: a stream per Broker, a durable pull consumer
per Trigger (`nats-py`).

A stream keeps its events in files (`storage: file`) until every trigger's consumer
acknowledged them (`retention: interest`; an event no trigger wants is not kept), up
to 1 GiB per broker; when full, it refuses new events (`discard: new`), and the
ingress answers 503 rather than drop an older one. A consumer starts with the events
that arrive after it is made (as a new Knative trigger does) and redelivers any event
not acknowledged, nor said to be in progress, within `ACK_WAIT_S`, whatever happened
to the process that had it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from amimesh.eventing.config import BrokerEntry, TriggerEntry

log = logging.getLogger(__name__)

STREAM_MAX_BYTES = 1 << 30
PUBLISH_TIMEOUT_S = 5.0
# How long an event handed to a dispatcher stays its own without a word: the
# dispatcher says "in progress" every third of it while an attempt runs, so a long
# attempt keeps its event, and an event of a dispatcher that died is delivered again
# within this much.
ACK_WAIT_S = 6.0


# A message's ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<...>` (9 tokens),
# or with a domain and an account first (12 or more).
_V1_TOKENS = 9
_V1_DELIVERED = 4


def delivered(msg: Msg) -> int:
    """How many times JetStream has delivered `msg` (this time included), read from its
    ack subject alone: nats-py's `metadata` also builds the rest (sequences, a
    datetime), which a delivery does not need."""
    tokens = (msg.reply or "").split(".")
    if tokens[:2] != [Msg.Ack.Prefix0, Msg.Ack.Prefix1]:
        return msg.metadata.num_delivered  # not a JetStream message: nats-py says so
    if len(tokens) == _V1_TOKENS:
        return int(tokens[_V1_DELIVERED])
    if len(tokens) > Msg.Ack.NumDelivered:
        return int(tokens[Msg.Ack.NumDelivered])
    return msg.metadata.num_delivered


def read_credentials(path: Path) -> tuple[str, str]:
    """`user:password`, as `ami up` writes it."""
    user, _, password = path.read_text().strip().partition(":")
    return user, password


async def _error(e: Exception) -> None:
    log.warning("JetStream server: %s", e or type(e).__name__)


async def _reconnected() -> None:
    log.info("JetStream server: reconnected")


async def connect(url: str, user: str, password: str) -> Client:
    """A client of the server, or of any of a cluster's (`url`: comma-separated)."""
    client = Client()

    async def disconnected() -> None:
        # nats-py calls this at the client's own close too: nothing to say then.
        if not client.is_closed:
            log.warning("JetStream server: disconnected, reconnecting")

    await client.connect(
        servers=[u.strip() for u in url.split(",") if u.strip()],
        user=user or None,
        password=password or None,
        name="ami-broker",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,  # type: ignore[arg-type]  # a float works; typed int
        connect_timeout=2,
        error_cb=_error,
        disconnected_cb=disconnected,
        reconnected_cb=_reconnected,
    )
    return client


async def ensure_stream(js: JetStreamContext, broker: BrokerEntry, replicas: int = 1) -> None:
    """Make the broker's stream, or bring it to the broker's settings (its config's
    replicas, retention, age and size; `replicas` when it names none)."""
    config = stream_config(broker, replicas)
    try:
        await js.stream_info(broker.stream)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream %s made", broker.stream)
        return
    try:
        await js.update_stream(config)
    except APIError as e:  # a change the server refuses: the stream serves as it was
        log.error(
            "stream %s keeps its settings: the server refused the new ones (%s)", broker.stream, e
        )


def stream_config(broker: BrokerEntry, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=broker.stream,
        subjects=[broker.subject],
        storage=StorageType.FILE,
        retention=(
            RetentionPolicy.LIMITS if broker.retention == "limits" else RetentionPolicy.INTEREST
        ),
        discard=DiscardPolicy.NEW,
        max_bytes=broker.max_bytes or STREAM_MAX_BYTES,
        max_age=broker.max_age_s or None,
        num_replicas=broker.replicas or replicas,
    )


LOG_STREAM = "KNB_LOG"
LOG_MAX_MSGS = 50_000
LOG_MAX_AGE_S = 86_400.0


def log_subject(namespace: str, name: str) -> str:
    return f"knb-log.{namespace}.{name}"


async def ensure_log_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """The brokers' history (`eventing.history`): the last records, a day at most."""
    config = StreamConfig(
        name=LOG_STREAM,
        subjects=["knb-log.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_msgs=LOG_MAX_MSGS,
        max_age=LOG_MAX_AGE_S,
        num_replicas=replicas,
    )
    try:
        await js.stream_info(LOG_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def ensure_consumer(
    js: JetStreamContext, broker: BrokerEntry, trigger: TriggerEntry
) -> JetStreamContext.PullSubscription:
    config = ConsumerConfig(
        durable_name=trigger.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,  # Ami counts attempts itself: the dead-letter sink is its end
        max_ack_pending=1000,
    )
    return await js.pull_subscribe(
        broker.subject, durable=trigger.durable, stream=broker.stream, config=config
    )


async def drop_stale_streams(js: JetStreamContext, wanted: list[BrokerEntry]) -> None:
    """Remove the streams of brokers and channels that are gone, and the events in
    them (as deleting a Broker or a channel does in Knative)."""
    keep = {b.stream for b in wanted} | {LOG_STREAM}
    for info in await js.streams_info():
        name = info.config.name or ""
        if name.startswith(("KNB_", "KNC_")) and name not in keep:
            await js.delete_stream(name)
            log.info("stream %s removed: its broker or channel is gone", name)


async def drop_stale_consumers(
    js: JetStreamContext, broker: BrokerEntry, triggers: list[TriggerEntry]
) -> None:
    """Remove the consumers of triggers that are gone (their events stop being kept)."""
    wanted = {t.durable for t in triggers}
    for info in await js.consumers_info(broker.stream):
        name = info.name
        if name not in wanted:
            await js.delete_consumer(broker.stream, name)
            log.info("consumer %s of %s removed", name, broker.stream)
