"""Knative Serving's controller in the control plane: keeps the revisions, writes the
mesh resources that run and route them into the store, and knows their status.

    serving = ServingController(store, state_dir / REVISIONS_FILE)
    serving.reconcile()               # at start, before anything is served
    serving.watch(loop)               # then on every change of config or readiness
    serving.observe(node, {instance_id: in_flight, ...})   # node agents, every second
    await serving.autoscale()         # the KPA, a tick a second, a decision every two
    serving.status_of(key)            # Knative's status of a Service, Route, ...
    serving.scaling()                 # each running revision's scale, load, activator
    serving.objects()                 # revisions, a Service's Configuration and Route
    serving.delete_revision(ns, name) # one no route references (RevisionInUse if one does)
    serving.forget(ns, configuration) # a deleted configuration's revisions go with it

The derived resources are the store's source `serving`: `ami get` shows them beside
what users wrote, and node agents and proxies take them as any other config. The
revisions (immutable, one per template change) outlive the control plane in
`revisions.json`; a revision nothing routes to any more runs no instance.

Autoscaling is Knative's KPA (`serving.kpa`): the node agents report the requests in
flight at each revision instance's inbound sidecar every second; each second the
revision's total is a sample, and every two seconds the decider and the KPA's scaler
set how many instances it runs (zero included, after a stable window idle and the
grace period) and whether its traffic goes through the activator (the node agent's,
which holds requests while the revision has no ready instance and asks for one at
once: `activate`). Without an activator a revision keeps one instance at least.

Live reload (`work_dir` given): each Service and Configuration that live reload
applies to (`serving.reload.source_dirs`) has the directory its container runs in
watched; its template carries that directory's content digest
(`ami.dev/source-digest`), so a change of the files is a new revision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.config.watch import Watches, content_digest
from amimesh.controlplane.follow import Follower
from amimesh.resources import ParseResult, knative_gc, parse_object
from amimesh.resources import knative_serving as ks
from amimesh.resources.knative_gc import GcConfig
from amimesh.resources.kube import ConfigMap
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload
from amimesh.serving import gc
from amimesh.serving import reload as serving_reload
from amimesh.serving.expand import KNATIVE_NAMESPACE, REVISION_LABEL, RevisionRecord, expand
from amimesh.serving.kpa import scaler as kpa_scaler
from amimesh.serving.kpa import status as kpa_status
from amimesh.serving.kpa.autoscaler import Autoscaler
from amimesh.serving.kpa.autoscaler_config import SettingsError
from amimesh.serving.kpa.decider import Decision, initial_excess_burst_capacity
from amimesh.serving.kpa.scaling_settings import ScalingSettings, scaling_settings
from amimesh.serving.objects import owned_objects, referenced, revision_object
from amimesh.serving.scaling import RevisionScaling

log = logging.getLogger(__name__)

SOURCE = "serving"
REVISIONS_FILE = "revisions.json"
AUTOSCALER_CONFIG = "config-autoscaler"
# Ticks between two looks for revisions that grew stale (config-gc's times).
GC_EVERY = 5
TICK_S = 1.0  # a sample a second, as Knative scrapes
DECIDE_EVERY = 2  # a decision every two ticks (Knative's tick interval: 2 s)
# A node's report older than this is no sample (the node is away).
STALE_S = 5.0
# A revision that stops taking traffic keeps its instances this long: the proxies'
# routes to it (and the activator's requests for it) are replaced meanwhile, and a
# request already on its way there is answered, not left waiting for an instance that
# is gone. (Knative's old revisions linger much longer: scale to zero after a stable
# window and a grace period.)
RETIRE_GRACE_S = 10.0

Key = tuple[str, str, str]


class RevisionInUse(Exception):
    """A revision that cannot be deleted: a route references it, or it is its
    configuration's latest (the controller would make it again)."""


@dataclass
class _Kpa:
    """One revision's autoscaling state across ticks."""

    settings: ScalingSettings
    autoscaler: Autoscaler
    status: kpa_status.PodAutoscalerStatus
    ebc: int
    proxy_since: float | None = None
    decision: Decision | None = None  # the last one (None: no data yet)


