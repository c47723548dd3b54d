"""Tekton Triggers in the control plane: each EventListener's mesh resources (a
Workload and a Service `el-NAME`, the store's source `triggers`), and the webhooks its
listener process hands over (`deliver`): interceptors, bindings, templates, and the
runs they make applied to the store, where the node agent picks them up.

    triggers = TriggersController(store, state_dir, api_token)
    triggers.reconcile(api_url)             # at start, once the API's port is known
    triggers.watch(loop)                    # then on every config change
    status, body = triggers.deliver("default", "github", headers, body, url)
    triggers.token_ok("default", "github", given)   # the listener's own token

A listener's token is derived from the API token and names one EventListener: it can
hand over that listener's webhooks, which its URL already takes, and nothing else. It
is written to a file of the control plane's state (mode 0600), never into a resource.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import string
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane.follow import Follower
from amimesh.pipelines import interceptors as icp
from amimesh.pipelines import listeners
from amimesh.pipelines import triggers as trg
from amimesh.resources import ParseResult, parse_object
from amimesh.resources import tekton_triggers as tt
from amimesh.resources.kube import Secret
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

SOURCE = "triggers"
_SUFFIX = string.ascii_lowercase + string.digits


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX) for _ in range(5))


class TriggersController:
    def __init__(
        self,
        store: Store,
        state_dir: Path | None,
        api_token: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._key = (api_token or secrets.token_hex(32)).encode()
        self._dir = (state_dir / "triggers") if state_dir else None
        self._clock = clock
        self._api = ""
        self._first_seen: dict[tuple[str, str], float] = {}
        self._follower = Follower(store, self.reconcile, "triggers")
        self._last: tuple[Any, ...] | None = None
        self._warned: set[str] = set()
        self._warned_at = -1

    # --- the listeners' resources ------------------------------------------------------

    def listeners(self) -> list[tt.EventListener]:
        return sorted(
            (r for r in self.store.resources() if isinstance(r, tt.EventListener)),
            key=lambda r: r.key,
        )

    def reconcile(self, api: str | None = None) -> None:
        """Write each EventListener's Workload and Service into the `triggers` source."""
        if api is not None:
            self._api = api
        if not self._api:
            return
        if self.store.config_version != self._warned_at:
            self._warned_at = self.store.config_version
            self._warn_refs()
        els = self.listeners()
        inputs = (self._api, tuple(el.key for el in els))
        if inputs == self._last:
            return
        now = self._clock()
        derived: list[dict[str, Any]] = []
        self._forget_tokens({(el.namespace, el.name) for el in els})
        for el in els:
            self._first_seen.setdefault((el.namespace, el.name), now)
            token_file = self._write_token(el.namespace, el.name)
            derived += listeners.listener_resources(el, api=self._api, token_file=token_file)
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": derived}, SOURCE)
        for e in parsed.errors:
            log.error("triggers: a derived resource is invalid: %s", e)
        errors = self.store.set_source(SOURCE, ParseResult(resources=list(parsed.resources)))
        for e in errors:
            log.warning("triggers: %s", e)
        self._last = inputs

    def _warn_refs(self) -> None:
        """Say once what a trigger names and does not exist (`ami validate` says it
        before; a webhook's answer says it again)."""
        found = {
            f"{r.ref}: {trg.field_path(i.loc)}: {i.message}"
            for r, i in trg.ref_issues(self.store.resources())
        }
        for line in sorted(found - self._warned):
            log.warning("triggers: %s", line)
        self._warned = found

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._follower.watch(loop)

    def close(self) -> None:
        self._follower.close()

    def first_seen(self, namespace: str, name: str) -> float | None:
        return self._first_seen.get((namespace, name))

    # --- tokens ------------------------------------------------------------------------

    def token(self, namespace: str, name: str) -> str:
        msg = f"eventlistener/{namespace}/{name}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def token_ok(self, namespace: str, name: str, given: str) -> bool:
        want = self.token(namespace, name).encode()
        return hmac.compare_digest(given.encode(errors="replace"), want)

    def _forget_tokens(self, keep: set[tuple[str, str]]) -> None:
        """Remove the token files of listeners that are gone."""
        if self._dir is None or not self._dir.is_dir():
            return
        for path in self._dir.glob("*.token"):
            ns, _, name = path.name.removesuffix(".token").partition(".")
            if (ns, name) not in keep:
                path.unlink(missing_ok=True)
        for key in list(self._first_seen):
            if key not in keep:
                del self._first_seen[key]

    def _write_token(self, namespace: str, name: str) -> str:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="ami-triggers-"))
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._dir / f"{namespace}.{name}.token"
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token(namespace, name))
        tmp.replace(path)
        return str(path)

    # --- webhooks ----------------------------------------------------------------------

    def _secret(self, namespace: str, name: str, key: str) -> bytes | None:
        found = self.store.get(("Secret", namespace, name))
        return found.value(key) if isinstance(found, Secret) else None

    def deliver(
        self,
        namespace: str,
        name: str,
        headers: Mapping[str, Sequence[str]],
        body: bytes,
        url: str = "",
    ) -> tuple[int, dict[str, Any]]:
        """Run `el`'s triggers on one webhook; (HTTP status, Tekton's response body).
        202 once the listener exists, whatever its triggers did; `errorMessage` says
        why a trigger started nothing."""
        found = self.store.get(("EventListener", namespace, name))
        if not isinstance(found, tt.EventListener):
            return 404, {"errorMessage": f"EventListener {namespace}/{name} not found"}
        event_id = str(uuid.uuid4())
        response: dict[str, Any] = {
            "eventListener": name,
            "namespace": namespace,
            "eventListenerUID": str(uuid.uuid5(uuid.NAMESPACE_URL, found.ref)),
            "eventID": event_id,
        }
        try:
            event = trg.Event.of(body, headers, url)
        except ValueError as err:
            response["errorMessage"] = str(err)
            log.info("eventlistener %s/%s: event %s: %s", namespace, name, event_id, err)
            return 202, response
        problems: list[str] = []
        created: list[str] = []
        for t in trg.listener_triggers(found, self.store.resources()):
            if isinstance(t, trg.ResolveError):
                problems.append(str(t))
                continue
            outcome = self._fire(found, t, event, event_id)
            if isinstance(outcome, str):
                problems.append(f"trigger {t.name}: {outcome}")
            else:
                created += outcome
        for p in problems:
            log.info("eventlistener %s/%s: event %s: %s", namespace, name, event_id, p)
        for c in created:
            log.info("eventlistener %s/%s: event %s created %s", namespace, name, event_id, c)
        if problems and not created:
            response["errorMessage"] = "; ".join(problems)
        return 202, response

    def _fire(
        self, el: tt.EventListener, t: trg.ResolvedTrigger, event: trg.Event, event_id: str
    ) -> list[str] | str:
        """The refs of the runs made, or why none was."""
        verdict = icp.intercept(t.interceptors, event, t.namespace, self._secret)
        if verdict.stopped:
            return f"interceptor stopped trigger processing: {verdict.message}"
        try:
            params = trg.resolve_params(t.bindings, t.template.params, event, verdict.extensions)
            objects = trg.render(
                t.template,
                params,
                uid=str(uuid.uuid4()),
                suffix=_suffix,
                labels={
                    trg.EVENTLISTENER_LABEL: el.name,
                    trg.TRIGGER_LABEL: t.name,
                    trg.EVENTID_LABEL: event_id,
                },
            )
        except trg.ResolveError as err:
            return str(err)
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = t.namespace
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": objects}, "trigger")
        if parsed.errors:
            return "; ".join(str(e) for e in parsed.errors)
        resources: list[Resource] = list(parsed.resources)
        errors = self.store.apply(ParseResult(resources=resources))
        if errors:
            return "; ".join(str(e) for e in errors)
        return [r.ref for r in resources]
