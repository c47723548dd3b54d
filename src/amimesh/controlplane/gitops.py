"""Argo CD Applications in the control plane: each Application's repository revision
is one store source (`gitops:NAMESPACE/NAME`), all or nothing, synced by hand or
automatically, with Argo CD's status.

    gitops = GitOpsController(store, state_dir, poll_s=3.0, knative_status=serving.status_of)
    gitops.watch(loop)                  # poll the repositories; watch local refs; follow the store
    await gitops.on_push(push)          # a push webhook: refresh the Applications it concerns
    await gitops.sync("default", "guestbook", revision=None, prune=False)
    await gitops.diff("default", "guestbook")
    gitops.status_of(("Application", "default", "guestbook"))

A poll fetches each Application's repository, resolves `targetRevision` to a commit
and, when the commit or the Application changed, reads and parses its manifests
(bounded: `gitops.manifests`). A revision that does not parse is never synced: the
source keeps its last good resources and the errors are reported with file and
field. A local repository's refs are also watched (`gitops.refwatch`, every
`watch_s`): a commit to it is refreshed at once rather than at the next poll, and a
push webhook (`on_push`) refreshes the Applications it concerns. Automated sync
syncs each new commit once; `prune` lets a sync delete what the repository no longer
has (otherwise those resources stay, OutOfSync, requiring
pruning); `selfHeal` syncs again whenever the mesh drifts from the revision (an
`ami apply` over one of its resources). Every sync removes such hand-made overrides,
as Argo CD's sync overwrites them.

Git runs in worker threads; the controller's state changes only on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amimesh.config.store import API_SOURCE, Key, Store
from amimesh.controlplane import api_json
from amimesh.controlplane.follow import Follower
from amimesh.gitops import compare as cmp
from amimesh.gitops import health, manifests, refwatch, repocreds
from amimesh.gitops import webhook as hooks
from amimesh.gitops.repo import GitError, Mirror, is_remote
from amimesh.gitops.repocreds import Credentials, Unsupported
from amimesh.resources import ConfigError, ParseResult, parse_object
from amimesh.resources.argocd import Application, ApplicationSource
from amimesh.resources.meta import Resource
from amimesh.serving.objects import timestamp

log = logging.getLogger(__name__)

SOURCE_PREFIX = "gitops:"
STATE_FILE = "gitops.json"
DEFAULT_POLL_S = 3.0
# A remote repository is fetched at most this often by the poll (Argo CD's default
# `timeout.reconciliation`); a change of its Application, a webhook or `ami app sync`
# read it at once.
REMOTE_POLL_S = 180.0
DEFAULT_WATCH_S = 0.2
FINALIZER = "resources-finalizer.argocd.argoproj.io"
MAX_STATE_FILE = 16 * 1024 * 1024


def source_name(namespace: str, name: str) -> str:
    return f"{SOURCE_PREFIX}{namespace}/{name}"


class AppNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Loaded:
    """A revision read from git: its commit, and its resources or why there are none."""

    commit: str
    revision: str
    result: ParseResult | None = None
    error: str = ""


@dataclass
class AppState:
    spec: Any = None  # the Application's spec at the last poll (a change re-reads git)
    target: Loaded | None = None  # the target revision, as last read
    synced: str = ""  # the commit of the last successful sync
    auto_tried: str = ""  # the last commit automated sync tried
    operation: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    reconciled_at: float = 0.0
    cascade: bool = False  # Argo CD's resources finalizer: deleting it deletes them
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class GitOpsController:
    def __init__(
        self,
        store: Store,
        state_dir: Path | None,
        *,
        poll_s: float = DEFAULT_POLL_S,
        remote_poll_s: float = REMOTE_POLL_S,
        watch_s: float = DEFAULT_WATCH_S,
        knative_status: Callable[[Key], Mapping[str, Any] | None] = lambda _k: None,
        instance_rows: Callable[[], list[dict[str, Any]] | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.remote_poll_s = remote_poll_s
        self.watch_s = watch_s
        self._knative_status = knative_status
        self._instance_rows = instance_rows
        self._clock = clock
        self._dir = state_dir
        self._repos = (state_dir / "gitops" / "repos") if state_dir else None
        self._apps: dict[Key, AppState] = {}
        self._follower = Follower(store, self._on_store_change, "gitops")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._urls: frozenset[str] = frozenset()  # the Applications' repositories
        self._tmp: Path | None = None
        self._written: Any = None

    # --- lifecycle ---------------------------------------------------------------------

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._urls = _repo_urls(self.applications())
        self._follower.watch(loop)
        self._task = loop.create_task(self._run(), name="gitops")
        if self.watch_s > 0:
            self._watch_task = loop.create_task(self._watch_refs(), name="gitops-refs")

    async def close(self) -> None:
        self._follower.close()
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._watch_task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a change while polling wakes the next round at once
            for app in self.applications():
                if self._polled_lately(app):
                    continue
                try:
                    await self.refresh(app.namespace, app.name)
                except AppNotFound:
                    pass
                except Exception:
                    log.exception("gitops: %s: refresh failed", app.ref)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    def _polled_lately(self, app: Application) -> bool:
        """A remote repository read less than `remote_poll_s` ago, for an Application
        that has not changed since: the poll leaves it for now."""
        src = app.spec.source
        st = self._apps.get(app.key)
        if src is None or not is_remote(src.repoURL) or st is None or st.target is None:
            return False
        fresh = self._clock() - st.reconciled_at < self.remote_poll_s
        return fresh and st.spec == app.spec.model_dump()

    async def _watch_refs(self) -> None:
        """Every `watch_s`, the refs of each local repository an Application names: when
        they moved, its Applications are refreshed now, not at the next poll."""
        seen: dict[str, refwatch.Fingerprint | None] = {}
        while True:
            await asyncio.sleep(self.watch_s)
            urls = self._urls  # kept by _on_store_change: no scan of the store per look
            if not urls:
                seen = {}
                continue
            try:
                now = await asyncio.to_thread(_fingerprints, urls)
            except Exception:
                log.exception("gitops: reading local refs failed")
                continue
            # A repository seen for the first time counts as moved: a commit between the
            # Application's first read and this look would otherwise wait for the poll.
            moved = {u for u, f in now.items() if f is not None and seen.get(u) != f}
            seen = now
            if moved:
                await self._refresh_where(functools.partial(_names_one_of, moved))

    async def on_push(self, push: hooks.Push) -> list[str]:
        """A push webhook: refresh (and, by their policy, sync) the Applications it
        concerns now; their `namespace/name`."""
        return await self._refresh_where(
            lambda src: hooks.concerns(push, src.repoURL, src.targetRevision)
        )

    async def _refresh_where(self, wanted: Callable[[ApplicationSource], bool]) -> list[str]:
        done = []
        for app in self.applications():
            if app.spec.source is None or not wanted(app.spec.source):
                continue
            try:
                await self.refresh(app.namespace, app.name)
            except AppNotFound:
                continue
            except Exception:
                log.exception("gitops: %s: refresh failed", app.ref)
                continue
            done.append(f"{app.namespace}/{app.name}")
        return done

    # --- reading -----------------------------------------------------------------------

    def applications(self) -> list[Application]:
        return sorted(
            (r for r in self.store.resources() if isinstance(r, Application)),
            key=lambda r: r.key,
        )

    def _app(self, namespace: str, name: str) -> Application:
        found = self.store.get(("Application", namespace, name))
        if not isinstance(found, Application):
            raise AppNotFound(f'applications.argoproj.io "{name}" not found in {namespace}')
        return found

    def _state(self, key: Key) -> AppState:
        return self._apps.setdefault(key, AppState())

    # --- git (in a worker thread) ------------------------------------------------------

    def _mirror(self, url: str) -> Mirror:
        root = self._repos
        if root is None:
            if self._tmp is None:
                import tempfile

                self._tmp = Path(tempfile.mkdtemp(prefix="ami-gitops-"))
            root = self._tmp
        return Mirror(url.removeprefix("file://"), root)

    def _credentials(self, app: Application) -> Credentials | Unsupported | None:
        """The credentials of the Application's repository: Argo CD's repository Secrets
        in the store (read on the event loop, handed to the worker thread)."""
        src = app.spec.source
        if src is None or not is_remote(src.repoURL):
            return None
        return repocreds.find(src.repoURL, self.store.resources())

    def _load(
        self,
        app: Application,
        revision: str,
        cached: Loaded | None,
        credentials: Credentials | Unsupported | None = None,
    ) -> Loaded:
        """Fetch, resolve `revision`, and read its manifests (unless `cached` is that
        commit already). Runs in a worker thread."""
        src = app.spec.source
        assert src is not None  # checked by checks_argocd
        if isinstance(credentials, Unsupported):
            return Loaded("", revision, error=f"repository {src.repoURL}: {credentials.message}")
        mirror = self._mirror(src.repoURL)
        try:
            mirror.fetch(credentials)
            commit = mirror.resolve(revision)
        except GitError as err:
            return Loaded("", revision, error=f"repository {src.repoURL}: {err}")
        if cached is not None and cached.commit == commit and cached.result is not None:
            return cached
        directory = src.directory
        try:
            entries = mirror.tree(commit, src.path, recurse=bool(directory and directory.recurse))
            chosen = manifests.select(entries, directory)
            if isinstance(chosen, manifests.Refused):
                return Loaded(commit, revision, error=f"{commit[:7]}:{src.path}: {chosen.message}")
            blobs = mirror.read([e.oid for e in chosen])
        except GitError as err:
            return Loaded(commit, revision, error=str(err))
        result = manifests.parse(
            commit, src.path, list(zip(chosen, blobs, strict=True)), app.spec.destination.namespace
        )
        return Loaded(commit, revision, result)

    # --- refresh and sync --------------------------------------------------------------

    async def refresh(self, namespace: str, name: str) -> None:
        """Read the target revision now; sync it if the policy says so."""
        app = self._app(namespace, name)
        st = self._state(app.key)
        st.cascade = FINALIZER in (app.metadata.finalizers or [])
        async with st.lock:
            src = app.spec.source
            assert src is not None
            spec = app.spec.model_dump()
            cached = st.target if spec == st.spec else None
            loaded = await asyncio.to_thread(
                self._load, app, src.targetRevision, cached, self._credentials(app)
            )
            st.target, st.spec, st.reconciled_at = loaded, spec, self._clock()
            self._auto(app, st)
        self._save_state()

    def _auto(self, app: Application, st: AppState) -> None:
        """Automated sync: each new commit once; with selfHeal, whenever out of sync."""
        auto, loaded = app.automated, st.target
        if auto is None or loaded is None or not loaded.commit:
            return
        if loaded.result is not None and loaded.result.ok:
            plan = self._plan(app, loaded.result.resources, prune=auto.prune)
            if not plan.needs_sync:
                st.auto_tried = loaded.commit
                return
        last_ok = (st.operation or {}).get("phase") == "Succeeded"
        if loaded.commit != st.auto_tried or (auto.selfHeal and last_ok):
            st.auto_tried = loaded.commit
            self._sync(app, st, loaded, prune=auto.prune, initiated={"automated": True})

    async def sync(
        self, namespace: str, name: str, *, revision: str | None = None, prune: bool = False
    ) -> dict[str, Any]:
        """A manual sync (`ami app sync`): the target revision, or `revision`;
        returns the operation's state."""
        app = self._app(namespace, name)
        if revision is not None and (not revision or revision.startswith("-")):
            raise ValueError(f"revision {revision!r}: not a branch, a tag or a commit")
        st = self._state(app.key)
        async with st.lock:
            src = app.spec.source
            assert src is not None
            wanted = revision or src.targetRevision
            loaded = await asyncio.to_thread(
                self._load, app, wanted, st.target, self._credentials(app)
            )
            if revision is None:
                st.target, st.reconciled_at = loaded, self._clock()
            self._sync(app, st, loaded, prune=prune, initiated={"username": "ami"})
            operation = dict(st.operation or {})
        self._save_state()
        return operation

    def _sync(
        self,
        app: Application,
        st: AppState,
        loaded: Loaded,
        *,
        prune: bool,
        initiated: dict[str, Any],
    ) -> None:
        started = self._clock()
        operation = {
            "operation": {
                "sync": {"revision": loaded.commit or loaded.revision, "prune": prune},
                "initiatedBy": initiated,
            },
            "startedAt": timestamp(started),
        }
        if loaded.result is None or not loaded.result.ok:
            errors = [loaded.error] if loaded.result is None else _lines(loaded.result.errors)
            if loaded.result is not None:
                # Kept beside the source's last good resources, as a directory's are.
                self.store.set_source(
                    source_name(app.namespace, app.name), ParseResult(errors=loaded.result.errors)
                )
            st.operation = {
                **operation,
                "phase": "Failed",
                "message": "ComparisonError: " + "; ".join(errors),
                "finishedAt": timestamp(self._clock()),
            }
            log.warning("gitops: %s: sync of %s failed: %s", app.ref, loaded.revision, errors)
            return
        changed = self._apply(app, st, loaded, prune=prune)
        if isinstance(changed, str):
            st.operation = {
                **operation,
                "phase": "Failed",
                "message": changed,
                "finishedAt": timestamp(self._clock()),
            }
            log.warning("gitops: %s: sync of %s failed: %s", app.ref, loaded.commit[:7], changed)
            return
        st.operation = {
            **operation,
            "phase": "Succeeded",
            "message": "successfully synced (all tasks run)",
            "finishedAt": timestamp(self._clock()),
            "syncResult": {"revision": loaded.commit, "resources": changed},
        }
        st.history.append(
            {
                "id": (st.history[-1]["id"] + 1) if st.history else 0,
                "revision": loaded.commit,
                "deployStartedAt": timestamp(started),
                "deployedAt": timestamp(self._clock()),
                "source": _source_json(app),
                "initiatedBy": initiated,
            }
        )
        del st.history[: -app.spec.revisionHistoryLimit]
        log.info("gitops: %s synced to %s", app.ref, loaded.commit[:7])
        self._save_state()

    def _apply(
        self,
        app: Application,
        st: AppState,
        loaded: Loaded,
        *,
        prune: bool,
    ) -> list[dict[str, Any]] | str:
        """Put the revision's resources in the Application's source and take back
        hand-made overrides; the resources changed, or why nothing was."""
        assert loaded.result is not None
        desired = loaded.result.resources
        source = source_name(app.namespace, app.name)
        plan = self._plan(app, desired, prune=prune)
        auto = app.automated
        if prune and not desired and plan.pruned and not (auto and auto.allowEmpty):
            return "refusing to prune every resource: set syncPolicy.automated.allowEmpty"
        errors = self.store.set_source(source, ParseResult(resources=list(plan.resources)))
        if errors:
            return "; ".join(_lines(errors))
        overridden = [r.key for r in plan.resources if self.store.source_of(r.key) == API_SOURCE]
        self.store.delete(overridden)
        st.synced = loaded.commit
        out = []
        for row in plan.rows:
            if row.action in ("unchanged", "keep"):
                continue
            kind, ns, name = row.key
            out.append(
                {
                    "group": row.group,
                    "version": row.version,
                    "kind": kind.split(".")[0],
                    "namespace": ns,
                    "name": name,
                    "status": "Pruned" if row.action == "prune" else "Synced",
                    "message": {"create": "created", "update": "configured"}.get(
                        row.action, "pruned"
                    ),
                    "syncPhase": "Sync",
                }
            )
        return out

    def _plan(self, app: Application, desired: list[Resource], *, prune: bool) -> cmp.Plan:
        source = source_name(app.namespace, app.name)
        owned = self.store.source_resources(source)
        live: dict[Key, tuple[Resource, str]] = {}
        for key in {*owned, *(r.key for r in desired)}:
            r, where = self.store.get(key), self.store.source_of(key)
            if r is not None and where is not None:
                live[key] = (r, where)
        return cmp.compare(desired, owned, live, source=source, prune=prune)

    def _on_store_change(self) -> None:
        """A store change: a new or changed Application is polled now, a deleted one's
        resources follow its finalizer, and selfHeal puts back what was changed."""
        apps = {a.key: a for a in self.applications()}
        self._urls = _repo_urls(apps.values())
        for key in [k for k in self._apps if k not in apps]:
            self._forget(key)
        for key, app in apps.items():
            st = self._apps.get(key)
            if st is not None:
                st.cascade = FINALIZER in (app.metadata.finalizers or [])
            if st is None or st.spec != app.spec.model_dump():
                self._wake.set()
            elif not st.lock.locked():
                self._auto(app, st)

    def _forget(self, key: Key) -> None:
        """An Application is gone: with Argo CD's resources finalizer its resources go
        with it; without, they stay, as applied resources nobody syncs."""
        source = source_name(key[1], key[2])
        kept = self.store.source_resources(source)
        cascade = self._apps[key].cascade
        if kept and not cascade:
            self.store.apply(ParseResult(resources=list(kept.values())))
        del self._apps[key]
        self.store.remove_source(source)
        self._save_state()

    # --- status ------------------------------------------------------------------------

    def status_of(self, key: Key) -> dict[str, Any] | None:
        """Argo CD's `status` of the Application `key`, None when it is not one."""
        found = self.store.get(key)
        if not isinstance(found, Application):
            return None
        app = found
        st = self._state(key)
        loaded = st.target
        conditions: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        sync_status = cmp.UNKNOWN
        health_status = health.UNKNOWN
        if loaded is not None and loaded.result is not None and loaded.result.ok:
            auto = app.automated
            plan = self._plan(app, loaded.result.resources, prune=bool(auto and auto.prune))
            for row in plan.rows:
                h = self._health(row.key)
                item: dict[str, Any] = {
                    "group": row.group,
                    "version": row.version,
                    "kind": row.key[0].split(".")[0],
                    "namespace": row.key[1],
                    "name": row.key[2],
                    "status": row.status,
                    "health": {"status": h},
                }
                if row.requires_pruning:
                    item["requiresPruning"] = True
                rows.append(item)
            sync_status = cmp.SYNCED if plan.synced else cmp.OUT_OF_SYNC
            health_status = health.worst(
                r["health"]["status"] for r in rows if not r.get("requiresPruning")
            )
        elif loaded is not None:
            errors = [loaded.error] if loaded.result is None else _lines(loaded.result.errors)
            conditions.append(
                {
                    "type": "ComparisonError",
                    "message": "; ".join(errors),
                    "lastTransitionTime": timestamp(st.reconciled_at),
                }
            )
            if st.synced:
                health_status = self._synced_health(app)
        out: dict[str, Any] = {
            "sync": {
                "status": sync_status,
                "revision": loaded.commit if loaded else "",
                "comparedTo": {
                    "source": _source_json(app),
                    "destination": app.spec.destination.model_dump(exclude_defaults=True),
                },
            },
            "health": {"status": health_status},
            "resources": rows,
            "history": list(st.history),
            "sourceType": "Directory",
            "reconciledAt": timestamp(st.reconciled_at) if st.reconciled_at else None,
        }
        if st.operation is not None:
            out["operationState"] = st.operation
        if conditions:
            out["conditions"] = conditions
        return out

    def _health(self, key: Key) -> str:
        """Argo CD's health of the resource in force for `key`."""
        ns, name = key[1], key[2]
        ready = sum(
            1 for i in self.store.instances() if i.ready and (i.namespace, i.workload) == (ns, name)
        )
        failing = sum(
            1
            for r in self._instance_rows() or []
            if (r.get("namespace"), r.get("workload")) == (ns, name)
            and r.get("state") in ("backoff", "failed")
        )
        return health.resource_health(
            self.store.get(key), ready, self._knative_status(key), failing
        )

    def _synced_health(self, app: Application) -> str:
        owned = self.store.source_resources(source_name(app.namespace, app.name))
        return health.worst(self._health(k) for k in owned)

    async def diff(
        self, namespace: str, name: str, *, revision: str | None = None
    ) -> dict[str, Any]:
        """What a sync of the target revision (or `revision`) would change: each
        resource's action and a unified diff of its YAML, live against git."""
        app = self._app(namespace, name)
        st = self._state(app.key)
        src = app.spec.source
        assert src is not None
        loaded = await asyncio.to_thread(self._load, app, revision or src.targetRevision, st.target)
        if loaded.result is None or not loaded.result.ok:
            errors = [loaded.error] if loaded.result is None else _lines(loaded.result.errors)
            return {"revision": loaded.commit, "errors": errors, "resources": []}
        desired = {r.key: r for r in loaded.result.resources}
        auto = app.automated
        plan = self._plan(app, loaded.result.resources, prune=bool(auto and auto.prune))
        out = []
        for row in plan.rows:
            if row.status == cmp.SYNCED:
                continue
            live = self.store.get(row.key)
            want = desired.get(row.key)
            before = _yaml(live) if live is not None else ""
            after = _yaml(want) if want is not None else ""
            ref = "/".join(row.key)
            text = "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    f"live/{ref}",
                    f"git/{ref}",
                )
            )
            out.append(
                {
                    "kind": row.key[0],
                    "namespace": row.key[1],
                    "name": row.key[2],
                    "action": row.action,
                    "requiresPruning": row.requires_pruning,
                    "diff": text,
                }
            )
        return {"revision": loaded.commit, "errors": [], "resources": out}

    # --- what outlives the control plane -----------------------------------------------

    def _path(self) -> Path | None:
        return self._dir / STATE_FILE if self._dir else None

    def load(self) -> None:
        """Take back what each Application had synced, its history and last operation
        (at start, before anything is served: no git is needed to serve it again)."""
        path = self._path()
        if path is None or not path.exists():
            return
        try:
            if path.stat().st_size > MAX_STATE_FILE:
                raise ValueError(f"larger than {MAX_STATE_FILE} bytes")
            data = json.loads(path.read_text())
            rows = [
                (row, (row["kind"], row["namespace"], row["name"])) for row in data["applications"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.error("gitops: cannot read %s: %s", path, err)
            return
        for row, key in rows:
            st = self._state(key)
            st.synced = str(row.get("synced", ""))
            st.auto_tried = st.synced
            st.history = list(row.get("history") or [])
            st.operation = row.get("operationState")
            items = {"apiVersion": "v1", "kind": "List", "items": row.get("resources") or []}
            result = parse_object(items, str(path))
            for error in result.errors:
                log.error("gitops: a synced resource left out: %s", error)
            self.store.set_source(
                source_name(key[1], key[2]), ParseResult(resources=list(result.resources))
            )
        self._written = None

    def _save_state(self) -> None:
        path = self._path()
        if path is None:
            return
        rows = [
            {
                "kind": k[0],
                "namespace": k[1],
                "name": k[2],
                "synced": st.synced,
                "history": st.history,
                "operationState": st.operation,
                # Secrets as they are: the file (0600) is the control plane's own memory.
                "resources": [
                    api_json.resource_json(r, redact=False)
                    for _, r in sorted(self.store.source_resources(source_name(k[1], k[2])).items())
                ],
            }
            for k, st in sorted(self._apps.items())
            if st.synced or st.operation
        ]
        doc = {"applications": rows}
        if doc == self._written:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
            tmp.replace(path)
            self._written = doc


def _repo_urls(apps: Iterable[Application]) -> frozenset[str]:
    return frozenset(a.spec.source.repoURL for a in apps if a.spec.source is not None)


def _names_one_of(urls: Set[str], src: ApplicationSource) -> bool:
    return src.repoURL in urls


def _fingerprints(urls: Set[str]) -> dict[str, refwatch.Fingerprint | None]:
    out: dict[str, refwatch.Fingerprint | None] = {}
    for url in urls:
        gitdir = refwatch.git_dir(url)
        out[url] = refwatch.fingerprint(gitdir) if gitdir is not None else None
    return out


def _lines(errors: list[ConfigError]) -> list[str]:
    return [str(e) for e in errors]


def _source_json(app: Application) -> dict[str, Any]:
    src = app.spec.source
    return src.model_dump(exclude_defaults=True) | {"repoURL": src.repoURL} if src else {}


def _yaml(r: Resource) -> str:
    doc = api_json.resource_json(r)
    doc.pop("source", None)
    return yaml.safe_dump(doc, sort_keys=False)
