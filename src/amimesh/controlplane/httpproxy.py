"""Contour's HTTPProxy in the control plane: what `model.httpproxy` makes of the
config's HTTPProxies (a Gateway and a VirtualService per served root) is written as the
store's source `httpproxy`, and each proxy's Contour status is kept for `ami get`.

    proxies = HTTPProxyController(store)
    proxies.reconcile()          # at start
    proxies.watch(loop)          # then on every config change
    proxies.status_of(key)       # {"currentStatus": "valid" | "invalid" | "orphaned", ...}
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane.follow import Follower
from amimesh.resources import ParseResult, parse_object

log = logging.getLogger(__name__)

SOURCE = "httpproxy"
# Contour's API group and kind, as keys name it (`resources.contour` is loaded only when
# the config has an HTTPProxy).
CONTOUR_GROUP = "projectcontour.io"
HTTPPROXY_KIND = "HTTPProxy"


class HTTPProxyController:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._status: dict[tuple[str, str], dict[str, Any]] = {}
        self._last: list[dict[str, Any]] | None = None
        self._follower = Follower(store, self.reconcile, SOURCE)

    def reconcile(self) -> None:
        resources = [r for r in self.store.resources() if self.store.source_of(r.key) != SOURCE]
        if self._last is None and SOURCE not in self.store.sources():
            if not any(r.API_GROUP == CONTOUR_GROUP for r in resources):
                return  # no HTTPProxy yet: nothing to load, serve or say
        from amimesh.model import httpproxy

        out = httpproxy.expand(resources)
        self._status = out.status
        if out.derived == self._last:
            return
        if not out.derived and self._last is None and SOURCE not in self.store.sources():
            self._last = out.derived  # nothing to serve, nothing served: no store change
            return
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": out.derived}, SOURCE)
        for e in parsed.errors:
            log.error("httpproxy: a derived resource is invalid: %s", e)
        errors = self.store.set_source(SOURCE, ParseResult(resources=list(parsed.resources)))
        for e in errors:
            log.warning("httpproxy: %s", e)
        self._last = out.derived

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._follower.watch(loop)

    def close(self) -> None:
        self._follower.close()

    def status_of(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        kind, namespace, name = key
        if kind != HTTPPROXY_KIND:
            return None
        return self._status.get((namespace, name))
