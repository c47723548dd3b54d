"""Knative Serving's controller in the control plane: keeps the revisions, writes the
mesh resources that run and route them into the store, and knows their status.

    serving = ServingController(store, state_dir / REVISIONS_FILE)
    serving.reconcile()               # at start, before anything is served
    serving.watch(loop)               # then on every change of config or readiness
    serving.observe(node, {instance_id: in_flight, ...})   # node agents, every second
    await serving.autoscale()         # the KPA, a tick a second, a decision every two
    serving.status_of(key)            # Knative's status of a Service, Route, ...

The derived resources are the store's source `serving`: `ami get` shows them beside
what users wrote, and node agents and proxies take them as any other config. The
revisions (immutable, one per template change) outlive the control plane in
`revisions.json`; a revision nothing routes to any more runs no instance.

Autoscaling is Knative's KPA (`serving.kpa`): the node agents report the requests in
flight at each revision instance's inbound sidecar every second; each second the
revision's total is a sample, and every two seconds its decision sets how many
instances it runs, within its min and max scale. Until the activator holds requests
for a revision at zero, a revision that takes traffic keeps one instance at least.
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
from amimesh.resources.kube import ConfigMap
from amimesh.resources.meta import Resource
from amimesh.serving.expand import KNATIVE_NAMESPACE, REVISION_LABEL, RevisionRecord, expand
from amimesh.serving.kpa.autoscaler import Autoscaler
from amimesh.serving.kpa.autoscaler_config import SettingsError
from amimesh.serving.kpa.scaling_settings import ScalingSettings, scaling_settings

log = logging.getLogger(__name__)

SOURCE = "serving"
REVISIONS_FILE = "revisions.json"
AUTOSCALER_CONFIG = "config-autoscaler"
TICK_S = 1.0  # a sample a second, as Knative scrapes
DECIDE_EVERY = 2  # a decision every two ticks (Knative's tick interval: 2 s)
# A node's report older than this is no sample (the node is away).
STALE_S = 5.0

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
        self._active: set[tuple[str, str]] = set()
        # Autoscaling: the nodes' last reports, each revision's autoscaler and scale.
        self._in_flight: dict[str, tuple[float, dict[str, float]]] = {}
        self._autoscalers: dict[tuple[str, str], tuple[ScalingSettings, Autoscaler]] = {}
        self._scale: dict[tuple[str, str], int] = {}
        self._ticks = 0
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
        out = expand(written, self.history, ready=ready, scale=self._scale, now=self._clock())
        self.history = out.history
        self._active = out.active
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

    # --- autoscaling ---------------------------------------------------------------------

    def observe(self, node: str, in_flight: dict[str, float]) -> None:
        """A node agent's report: requests in flight per instance (id → count)."""
        self._in_flight[node] = (self._clock(), dict(in_flight))

    def scale_of(self, namespace: str, revision: str) -> int | None:
        """The instances the autoscaler wants for a revision (None: not decided)."""
        return self._scale.get((namespace, revision))

    async def autoscale(self) -> None:
        """For ever (an owned task): a tick a second."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick(self._clock())
            except Exception:
                log.exception("serving: autoscaler tick failed")

    def tick(self, now: float) -> None:
        """One second: a sample per revision that runs; every `DECIDE_EVERY` ticks, a
        decision, and the revisions whose scale changed run the new one."""
        self._ticks += 1
        deciding = self._ticks % DECIDE_EVERY == 0
        config = self._autoscaler_config()
        fresh: dict[str, float] = {}
        for when, values in self._in_flight.values():
            if now - when <= STALE_S:
                fresh.update(values)
        ready: dict[tuple[str, str], list[str]] = {}
        for i in self.store.instances():
            revision = i.labels.get(REVISION_LABEL)
            if revision and i.ready:
                ready.setdefault((i.namespace, revision), []).append(i.id)
        changed = False
        for r in self.history:
            key = (r.namespace, r.name)
            if key not in self._active:
                self._autoscalers.pop(key, None)
                changed |= self._scale.pop(key, None) is not None
                continue
            scaler = self._autoscaler(r, config, now, len(ready.get(key, [])))
            if scaler is None:
                continue
            settings, autoscaler = scaler
            ids = ready.get(key, [])
            if ids:  # with no instance there is nothing to scrape
                autoscaler.record(now, sum(fresh.get(iid, 0.0) for iid in ids))
            if not deciding:
                continue
            decision = autoscaler.scale(now, len(ids))
            if decision is None:
                continue
            want = max(decision.desired, settings.min_scale, 1)
            if settings.max_scale:
                want = min(want, settings.max_scale)
            if self._scale.get(key) != want:
                log.info(
                    "autoscaler: %s/%s to %d (observed %.2f stable, %.2f panic%s)",
                    r.namespace,
                    r.name,
                    want,
                    decision.observed_stable,
                    decision.observed_panic,
                    ", panicking" if decision.panic else "",
                )
                self._scale[key] = want
                changed = True
        if changed:
            self.reconcile()

    def _autoscaler(
        self, r: RevisionRecord, config: dict[str, str], now: float, ready: int
    ) -> tuple[ScalingSettings, Autoscaler] | None:
        key = (r.namespace, r.name)
        try:
            settings = scaling_settings(
                r.annotations, config, container_concurrency=r.spec.containerConcurrency or 0
            )
        except SettingsError as e:
            log.warning("autoscaler: %s/%s: %s", r.namespace, r.name, e)
            return None
        found = self._autoscalers.get(key)
        if found is None:
            found = (settings, Autoscaler(settings, ready=ready, now=now))
        elif found[0] != settings:
            found[1].update(settings, now)
            found = (settings, found[1])
        self._autoscalers[key] = found
        return found

    def _autoscaler_config(self) -> dict[str, str]:
        for r in self.store.resources():
            if (
                isinstance(r, ConfigMap)
                and r.namespace == KNATIVE_NAMESPACE
                and r.name == AUTOSCALER_CONFIG
            ):
                return dict(r.data)
        return {}

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
