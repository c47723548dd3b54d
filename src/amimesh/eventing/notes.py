"""The broker's history writer: the records `ami events` reads (`eventing.history`),
gathered per broker and sent to the history stream a batch at a time (a message of
up to `MAX_RECORDS` lines, at most `INTERVAL_S` after its first record), not waited
for. A record costs the event it tells of nothing but a list append; a batch lost
with a connection is a gap in the history, no loss of an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client

from amimesh.eventing import history, jetstream
from amimesh.eventing.config import BrokerEntry

log = logging.getLogger(__name__)

INTERVAL_S = 0.05
MAX_RECORDS = 200


class Notes:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._pending: dict[str, list[history.Record]] = {}
        self._task: asyncio.Task[None] | None = None

    async def note(self, broker: BrokerEntry, record: history.Record) -> None:
        subject = jetstream.log_subject(broker.namespace, broker.name)
        batch = self._pending.setdefault(subject, [])
        batch.append(record)
        if len(batch) >= MAX_RECORDS:
            del self._pending[subject]
            await self._send(subject, batch)
        elif self._task is None or self._task.done():
            self._task = asyncio.create_task(self._later(), name="history")

    async def _later(self) -> None:
        await asyncio.sleep(INTERVAL_S)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for subject, batch in pending.items():
            await self._send(subject, batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _send(self, subject: str, batch: list[history.Record]) -> None:
        try:
            await self.client.publish(subject, history.encode_many(batch))
        except Exception as e:  # the connection is away: the history has a gap
            log.debug("%d history record(s) not sent: %s", len(batch), e)
