"""PingSources, run by the broker process: on each tick of its schedule, in its time
zone, one event to its sink, through the process's sidecar.

The event is Knative's: type `dev.knative.sources.ping`, source
`/apis/v1/namespaces/NS/pingsources/NAME`, a new id, the tick as `time`, the
source's `data` (or `dataBase64`, decoded) with its `contentType`, and its
`ceOverrides` extensions. A sink that does not take it (no 2xx) is tried again with
Knative's default backoff until the next tick; a tick missed while the process was
away is not made up (as Knative's adapter does not).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import uuid
import zoneinfo

from cloudevents.core.v1.event import CloudEvent

from amimesh.eventing import delivery as rules
from amimesh.eventing import http1
from amimesh.eventing.config import PingEntry
from amimesh.eventing.dispatcher import send
from amimesh.resources import cron

log = logging.getLogger(__name__)

TYPE = "dev.knative.sources.ping"


def event_for(p: PingEntry, tick: dt.datetime) -> CloudEvent:
    data: str | bytes | None = None
    if p.data_base64:
        data = base64.b64decode(p.data_base64)
    elif p.data:
        data = p.data
    attributes = {
        "id": str(uuid.uuid4()),
        "source": p.source,
        "type": TYPE,
        "specversion": "1.0",
        "time": tick.astimezone(dt.UTC),
        **p.extensions,
    }
    if data is not None:
        attributes["datacontenttype"] = p.content_type or "text/plain"
    return CloudEvent(attributes=attributes, data=data)


def zone(p: PingEntry, schedule: cron.Schedule) -> dt.tzinfo:
    name = schedule.timezone or p.timezone
    return zoneinfo.ZoneInfo(name) if name else dt.UTC


async def run(p: PingEntry, client: http1.Client) -> None:
    """Fire `p` on its schedule until cancelled."""
    schedule = cron.parse(p.schedule)
    tz = zone(p, schedule)
    loop = asyncio.get_running_loop()
    while True:
        now = dt.datetime.now(tz)
        tick = schedule.next_after(now)
        if tick is None:
            log.warning("pingsource %s/%s never fires", p.namespace, p.name)
            return
        await asyncio.sleep(max(0.0, (tick - dt.datetime.now(tz)).total_seconds()))
        deadline = loop.time() + max(1.0, (tick - now).total_seconds())
        await _deliver(p, event_for(p, tick), client, deadline)


async def _deliver(p: PingEntry, event: CloudEvent, client: http1.Client, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    policy = rules.Delivery()
    for attempt in range(1, policy.attempts + 1):
        out = await send(client, p.sink, event, mode="binary", timeout_s=policy.timeout_s)
        if rules.succeeded(out.status):
            log.debug("pingsource %s/%s: %s sent", p.namespace, p.name, event.get_id())
            return
        wait = rules.backoff(policy, attempt)
        if not rules.retryable(out.status) or loop.time() + wait >= deadline:
            break
        await asyncio.sleep(wait)
    log.warning("pingsource %s/%s: the sink did not take %s", p.namespace, p.name, event.get_id())
