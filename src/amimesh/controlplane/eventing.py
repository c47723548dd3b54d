"""Knative Eventing's controller in the control plane: writes the broker's mesh
resources into the store (source `eventing`) and knows the status of every Broker and
Trigger.

    eventing = EventingController(store, runner)   # runner None: no JetStream server
    eventing.reconcile()          # at start, before anything is served
    eventing.watch(loop)          # then on every config change
    eventing.status_of(key)       # Knative's status of a Broker or Trigger

What runs is decided by the pure `eventing.expand`; the node agent runs the broker's
Workload as any other, with its sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.eventing.expand import Runner, expand
from amimesh.resources import ParseResult, parse_object

log = logging.getLogger(__name__)

SOURCE = "eventing"
Key = tuple[str, str, str]


def runner_for(state_dir: Path | None, nats_port: int, python: str) -> Runner | None:
    """How the broker process runs in the mesh of `state_dir` (None: a control plane
    with no state runs none); without a JetStream server it runs PingSources only."""
    if state_dir is None:
        return None
    if not nats_port:
        return Runner(python=python)
    return Runner(
        python=python,
        nats_url=f"nats://127.0.0.1:{nats_port}",
        credentials=str(state_dir / "nats" / "credentials"),
    )


class EventingController:
    def __init__(self, store: Store, runner: Runner | None) -> None:
        self.store = store
        self.runner = runner
        self._status: dict[Key, dict[str, Any]] = {}
        self._last_version: int | None = None
        self._problems: tuple[str, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = False
        self._unsubscribe: Callable[[], None] = lambda: None

    def status_of(self, key: Key) -> dict[str, Any] | None:
        return self._status.get(key)

    def reconcile(self) -> None:
        """Expand what users wrote into the `eventing` source (unchanged config: nothing)."""
        store = self.store
        version = store.config_version
        if version == self._last_version:
            return
        written = [r for r in store.resources() if store.source_of(r.key) != SOURCE]
        plan = expand(written, self.runner)
        self._status = dict(plan.status)
        problems = tuple(str(p) for p in plan.problems)
        if problems != self._problems:
            for p in problems:
                log.warning("eventing: %s", p)
            self._problems = problems
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": plan.derived}, SOURCE)
        for e in parsed.errors:  # a bug of the expansion, said loudly
            log.error("eventing: a derived resource is invalid: %s", e)
        errors = store.set_source(SOURCE, ParseResult(resources=list(parsed.resources)))
        for e in errors:
            log.warning("eventing: %s", e)
        self._last_version = store.config_version

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._unsubscribe = self.store.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe = lambda: None

    def _on_change(self) -> None:
        loop = self._loop
        if loop is None or self._due:
            return
        self._due = True
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._due = False
        try:
            self.reconcile()
        except Exception:
            log.exception("eventing: reconcile failed")
