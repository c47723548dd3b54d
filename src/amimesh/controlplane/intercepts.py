"""Intercepts in the control plane: each one a Workload in the store's source
`intercepts` (`model.intercepts` says what it is and how the mesh routes to it), held
by a lease its `ami intercept` renews.

    icpts = Intercepts(store)
    icpts.start()                               # the lease keeper (an owned task)
    made = icpts.create("default", "api", header=("x-dev", "alice"), port=None)
    icpts.renew(made["id"]); icpts.end(made["id"])
    await icpts.close()

An intercept whose lease was not renewed for `lease_s` (its CLI was killed, or the
machine it ran on went away) ends as if Ctrl-C had ended it: its Workload leaves the
store, the node agent stops its instance, and every route is as before. The control
plane keeps intercepts in memory only: started again, it has none, and each CLI
learns so at its next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amimesh.config.store import Store
from amimesh.model import intercepts as model
from amimesh.resources import ParseResult, parse_object
from amimesh.resources.workload import Workload
from amimesh.serving.expand import REVISION_LABEL

log = logging.getLogger(__name__)

SOURCE = "intercepts"
LEASE_S = 10.0  # the CLI renews every LEASE_S / 5
CHECK_S = 0.5
MAX_INTERCEPTS = 64


class InterceptNotFound(LookupError):
    pass


class InterceptConflict(ValueError):
    pass


@dataclass
class _Held:
    intercept: model.Intercept
    document: dict[str, Any]
    port: int | None
    deadline: float


class Intercepts:
    def __init__(
        self,
        store: Store,
        *,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.lease_s = lease_s
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._expire(), name="intercept-leases")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def items(self) -> list[dict[str, Any]]:
        return [self._json(h) for _, h in sorted(self._held.items())]

    def create(
        self, namespace: str, workload: str, *, header: tuple[str, str] | None, port: int | None
    ) -> dict[str, Any]:
        """Intercept `workload`; what the CLI needs (id, the instance, the lease).
        Raises InterceptNotFound (no such Workload), InterceptConflict (another
        intercept already takes the same traffic) or ValueError."""
        target = next(
            (
                r
                for r in self.store.resources()
                if isinstance(r, Workload) and r.namespace == namespace and r.name == workload
            ),
            None,
        )
        if target is None or model.intercept_of(target) is not None:
            raise InterceptNotFound(f"no Workload {namespace}/{workload}")
        if REVISION_LABEL in target.metadata.labels:
            raise ValueError(
                f"{namespace}/{workload} is a Knative revision's: its autoscaler and "
                "activator would count the intercept as one of its instances"
            )
        if not target.spec.ports:
            raise ValueError(f"Workload {namespace}/{workload} has no ports to intercept")
        for h in self._held.values():
            same = h.intercept.namespace == namespace and h.intercept.workload == workload
            # One of every request excludes any other; two of one header collide.
            if same and (None in (h.intercept.header, header) or h.intercept.header == header):
                raise InterceptConflict(
                    f"intercept {h.intercept.id} already takes "
                    + ("every request" if h.intercept.header is None else "requests")
                    + f" of {namespace}/{workload}"
                    + (
                        f" with {h.intercept.header[0]}={h.intercept.header[1]}"
                        if h.intercept.header
                        else ""
                    )
                )
        if len(self._held) >= MAX_INTERCEPTS:
            raise ValueError(f"at most {MAX_INTERCEPTS} intercepts at once")
        intercept_id = secrets.token_hex(4)
        document = model.intercept_workload(target, intercept_id, header, port)
        held = _Held(
            model.Intercept(intercept_id, workload, namespace, header),
            document,
            port,
            self._clock() + self.lease_s,
        )
        self._held[intercept_id] = held
        try:
            self._write()
        except ValueError:
            del self._held[intercept_id]
            raise
        log.info("intercept %s of %s/%s started", intercept_id, namespace, workload)
        return self._json(held)

    def renew(self, intercept_id: str) -> dict[str, Any]:
        held = self._held.get(intercept_id)
        if held is None:
            raise InterceptNotFound(f"no intercept {intercept_id}")
        held.deadline = self._clock() + self.lease_s
        return self._json(held)

    def end(self, intercept_id: str) -> None:
        if self._held.pop(intercept_id, None) is None:
            raise InterceptNotFound(f"no intercept {intercept_id}")
        log.info("intercept %s ended", intercept_id)
        self._write()

    def expire(self) -> list[str]:
        """End every intercept whose lease ran out; their ids."""
        now = self._clock()
        gone = [i for i, h in self._held.items() if h.deadline < now]
        for i in gone:
            del self._held[i]
            log.warning("intercept %s ended: its lease was not renewed", i)
        if gone:
            self._write()
        return gone

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            self.expire()

    def _write(self) -> None:
        docs = [h.document for _, h in sorted(self._held.items())]
        result = parse_object({"apiVersion": "v1", "kind": "List", "items": docs}, SOURCE)
        errors = result.errors or self.store.set_source(
            SOURCE, ParseResult(resources=list(result.resources))
        )
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))

    def _json(self, held: _Held) -> dict[str, Any]:
        i = held.intercept
        name = held.document["metadata"]["name"]
        return {
            "id": i.id,
            "workload": i.workload,
            "namespace": i.namespace,
            "header": f"{i.header[0]}={i.header[1]}" if i.header else None,
            "port": held.port,
            "instance": f"{name}-0.{i.namespace}",
            "intercept_workload": name,
            "lease_s": self.lease_s,
            "expires_in_s": round(max(0.0, held.deadline - self._clock()), 3),
        }
