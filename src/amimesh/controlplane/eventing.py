"""Knative Eventing's controller in the control plane: writes the broker's mesh
resources into the store (source `eventing`) and knows the status of every Broker and
Trigger.

    eventing = EventingController(store, runner)   # runner None: no JetStream server
    eventing.reconcile()          # at start, before anything is served
    eventing.watch(loop)          # then on every config change
    eventing.status_of(key)       # Knative's status of a Broker or Trigger

What runs is decided by the pure `eventing.expand`; the node agent runs the broker's
Workload as any other, with its sidecar.

ApiServerSources are the control plane's: on each config change it works out, with
the pure `eventing.apiserver`, which watched resources were added, updated or
deleted, and posts each event to the source's channel at the broker process (its
loopback port, from the instance's files under the state dir), which stores it and
delivers it to the sink. Changes from before the control plane started are not
reported, and an event the broker does not take within a few tries is dropped with a
warning (Knative's adapter is no more durable).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane.mesh_config import nats_wanted_path
from amimesh.eventing import apiserver
from amimesh.eventing.addressing import EventingPlan
from amimesh.eventing.config import INGRESS, NAMESPACE, Runner
from amimesh.eventing.expand import expand, nats_cluster
from amimesh.resources import ParseResult, parse_object
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

SOURCE = "eventing"
DERIVED = ("eventing", "serving")  # what the control plane writes: not reported
OUTBOX_MAX = 10_000
SEND_TRIES = 5
SEND_BACKOFF_S = 0.2
SEND_TIMEOUT_S = 5.0
Key = tuple[str, str, str]


def runner_for(state_dir: Path | None, nats_port: int, python: str) -> Runner | None:
    """How the broker process runs in the mesh of `state_dir` (None: a control plane
    with no state runs none); without a JetStream server it runs PingSources only."""
    if state_dir is None:
        return None
    secrets = str(state_dir / "eventing" / "credentials")
    if not nats_port:
        return Runner(python=python, secrets_dir=secrets)
    return Runner(
        python=python,
        nats_url=f"nats://127.0.0.1:{nats_port}",
        credentials=str(state_dir / "nats" / "credentials"),
        secrets_dir=secrets,
    )


class EventingController:
    def __init__(self, store: Store, runner: Runner | None, state_dir: Path | None = None) -> None:
        self.store = store
        self.runner = runner
        self.state_dir = state_dir
        self._seen: dict[Key, Resource] | None = None  # what ApiServerSources compare to
        self._outbox: asyncio.Queue[apiserver.Emitted] | None = None
        self._sender: asyncio.Task[None] | None = None
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
        self._report_changes(written)
        plan = expand(written, self.runner)
        self._write_secrets(plan.secrets)
        self._want_server(plan, written)
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

    def _want_server(self, plan: EventingPlan, written: list[Resource]) -> None:
        """Tell `ami up` the mesh's JetStream server is wanted: a Broker or a channel
        on it (not on a config-nats cluster). Written once; `ami up` removes it."""
        if self.state_dir is None or self.runner is None or not self.runner.nats_url:
            return
        if not plan.config.brokers or nats_cluster(written) is not None:
            return
        marker = nats_wanted_path(self.state_dir)
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker.write_text("a Broker or a channel\n")

    def _write_secrets(self, secrets: dict[str, str]) -> None:
        """The credentials of brokers' Secrets, a file each (0600 in a 0700
        directory), before the broker process that reads them starts."""
        if self.runner is None or not self.runner.secrets_dir:
            return
        where = Path(self.runner.secrets_dir)
        if not secrets and not where.exists():
            return
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, text in secrets.items():
            path = where / name
            if path.exists() and path.read_text() == text:
                continue
            tmp = where / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            tmp.replace(path)
        for old in where.iterdir():
            if old.name not in secrets and not old.name.startswith("."):
                old.unlink()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._unsubscribe = self.store.subscribe(self._on_change)
        self._outbox = asyncio.Queue(maxsize=OUTBOX_MAX)
        self._sender = loop.create_task(self._send_all(self._outbox), name="apiserversource")

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe = lambda: None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    # --- ApiServerSource -------------------------------------------------------------------

    def _report_changes(self, written: list[Resource]) -> None:
        now = {r.key: r for r in written if self.store.source_of(r.key) not in DERIVED}
        before, self._seen = self._seen, now
        if before is None or self._outbox is None:
            return
        stamp = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        for e in apiserver.changes(before, now, ids=lambda: str(uuid.uuid4()), time=stamp):
            try:
                self._outbox.put_nowait(e)
            except asyncio.QueueFull:
                log.warning(
                    "apiserversource %s/%s: too many events waiting, one dropped",
                    e.namespace,
                    e.source,
                )

    async def _send_all(self, outbox: asyncio.Queue[apiserver.Emitted]) -> None:
        while True:
            e = await outbox.get()
            for attempt in range(SEND_TRIES):
                status = await asyncio.to_thread(self._post, e)
                if status == 202:
                    break
                await asyncio.sleep(SEND_BACKOFF_S * 2**attempt)
            else:
                log.warning(
                    "apiserversource %s/%s: the broker did not take %s (last: %s)",
                    e.namespace,
                    e.source,
                    e.headers.get("ce-id"),
                    status,
                )

    def _post(self, e: apiserver.Emitted) -> int | None:
        """POST to the source's channel at the broker process (loopback)."""
        port = self._broker_port()
        if port is None:
            return None
        channel = apiserver.channel_of(e.source)
        url = f"http://127.0.0.1:{port}/channels/{e.namespace}/{channel}"
        request = urllib.request.Request(url, data=e.body, headers=dict(e.headers), method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=SEND_TIMEOUT_S) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    def _broker_port(self) -> int | None:
        if self.state_dir is None:
            return None
        for home in sorted((self.state_dir / "instances").glob(f"{INGRESS}-*.{NAMESPACE}")):
            try:
                agent = json.loads((home / "agent.json").read_text())
                return int(agent["proxy"]["inbound"][0]["app_port"])
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
        return None

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
