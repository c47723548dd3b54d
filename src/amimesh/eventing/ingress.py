"""The broker's ingress: `POST /NS/NAME` with a CloudEvent (binary or structured, 1.0
or 0.3, or a batch), answered 202 once JetStream has stored it.

    405  anything but POST
    404  no such broker
    413  a body over `MAX_BODY_BYTES` (refused before it is read whole: `http1_server`)
    400  not a valid CloudEvent, with the reason; or its TTL is spent
    503  the store did not take it (the client may send it again)
    202  stored: it will be delivered to every trigger that wants it
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from cloudevents.core.base import BaseCloudEvent

from amimesh.eventing import delivery as rules
from amimesh.eventing import events
from amimesh.eventing.config import BrokerConfig, BrokerEntry
from amimesh.eventing.history import Record
from amimesh.eventing.http1_server import Request, Response

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

    async def handle(self, request: Request) -> Response:
        """`/healthz`, `/NS/NAME` (a broker) and `/channels/NS/NAME` (a channel)."""
        if request.path == "/healthz":
            return Response(200, "ok") if self.ready else Response(503)
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/")]
        if len(parts) == 3 and parts[0] == "channels":
            return await self.receive(request, parts[1], parts[2], "channel")
        if len(parts) == 2 and all(parts):
            return await self.receive(request, parts[0], parts[1])
        return Response(404, f"nothing at {request.path}\n")

    async def receive(self, request: Request, ns: str, name: str, kind: str = "broker") -> Response:
        if request.method != "POST":
            return Response(405, "only POST\n", (("Allow", "POST"),))
        if not self.ready:
            return Response(503, "the broker is starting\n")
        broker = self.config.broker(ns, name, kind)
        if broker is None:
            return Response(404, f"no {kind} {ns}/{name}\n")
        # A broker's events get Knative's TTL as they are read (a channel keeps none:
        # it has no replies of its own).
        stamp = None if broker.is_channel else (rules.TTL, rules.ingress_ttl)
        try:
            stored = events.read_request(request.headers, request.body, stamp)
        except events.InvalidEvent as e:
            return Response(400, f"{e}\n")
        for event in stored if stamp else ():
            if int(str(event.get_extension(rules.TTL))) <= 0:
                return Response(400, f"event {event.get_id()}: its TTL is spent\n")
        for event in stored:
            try:
                await self.publish(broker, event)
            except Exception as e:  # the store's many errors: the sender may try again
                log.warning("broker %s/%s: not stored: %s", ns, name, e)
                return Response(503, "the broker could not store the event\n")
            await self.note(
                broker,
                Record("taken", time.time(), event.get_id(), event.get_source(), event.get_type()),
            )
        return Response(202)
