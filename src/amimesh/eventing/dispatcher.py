"""The broker's dispatcher: for each Trigger, its durable consumer's events, filtered
and delivered to the subscriber through the mesh, with Knative's delivery rules
(`eventing.delivery`): through the broker's sidecar, or straight to the subscriber's
inbound sidecars over mutual TLS as the broker (`eventing.direct`) when its route is
the mesh's default.

An event is acknowledged in JetStream only once its fate is settled: delivered (and
its reply, if any, stored back in the broker), sent to the dead-letter sink, or
dropped for good (no sink). A retry is a `nak` with the backoff as its delay, so
JetStream keeps the event and the wait across restarts; an attempt is counted by
JetStream's delivery count, so a crash mid-delivery counts as an attempt that got no
response. Delivery is at least once: a subscriber can see an event again after a
crash between its answer and the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cloudevents.core.base import BaseCloudEvent
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from amimesh.eventing import delivery as rules
from amimesh.eventing import events, history, http1
from amimesh.eventing.config import BrokerEntry, TriggerEntry
from amimesh.eventing.direct import Direct
from amimesh.eventing.filters import matches
from amimesh.eventing.jetstream import ACK_WAIT_S, delivered, ensure_consumer

log = logging.getLogger(__name__)

BATCH = 32
MAX_IN_FLIGHT = 64  # events of one trigger being delivered at once
MIN_FETCH = 16  # with deliveries under way, the fewest events a fetch asks for
FETCH_WAIT_S = 1.0
# The most of a response body read: a reply event is bounded like an incoming one.
MAX_REPLY_BYTES = 1 << 20

Publish = Callable[[BrokerEntry, BaseCloudEvent], Awaitable[None]]
Note = Callable[[BrokerEntry, history.Record], Awaitable[None]]


async def _no_note(broker: BrokerEntry, record: history.Record) -> None:
    return None


@dataclass(frozen=True)
class Outcome:
    """One attempt: the status (None: no response), the body, and a reply event or why
    the reply is not one."""

    status: int | None
    body: bytes = b""
    reply: BaseCloudEvent | None = None
    bad_reply: str = ""
    retry_after: str | None = None  # the answer's `Retry-After` header


async def send(
    client: http1.Client,
    url: str,
    event: BaseCloudEvent,
    *,
    mode: str,
    timeout_s: float,
    drop: tuple[str, ...] = (),
    direct: tuple[Direct, str] | None = None,
) -> Outcome:
    """POST `event` (without the attributes `drop` names) to `url`, with `Prefer:
    reply`, and read what came back: straight to the cluster `direct` names when its
    instances can be reached, else through the proxy the environment names for it."""
    headers, body = events.to_http(event, mode, drop)
    headers["Prefer"] = "reply"
    try:
        answer = None
        if direct is not None:
            way, cluster = direct
            answer = await way.post(
                cluster, url, headers, body, timeout_s=timeout_s, limit=MAX_REPLY_BYTES
            )
        if answer is None:
            answer = await client.post(
                url, headers, body, timeout_s=timeout_s, limit=MAX_REPLY_BYTES
            )
    except http1.NoAnswer as e:
        log.debug("delivery to %s: no response (%s)", url, e)
        return Outcome(None)
    read, status, got = answer.body, answer.status, answer.headers
    if read is None:
        if not rules.succeeded(status):
            return Outcome(status, b"", retry_after=got.get("retry-after"))
        return Outcome(status, b"", bad_reply="the reply is over 1 MiB")
    data = read
    if not rules.succeeded(status):
        return Outcome(status, data, retry_after=got.get("retry-after"))
    if not data and not any(k.startswith("ce-") for k in got):
        return Outcome(status)
    try:
        replies = events.read_request(got, data)
    except events.InvalidEvent as e:
        return Outcome(status, data, bad_reply=f"the reply is not a CloudEvent: {e}")
    if len(replies) != 1:
        return Outcome(status, data, bad_reply="a reply is one event")
    return Outcome(status, data, reply=replies[0])


class TriggerDispatcher:
    """One trigger's consumer loop; `run` until cancelled."""

    def __init__(
        self,
        js: JetStreamContext,
        broker: BrokerEntry,
        trigger: TriggerEntry,
        session: http1.Client,
        publish: Publish,
        note: Note = _no_note,
        direct: Direct | None = None,
    ) -> None:
        self.js = js
        self.broker = broker
        self.trigger = trigger
        self.session = session
        self.publish = publish
        self._note = note
        # Straight to the subscriber's instances, when its route allows it.
        self._direct = (direct, trigger.direct) if direct is not None and trigger.direct else None
        self._sub: JetStreamContext.PullSubscription | None = None
        # The events being handled, and when each was taken.
        self._handling: dict[int, tuple[Msg, float]] = {}

    async def prepare(self) -> None:
        """Make (or find) the trigger's durable consumer."""
        self._sub = await ensure_consumer(self.js, self.broker, self.trigger)

    async def run(self) -> None:
        """Fetch and deliver until cancelled: up to `MAX_IN_FLIGHT` events at once, a
        new fetch as soon as `MIN_FETCH` of them are done, or none is under way (one
        slow subscriber's answer holds up no other event). One fetch at a time: a
        pull subscription's inbox is not to be shared by two."""
        if self._sub is None:
            await self.prepare()
        sub = self._sub
        assert sub is not None
        pending: set[asyncio.Task[None]] = set()
        ticker = asyncio.create_task(self._in_progress(), name="in-progress")
        try:
            while True:
                free = MAX_IN_FLIGHT - len(pending)
                # Busy: fetch again once a batch's worth is done, not at every
                # delivery (a fetch is a round trip to the server).
                if free < (MIN_FETCH if pending else 1):
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(min(free, BATCH), timeout=FETCH_WAIT_S)
                except (NatsTimeout, TimeoutError):  # nothing came within the wait
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # the server away, a cluster electing a leader, ...
                    log.warning(
                        "trigger %s: fetch failed (%s: %s)", self.trigger.name, type(e).__name__, e
                    )
                    await asyncio.sleep(FETCH_WAIT_S)
                    continue
                for m in msgs:
                    task = asyncio.create_task(self._handle_safely(m))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
        finally:
            ticker.cancel()
            for task in pending:
                task.cancel()
            await asyncio.gather(ticker, *pending, return_exceptions=True)

    async def _handle_safely(self, msg: Msg) -> None:
        key = id(msg)
        self._handling[key] = (msg, asyncio.get_running_loop().time())
        try:
            await self.handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not acknowledged: JetStream redelivers it after its ack wait.
            log.exception("trigger %s: an event failed", self.trigger.name)
        finally:
            del self._handling[key]

    async def _in_progress(self) -> None:
        """Every third of the ack wait, tell JetStream that each event handled for
        longer than that is still being handled (one loop for all of them: a task per
        event costs more than its delivery)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ACK_WAIT_S / 3)
            since = loop.time() - ACK_WAIT_S / 3
            for msg, taken in list(self._handling.values()):
                if taken > since:
                    continue
                try:
                    await msg.in_progress()
                except Exception:  # acknowledged meanwhile, or the connection is away
                    continue

    async def handle(self, msg: Msg) -> None:
        t = self.trigger
        try:
            event = events.from_bytes(msg.data)
        except Exception as e:  # only the ingress writes here; say it and move on
            log.error("trigger %s: a stored event cannot be read (%s)", t.name, e)
            await msg.term()
            return
        if not matches(t.attributes, t.filters, events.attributes_of(event)):
            await msg.ack()
            return
        attempt = delivered(msg)
        d = t.delivery
        if attempt > d.attempts:  # its attempts were spent before a restart
            await self._dead_letter(msg, event, None, b"", attempt)
            return
        # The broker's TTL stays in the broker: the subscriber does not see it.
        out = await send(
            self.session,
            t.subscriber,
            event,
            mode=d.format,
            timeout_s=d.timeout_s,
            drop=(rules.TTL,),
            direct=self._direct,
        )
        if rules.succeeded(out.status) and not out.bad_reply:
            if out.reply is not None and not await self._reply(event, out.reply):
                delay = rules.backoff(d, max(1, attempt))
                await msg.nak(delay=delay)  # the subscriber gets it again: at least once
                await self.note(event, attempt, out.status, history.RETRYING)
                return
            await msg.ack()
            await self.note(event, attempt, out.status, history.DELIVERED)
            log.debug("trigger %s: %s delivered (attempt %d)", t.name, event.get_id(), attempt)
            return
        if out.bad_reply:
            log.info("trigger %s: %s: %s", t.name, event.get_id(), out.bad_reply)
        elif rules.retryable(out.status) and attempt < d.attempts:
            delay = rules.retry_wait(d, attempt, out.status, out.retry_after, time.time())
            log.info(
                "trigger %s: %s got %s, retry %d in %.3gs",
                t.name,
                event.get_id(),
                out.status if out.status is not None else "no response",
                attempt,
                delay,
            )
            await msg.nak(delay=delay)
            await self.note(event, attempt, out.status, history.RETRYING)
            return
        await self._dead_letter(msg, event, out.status, out.body, attempt)

    async def note(
        self, event: BaseCloudEvent, attempt: int, status: int | None, outcome: str
    ) -> None:
        record = history.Record(
            "attempt",
            time.time(),
            event.get_id(),
            event.get_source(),
            event.get_type(),
            trigger=self.trigger.name,
            attempt=attempt,
            status=status,
            outcome=outcome,
        )
        await self._note(self.broker, record)

    async def _reply(self, original: BaseCloudEvent, reply: BaseCloudEvent) -> bool:
        """Pass a reply on: back into the broker (a trigger's), or to the subscription's
        reply (dropped without one). False when it could not be handed on."""
        t = self.trigger
        if t.subscription:
            if not t.reply:
                return True
            d = t.delivery
            out = await send(self.session, t.reply, reply, mode=d.format, timeout_s=d.timeout_s)
            if not rules.succeeded(out.status):
                log.info("subscription %s: its reply got %s from %s", t.name, out.status, t.reply)
            return rules.succeeded(out.status)
        ttl = rules.ingress_ttl(original.get_extension(rules.TTL))
        if ttl <= 0:
            log.info("trigger %s: reply %s dropped: TTL spent", t.name, reply.get_id())
            return True
        await self.publish(self.broker, events.with_attributes(reply, {rules.TTL: ttl}))
        return True

    async def _dead_letter(
        self, msg: Msg, event: BaseCloudEvent, status: int | None, body: bytes, attempt: int
    ) -> None:
        t = self.trigger
        d = t.delivery
        if not d.dead_letter:
            log.warning(
                "trigger %s: %s dropped after %d attempt(s) (last: %s); no dead-letter sink",
                t.name,
                event.get_id(),
                attempt,
                status,
            )
            await msg.ack()
            await self.note(event, attempt, status, history.DROPPED)
            return
        extensions = rules.error_extensions(t.subscriber, status, body)
        letter = events.with_attributes(event, extensions, drop=(rules.TTL,))
        out = await send(self.session, d.dead_letter, letter, mode=d.format, timeout_s=d.timeout_s)
        if rules.succeeded(out.status):
            log.info("trigger %s: %s sent to the dead-letter sink", t.name, event.get_id())
            await msg.ack()
            await self.note(event, attempt, status, history.DEAD_LETTERED)
            return
        delay = rules.backoff(d, max(1, min(attempt, d.retry or 1)))
        log.warning(
            "trigger %s: the dead-letter sink answered %s; again in %.3gs",
            t.name,
            out.status,
            delay,
        )
        await msg.nak(delay=delay)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
