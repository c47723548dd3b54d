"""Knative Serving's controller in the control plane: keeps the revisions, writes the
mesh resources that run and route them into the store, and knows their status.

    serving = ServingController(store, state_dir / REVISIONS_FILE)
    serving.reconcile()               # at start, before anything is served
    serving.watch(loop)               # then on every change of config or readiness
    serving.status_of(key)            # Knative's status of a Service, Route, ...

The derived resources are the store's source `serving`: `ami get` shows them beside
what users wrote, and node agents and proxies take them as any other config. The
revisions (immutable, one per template change) outlive the control plane in
`revisions.json`; a revision nothing routes to any more runs no instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.resources import ParseResult, parse_object
from amimesh.resources.meta import Resource
from amimesh.serving.expand import REVISION_LABEL, RevisionRecord, expand

log = logging.getLogger(__name__)

SOURCE = "serving"
REVISIONS_FILE = "revisions.json"

Key = tuple[str, str, str]


class ServingController:
    def __init__(
        self,
        store: Store,
        path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.path = path
        self._clock = clock
        self.history: list[RevisionRecord] = self._load()
        self._status: dict[Key, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = False
        self._unsubscribe: Callable[[], None] = lambda: None

    # --- reading -------------------------------------------------------------------------

    def status_of(self, key: Key) -> dict[str, Any] | None:
        """Knative's status of the Service, Configuration, Route or Revision `key`
        ((qualified kind, namespace, name)), None for anything else."""
        return self._status.get(key)

    def revisions(self) -> list[RevisionRecord]:
        return list(self.history)

    # --- reconciling ---------------------------------------------------------------------

    def reconcile(self) -> None:
        """Expand what users wrote, with the revisions so far and which are ready,
        into the `serving` source (unchanged: no store change)."""
        store = self.store
        written = [r for r in store.resources() if store.source_of(r.key) != SOURCE]
        ready = {
            (i.namespace, i.labels[REVISION_LABEL])
            for i in store.instances()
            if i.ready and REVISION_LABEL in i.labels
        }
        before = len(self.history)
        out = expand(written, self.history, ready=ready, now=self._clock())
        self.history = out.history
        if len(self.history) != before:
            for r in self.history[before:]:
                log.info("revision %s/%s created (%d)", r.namespace, r.name, r.generation)
            self._save()
        self._status = dict(out.status)
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": out.derived}, SOURCE)
        for e in parsed.errors:  # a bug of the expansion, said loudly
            log.error("serving: a derived resource is invalid: %s", e)
        resources: list[Resource] = list(parsed.resources)
        errors = store.set_source(SOURCE, ParseResult(resources=resources))
        for e in errors:
            log.warning("serving: %s", e)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reconcile after every store change (config or readiness), on `loop`; a burst
        of changes is one reconcile."""
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
            log.exception("serving: reconcile failed")

    # --- the revisions on disk -----------------------------------------------------------

    def _load(self) -> list[RevisionRecord]:
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text())
            return [RevisionRecord.from_json(r) for r in data.get("revisions", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("serving: cannot read %s (%s): revisions start anew", self.path, e)
            return []

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps({"revisions": [r.to_json() for r in self.history]}))
            os.replace(tmp, self.path)
        except OSError as e:
            log.error("serving: cannot write %s: %s", self.path, e)
