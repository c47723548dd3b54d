"""The node agent's workload identities: one key pair and certificate per SPIFFE ID,
shared by every instance that runs as it, renewed at half life.

    ids = Identities(ca_client.sign)
    ids.prepare(spiffe_id)                       # start signing before anyone waits
    secrets, issued, release = await ids.acquire(spiffe_id, on_renewal)
    ...                                          # on_renewal(secrets, issued) on each renewal
    release(); await ids.close()

Keys are made here and stay in this process's memory: only CSRs leave it. A second
instance of a workload (a scale-up) needs no signing at all: its identity is in hand.
An identity is held from `acquire` until `release`: one nobody holds any more is
dropped with its renewal loop (a holder that is still waiting for the first
certificate counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amimesh.agent import certs
from amimesh.agent.sds import Secrets
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

log = logging.getLogger(__name__)

OnSecrets = Callable[[Secrets, Issued], None]


@dataclass
class _Identity:
    rotator: certs.Rotator
    first: asyncio.Task[Issued]
    secrets: Secrets | None = None
    issued: Issued | None = None
    subscribers: list[OnSecrets] = field(default_factory=list)
    renewals: asyncio.Task[None] | None = None


class Identities:
    def __init__(self, sign: certs.Sign, *, first_timeout_s: float = 30.0) -> None:
        self._sign = sign
        self._timeout = first_timeout_s
        self._ids: dict[str, _Identity] = {}
        self._ending: set[asyncio.Task[Any]] = set()  # cancelled, awaited by `close`

    def _get(self, spiffe_id: str) -> _Identity:
        found = self._ids.get(spiffe_id)
        if found is not None and not (found.first.done() and found.first.exception()):
            return found

        def on_cert(secrets: Secrets, issued: Issued) -> None:
            entry.secrets, entry.issued = secrets, issued
            for subscriber in list(entry.subscribers):
                subscriber(secrets, issued)

        rotator = certs.Rotator(SpiffeId.parse(spiffe_id), self._sign, on_cert=on_cert)
        first = asyncio.create_task(
            certs.first_certificate(rotator, timeout_s=self._timeout), name=f"cert-{spiffe_id}"
        )
        entry = _Identity(rotator, first)
        self._ids[spiffe_id] = entry
        return entry

    def prepare(self, spiffe_id: str) -> None:
        """Start getting the identity's certificate now (before an instance asks)."""
        self._get(spiffe_id)

    async def acquire(
        self, spiffe_id: str, on_secrets: OnSecrets
    ) -> tuple[Secrets, Issued, Callable[[], None]]:
        """Hold `spiffe_id`: its key and certificate now (the first caller waits for them;
        raises certs.CaRefused, CaUnavailable), `on_secrets` called on every renewal
        after, until the returned `release` is called."""
        entry = self._get(spiffe_id)
        entry.subscribers.append(on_secrets)

        def release() -> None:
            with contextlib.suppress(ValueError):
                entry.subscribers.remove(on_secrets)
            if not entry.subscribers and self._ids.get(spiffe_id) is entry:
                self._drop(spiffe_id)

        try:
            await asyncio.shield(entry.first)
        except BaseException:
            release()
            raise
        if entry.renewals is None:
            entry.renewals = asyncio.create_task(entry.rotator.run(), name=f"renew-{spiffe_id}")
        assert entry.secrets is not None and entry.issued is not None
        return entry.secrets, entry.issued, release

    def _drop(self, spiffe_id: str) -> None:
        entry = self._ids.pop(spiffe_id)
        for task in (entry.first, entry.renewals):
            if task is not None:
                task.cancel()
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        for spiffe_id in list(self._ids):
            self._drop(spiffe_id)
        await asyncio.gather(*self._ending, return_exceptions=True)