class ServingController:
    def __init__(
        self,
        store: Store,
        path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        activator_port: int | None = None,
        work_dir: Path | None = None,
        reload: bool = False,
    ) -> None:
        self.store = store
        self.path = path
        self.activator_port = activator_port
        self._clock = clock
        self._ready_once: set[tuple[str, str]] = set()  # ready at least once
        # When each revision stopped being active (routed, latest ready, preserved).
        self._inactive_since: dict[tuple[str, str], float] = {}
        self.history: list[RevisionRecord] = self._load()
        self._status: dict[Key, dict[str, Any]] = {}
        self._active: set[tuple[str, str]] = set()
        # Autoscaling: the nodes' last reports, each revision's autoscaler and scale.
        # node → (when, requests in flight per instance, requests per second per instance)
        self._in_flight: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {}
        self._kpa: dict[tuple[str, str], _Kpa] = {}
        self._scale: dict[tuple[str, str], int] = {}
        self._through: set[tuple[str, str]] = set()  # the KPA keeps the activator there
        self._retiring: dict[tuple[str, str], float] = {}  # no longer active since
        self._ticks = 0
        self._last_inputs: tuple[Any, ...] | None = None
        self._follower = Follower(store, self.reconcile, "serving")
        # Live reload: the mesh's directory (workingDir is relative to it; None: no
        # live reload), whether it applies without an annotation (`ami up --reload`),
        # each watched configuration's directory and its content's digest.
        self.work_dir = work_dir
        self.reload = reload
        self._roots: dict[tuple[str, str], Path] = {}
        self._digests: dict[tuple[str, str], str] = {}
        self._watches: Watches | None = None
        self._digesting: set[asyncio.Task[None]] = set()

    # --- reading -------------------------------------------------------------------------

    def status_of(self, key: Key) -> dict[str, Any] | None:
        """Knative's status of the Service, Configuration, Route or Revision `key`
        ((qualified kind, namespace, name)), None for anything else."""
        return self._status.get(key)

    def revisions(self) -> list[RevisionRecord]:
        return list(self.history)

    def objects(self) -> list[dict[str, Any]]:
        """What the controller made, as Knative's API shows it (`kubectl get -o json`),
        each with its status: the Configuration and the Route of every Knative Service,
        then every revision, in order of creation."""
        out: list[dict[str, Any]] = []
        for svc in self.store.resources():
            if isinstance(svc, ks.Service) and self.store.source_of(svc.key) != SOURCE:
                ns, name = svc.namespace, svc.name
                out += owned_objects(
                    svc,
                    self._status.get(("Configuration", ns, name)),
                    self._status.get(("Route", ns, name)),
                    self.created_of(svc.key),
                )
        routed = referenced(self._status)
        for r in self.history:
            status = self._status.get(("Revision", r.namespace, r.name))
            routing = f"{r.namespace}/{r.name}" in routed
            out.append(revision_object(r, status, routed=routing))
        return out

    def created_of(self, key: Key) -> float | None:
        """When the Knative Service, Configuration or Route `key` got its first
        revision (epoch seconds): when the controller first made something of it.
        None for anything else, or before its first revision."""
        kind, ns, name = key
        if kind not in (ks.Service.qualified_kind(), "Configuration", "Route"):
            return None
        for r in self.history:  # in order of creation
            if r.namespace == ns and r.configuration == name:
                return r.created
        return None

    # --- deleting ------------------------------------------------------------------------

    def delete_revision(self, namespace: str, name: str) -> bool:
        """Forget revision `name`, as deleting a Knative Revision does: False if there
        is none; `RevisionInUse`, saying why, if a route references it or it is the
        latest of a configuration in force."""
        found = next((r for r in self.history if (r.namespace, r.name) == (namespace, name)), None)
        if found is None:
            return False
        routes = referenced(self._status).get(f"{namespace}/{name}")
        if routes:
            raise RevisionInUse(
                f"revision {namespace}/{name} is referenced by the traffic of route "
                f"{', '.join(sorted(routes))}: move its traffic and tags elsewhere first"
            )
        mine = [
            r
            for r in self.history
            if (r.namespace, r.configuration) == (namespace, found.configuration)
        ]
        if mine[-1] is found and self._in_force(namespace, found.configuration):
            raise RevisionInUse(
                f"revision {namespace}/{name} is the latest of configuration "
                f"{found.configuration}: Knative would make it again; change the template "
                "to make a newer one, or delete the configuration (or its Service)"
            )
        self._drop({(namespace, name)})
        log.info("revision %s/%s deleted", namespace, name)
        return True

    def forget(self, namespace: str, configuration: str) -> list[str]:
        """The Knative Service or Configuration `configuration` was deleted: its
        revisions go with it, as Kubernetes' garbage collector deletes what an object
        owns. Nothing if one of that name is still in force (a config file's). The
        names of the revisions deleted."""
        if self._in_force(namespace, configuration):
            return []
        gone = [
            r.name
            for r in self.history
            if (r.namespace, r.configuration) == (namespace, configuration)
        ]
        if gone:
            self._drop({(namespace, n) for n in gone})
            log.info("revisions of %s/%s deleted: %s", namespace, configuration, ", ".join(gone))
        return gone

    def _in_force(self, namespace: str, configuration: str) -> bool:
        return any(
            isinstance(r, ks.Service | ks.Configuration)
            and (r.namespace, r.name) == (namespace, configuration)
            for r in self.store.resources()
        )

    def _drop(self, keys: set[tuple[str, str]]) -> None:
        self.history = [r for r in self.history if (r.namespace, r.name) not in keys]
        self._ready_once -= keys
        for key in keys:
            self._inactive_since.pop(key, None)
            self._kpa.pop(key, None)
            self._scale.pop(key, None)
            self._through.discard(key)
        self._save()
        self.reconcile()

    # --- reconciling ---------------------------------------------------------------------

    def reconcile(self) -> None:
        """Expand what users wrote, with the revisions so far and which are ready,
        into the `serving` source (unchanged: no store change)."""
        store = self.store
        ready = {
            (i.namespace, i.labels[REVISION_LABEL])
            for i in store.instances()
            if i.ready and REVISION_LABEL in i.labels
        }
        # Most store changes are instances of plain workloads coming and going: with
        # the same config, ready revisions, scales and activator places, the output is
        # the same, and nothing is expanded again.
        inputs = self._inputs(ready)
        if inputs == self._last_inputs:
            return
        written = [r for r in store.resources() if store.source_of(r.key) != SOURCE]
        written = self._with_digests(written)
        before = len(self.history)
        fresh = ready - self._ready_once
        self._ready_once |= ready
        out = expand(
            written,
            self.history,
            ready=ready,
            ready_once=self._ready_once,
            scale=self._scale,
            activator_port=self.activator_port,
            through_activator=self._through,
            now=self._clock(),
        )
        self.history = out.history
        self._active = out.active
        if len(self.history) != before or fresh:
            for r in self.history[before:]:
                log.info("revision %s/%s created (%d)", r.namespace, r.name, r.generation)
            self._save()
        self._status = dict(out.status)
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": out.derived}, SOURCE)
        for e in parsed.errors:  # a bug of the expansion, said loudly
            log.error("serving: a derived resource is invalid: %s", e)
        resources: list[Resource] = list(parsed.resources)
        errors = store.set_source(SOURCE, ParseResult(resources=resources))
        self._last_inputs = self._inputs(ready)
        for e in errors:
            log.warning("serving: %s", e)
        self.collect_garbage()

    # --- garbage collection --------------------------------------------------------------

    def collect_garbage(self) -> list[str]:
        """Knative's revision GC (`serving.gc`, settings from `config-gc`): note when
        each revision stopped being active, and delete what the settings let go. The
        names ("namespace/name") of the revisions deleted."""
        now = self._clock()
        active = self._active_revisions()
        changed = False
        for r in self.history:
            key = (r.namespace, r.name)
            if key in active:
                changed |= self._inactive_since.pop(key, None) is not None
            elif key not in self._inactive_since:
                self._inactive_since[key] = now
                changed = True
        config = self._gc_config()
        by_config: dict[tuple[str, str], list[gc.Candidate]] = {}
        for r in self.history:
            key = (r.namespace, r.name)
            by_config.setdefault((r.namespace, r.configuration), []).append(
                gc.Candidate(r.name, r.created, self._inactive_since.get(key, now), key in active)
            )
        doomed = {
            (ns, name)
            for (ns, _), candidates in by_config.items()
            for name in gc.collect(candidates, config, now)
        }
        if doomed:
            log.info(
                "revisions collected (config-gc): %s",
                ", ".join(f"{ns}/{n}" for ns, n in sorted(doomed)),
            )
            self._drop(doomed)
        elif changed:
            self._save()
        return [f"{ns}/{n}" for ns, n in sorted(doomed)]

    def _active_revisions(self) -> set[tuple[str, str]]:
        """Routed (a share or a tag), the latest ready or created of their
        configuration, or annotated `serving.knative.dev/no-gc: "true"`."""
        out: set[tuple[str, str]] = set()
        for key in referenced(self._status):
            ns, _, name = key.partition("/")
            out.add((ns, name))
        for (kind, ns, _), status in self._status.items():
            if kind != "Configuration":
                continue
            # The latest created is not yet routed (Knative's routing state "pending").
            for field in ("latestReadyRevisionName", "latestCreatedRevisionName"):
                if status.get(field):
                    out.add((ns, str(status[field])))
        for r in self.history:
            if str(r.annotations.get(gc.PRESERVE_ANNOTATION, "")).lower() == "true":
                out.add((r.namespace, r.name))
        return out

    def _gc_config(self) -> GcConfig:
        for r in self.store.resources():
            if (
                isinstance(r, ConfigMap)
                and r.namespace == KNATIVE_NAMESPACE
                and r.name == knative_gc.CONFIG_NAME
            ):
                try:
                    return knative_gc.parse(r.data)
                except knative_gc.GcConfigError as e:  # validation refuses it first
                    log.warning("serving: config-gc: %s: %s", e.key, e)
        return GcConfig()

    # --- autoscaling ---------------------------------------------------------------------

    def observe(
        self, node: str, in_flight: dict[str, float], rps: dict[str, float] | None = None
    ) -> None:
        """A node agent's report: requests in flight per instance (id → count), and
        requests per second (for revisions whose metric is `rps`)."""
        self._in_flight[node] = (self._clock(), dict(in_flight), dict(rps or {}))

    def scale_of(self, namespace: str, revision: str) -> int | None:
        """The instances the autoscaler wants for a revision (None: not decided)."""
        return self._scale.get((namespace, revision))

    def through_activator(self, namespace: str, revision: str) -> bool:
        return (namespace, revision) in self._through

    def scaling(self) -> list[RevisionScaling]:
        """Each revision that runs (takes traffic, or is its configuration's latest),
        in order of creation: its scale, ready instances, observed load and panic as
        of its autoscaler's last decision, and whether the activator is in its path.
        Reads only."""
        ready = Counter(
            (i.namespace, i.labels[REVISION_LABEL])
            for i in self.store.instances()
            if i.ready and REVISION_LABEL in i.labels
        )
        routed = referenced(self._status)
        out: list[RevisionScaling] = []
        for r in self.history:
            key = (r.namespace, r.name)
            if key not in self._active:
                continue
            # As `expand` routes: through the activator while the KPA keeps it there,
            # and while the revision has no ready instance.
            activator = (
                self.activator_port is not None
                and f"{r.namespace}/{r.name}" in routed
                and (key in self._through or ready[key] == 0)
            )
            row = RevisionScaling(
                namespace=r.namespace,
                revision=r.name,
                configuration=r.configuration,
                service=r.service,
                ready=ready[key],
                activator=activator,
                requested=self._scale.get(key),
            )
            kpa = self._kpa.get(key)
            if kpa is not None:
                d = kpa.decision
                row = replace(
                    row,
                    metric=kpa.settings.metric,
                    target=kpa.settings.target,
                    excess_burst_capacity=kpa.ebc,
                    active=kpa.status.active,
                    desired=d.desired if d else None,
                    observed_stable=d.observed_stable if d else None,
                    observed_panic=d.observed_panic if d else None,
                    panic=d.panic if d else False,
                )
            out.append(row)
        return out

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
        if self._ticks % GC_EVERY == 0:
            self.collect_garbage()
        deciding = self._ticks % DECIDE_EVERY == 0
        config = self._autoscaler_config()
        fresh: dict[str, float] = {}
        fresh_rps: dict[str, float] = {}
        for when, values, rates in self._in_flight.values():
            if now - when <= STALE_S:
                fresh.update(values)
                fresh_rps.update(rates)
        ready: dict[tuple[str, str], list[str]] = {}
        for i in self.store.instances():
            revision = i.labels.get(REVISION_LABEL)
            if revision and i.ready:
                ready.setdefault((i.namespace, revision), []).append(i.id)
        changed = False
        for r in self.history:
            key = (r.namespace, r.name)
            if key not in self._active:
                self._kpa.pop(key, None)
                self._through.discard(key)
                if key in self._scale:
                    since = self._retiring.setdefault(key, now)
                    if now - since < RETIRE_GRACE_S:
                        continue  # its instances serve what is on its way to them
                    del self._scale[key]
                    changed = True
                self._retiring.pop(key, None)
                continue
            self._retiring.pop(key, None)
            ids = ready.get(key, [])
            proxied = key in self._through
            kpa = self._kpa_of(r, config, now, len(ids))
            changed |= (key in self._through) != proxied  # a new revision's proxy mode
            if kpa is None:
                continue
            if ids:  # with no instance there is nothing to scrape
                metric = fresh_rps if kpa.settings.metric == "rps" else fresh
                kpa.autoscaler.record(now, sum(metric.get(iid, 0.0) for iid in ids))
            if deciding:
                changed |= self._decide(key, kpa, len(ids), now)
        if changed:
            self.reconcile()

    def _decide(self, key: tuple[str, str], kpa: _Kpa, ready: int, now: float) -> bool:
        """One KPA reconcile of a revision: its scale and the activator's place;
        whether either changed."""
        settings = kpa.settings
        decision = kpa.autoscaler.scale(now, ready)
        desired = decision.desired if decision is not None else kpa_scaler.SCALE_UNKNOWN
        if decision is not None:
            kpa.ebc = decision.excess_burst_capacity
            kpa.decision = decision
        current = self._scale.get(key, settings.initial_scale)
        path = kpa_scaler.ActivatorPath(
            proxy_mode=key in self._through, since=kpa.proxy_since, reached=True
        )
        step = kpa_scaler.scale(settings, kpa.status, desired, current=current, now=now, path=path)
        want = step.scale if step.apply and step.scale >= 0 else current
        if self.activator_port is None:
            want = max(want, 1)  # nothing would hold its requests at zero
        kpa.status = kpa_status.next_status(
            settings, kpa.status, want=step.scale, ready=ready, now=now
        )
        through = self.activator_port is not None and kpa_status.activator_in_path(want, kpa.ebc)
        changed = False
        if through != (key in self._through):
            kpa.proxy_since = now if through else None
            (self._through.add if through else self._through.discard)(key)
            changed = True
        if self._scale.get(key) != want:
            log.info(
                "autoscaler: %s/%s to %d (%s)",
                key[0],
                key[1],
                want,
                "no data yet"
                if decision is None
                else f"observed {decision.observed_stable:.2f} stable, "
                f"{decision.observed_panic:.2f} panic" + (", panicking" if decision.panic else ""),
            )
            self._scale[key] = want
            changed = True
        return changed

    def activate(self, namespace: str, revision: str) -> bool:
        """A request waits at the activator for `revision`: give it an instance now,
        not at the next tick. False if no such revision takes traffic."""
        key = (namespace, revision)
        if key not in self._active:
            return False
        kpa = self._kpa.get(key)
        floor = max(1, kpa.settings.activation_scale) if kpa is not None else 1
        if self._current_scale(key) < floor:
            log.info("activator: %s/%s from zero to %d", namespace, revision, floor)
            self._scale[key] = floor
            # From zero the activator stays in the path (Knative's proxy mode) until a
            # decision finds burst capacity to spare, not only while nothing is ready.
            if key not in self._through:
                self._through.add(key)
                if kpa is not None:
                    kpa.proxy_since = self._clock()
            if kpa is not None:
                kpa.status = kpa_status.next_status(
                    kpa.settings, kpa.status, want=floor, ready=0, now=self._clock()
                )
            self.reconcile()
        return True

    def _current_scale(self, key: tuple[str, str]) -> int:
        """The instances a revision runs now: the autoscaler's, or before its first
        decision the revision's initial scale (its Workload's replicas)."""
        scale = self._scale.get(key)
        if scale is not None:
            return scale
        for r in self.store.resources():
            if isinstance(r, Workload) and (r.namespace, r.name) == key:
                return r.spec.replicas
        return 0

    def _kpa_of(
        self, r: RevisionRecord, config: dict[str, str], now: float, ready: int
    ) -> _Kpa | None:
        key = (r.namespace, r.name)
        try:
            settings = scaling_settings(
                r.annotations, config, container_concurrency=r.spec.containerConcurrency or 0
            )
        except SettingsError as e:
            log.warning("autoscaler: %s/%s: %s", r.namespace, r.name, e)
            return None
        found = self._kpa.get(key)
        if found is None:
            found = self._kpa[key] = _Kpa(
                settings,
                Autoscaler(settings, ready=ready, now=now),
                kpa_status.new_status(now),
                initial_excess_burst_capacity(settings),
            )
            # A new revision starts in proxy mode when its initial burst capacity says
            # so (as Knative's serverless service does), before its first decision.
            if self.activator_port is not None and kpa_status.activator_in_path(
                max(ready, 1), found.ebc
            ):
                self._through.add(key)
                found.proxy_since = now
        elif found.settings != settings:
            found.autoscaler.update(settings, now)
            found.settings = settings
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

    def _inputs(self, ready: set[tuple[str, str]]) -> tuple[Any, ...]:
        """What the expansion depends on, besides the clock for a new revision."""
        return (
            self.store.config_version,
            frozenset(ready),
            tuple((r.namespace, r.name) for r in self.history),
            tuple(sorted(self._scale.items())),
            frozenset(self._through),
            tuple(sorted(self._digests.items())),
        )

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reconcile after every store change (config or readiness), on `loop`; a burst
        of changes is one reconcile."""
        self._follower.watch(loop)

    def close(self) -> None:
        self._follower.close()
        if self._watches is not None:
            self._watches.cancel()
        for task in self._digesting:
            task.cancel()

    # --- live reload ---------------------------------------------------------------------

    def _with_digests(self, written: list[Resource]) -> list[Resource]:
        """`written` with live reload's digests on the templates it applies to; the
        watches follow. A directory seen for the first time is digested at once (a
        bounded read), so that the first revision carries its digest already."""
        if self.work_dir is None:
            return written
        dirs = serving_reload.source_dirs(written, default=self.reload)
        roots = {key: (self.work_dir / rel).resolve() for key, rel in dirs.items()}
        for key, root in roots.items():
            if key not in self._digests or self._roots.get(key) != root:
                self._digests[key] = content_digest(root)
        for key in set(self._digests) - set(roots):
            del self._digests[key]
        self._roots = roots
        if roots and self._watches is None:
            self._watches = Watches(self._files_changed)
        if self._watches is not None:
            self._watches.set({f"{ns}/{name}": root for (ns, name), root in roots.items()})
        return serving_reload.stamped(written, self._digests)

    def _files_changed(self, watched: str) -> None:
        ns, _, name = watched.partition("/")
        root = self._roots.get((ns, name))
        if root is None:
            return
        task = asyncio.create_task(self._redigest((ns, name), root), name=f"digest-{watched}")
        self._digesting.add(task)
        task.add_done_callback(self._digesting.discard)

    async def _redigest(self, key: tuple[str, str], root: Path) -> None:
        digest = await asyncio.to_thread(content_digest, root)
        if self._roots.get(key) != root or self._digests.get(key) == digest:
            return  # moved meanwhile, or the same content (a file touched, saved as it was)
        self._digests[key] = digest
        log.info("live reload: %s/%s changed: a new revision", *key)
        self.reconcile()

    # --- the revisions on disk -----------------------------------------------------------

    def _load(self) -> list[RevisionRecord]:
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text())
            self._ready_once = {(str(ns), str(name)) for ns, name in data.get("ready", [])}
            self._inactive_since = {
                (str(ns), str(name)): float(t) for ns, name, t in data.get("inactive_since", [])
            }
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
            data = {
                "revisions": [r.to_json() for r in self.history],
                "ready": sorted(self._ready_once),
                "inactive_since": sorted(
                    [ns, name, t] for (ns, name), t in self._inactive_since.items()
                ),
            }
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError as e:
            log.error("serving: cannot write %s: %s", self.path, e)
