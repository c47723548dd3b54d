"""The broker's ingress: `POST /NS/NAME` with a CloudEvent (binary or structured, 1.0
or 0.3, or a batch), answered 202 once JetStream has stored it.

    405  anything but POST
    404  no such broker
    413  a body over `MAX_BODY_BYTES` (refused before it is read whole)
    400  not a valid CloudEvent, with the reason; or its TTL is spent
    503  the store did not take it (the client may send it again)
    202  stored: it will be delivered to every trigger that wants it
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from cloudevents.core.base import BaseCloudEvent

from amimesh.eventing import delivery as rules
from amimesh.eventing import events
from amimesh.eventing.config import BrokerConfig, BrokerEntry
from amimesh.eventing.history import Record

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # 1 MiB: an event, or a batch of them

Publish = Callable[[BrokerEntry, BaseCloudEvent], Awaitable[None]]
Note = Callable[[BrokerEntry, Record], Awaitable[None]]


async def _no_note(broker: BrokerEntry, record: Record) -> None:
    return None


class Ingress:
    def __init__(self, config: BrokerConfig, publish: Publish, note: Note = _no_note) -> None:
        self.config = config
        self.publish = publish
        self.note = note
        self.ready = False

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/healthz", self.healthz)
        app.router.add_route("*", "/channels/{namespace}/{name}", self.receive_channel)
        app.router.add_route("*", "/{namespace}/{name}", self.receive)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503, text="ok" if self.ready else "")

    async def receive_channel(self, request: web.Request) -> web.Response:
        return await self.receive(request, "channel")

    async def receive(self, request: web.Request, kind: str = "broker") -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"}, text="only POST\n")
        if not self.ready:
            return web.Response(status=503, text="the broker is starting\n")
        ns, name = request.match_info["namespace"], request.match_info["name"]
        broker = self.config.broker(ns, name, kind)
        if broker is None:
            return web.Response(status=404, text=f"no {kind} {ns}/{name}\n")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _too_large()
        body = await events.read_bounded(request.content, MAX_BODY_BYTES)
        if body is None:
            return _too_large()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            received = events.read_request(headers, body)
        except events.InvalidEvent as e:
            return web.Response(status=400, text=f"{e}\n")
        stored: list[BaseCloudEvent] = []
        for event in received:
            if broker.is_channel:  # a channel keeps no TTL: it has no replies of its own
                stored.append(event)
                continue
            ttl = rules.ingress_ttl(event.get_extension(rules.TTL))
            if ttl <= 0:
                return web.Response(status=400, text=f"event {event.get_id()}: its TTL is spent\n")
            stored.append(events.with_attributes(event, {rules.TTL: ttl}))
        for event in stored:
            try:
                await self.publish(broker, event)
            except Exception as e:  # the store's many errors: the sender may try again
                log.warning("broker %s/%s: not stored: %s", ns, name, e)
                return web.Response(status=503, text="the broker could not store the event\n")
            await self.note(
                broker,
                Record("taken", time.time(), event.get_id(), event.get_source(), event.get_type()),
            )
        return web.Response(status=202)


def _too_large() -> web.Response:
    return web.Response(status=413, text=f"an event is at most {MAX_BODY_BYTES} bytes\n")
