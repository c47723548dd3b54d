"""The Kubernetes Gateway API in the control plane: what the pure `gatewayapi.convert`
makes of Gateways and routes (Istio Gateways and VirtualServices) written into the
store as the source `gateway-api`, and the Gateway API status of each resource.

    gateways = GatewayApiController(store)
    gateways.reconcile()          # at start, before anything is served
    gateways.watch(loop)          # then on every config change
    gateways.status_of(key)       # a Gateway's or a route's status, as `ami get` shows it
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane.follow import Follower
from amimesh.model.authz import GATEWAY_API_GROUP
from amimesh.resources import ParseResult, parse_object
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

SOURCE = "gateway-api"
Key = tuple[str, str, str]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GatewayApiController:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._status: dict[Key, dict[str, Any]] = {}
        self._last: tuple[Any, ...] | None = None
        self._seen = -1  # the store's config version last read
        self._follower = Follower(store, self.reconcile, "gateway-api")

    def status_of(self, key: Key) -> dict[str, Any] | None:
        return self._status.get(key)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._follower.watch(loop)

    def close(self) -> None:
        self._follower.close()

    def reconcile(self) -> None:
        """Convert what users wrote into the `gateway-api` source (unchanged: no store
        change). Nothing is imported or written while the config has no Gateway API
        resource and the source is empty."""
        store = self.store
        if store.config_version == self._seen:
            return  # instances came or went: nothing the conversion reads
        self._seen = store.config_version
        written = [r for r in store.resources() if store.source_of(r.key) != SOURCE]
        mine = [r for r in written if r.API_GROUP == GATEWAY_API_GROUP]
        # What a conversion reads: the Gateway API's resources and the Services.
        inputs = tuple(
            r for r in written if r.API_GROUP == GATEWAY_API_GROUP or r.kind == "Service"
        )
        if inputs == self._last:
            return
        self._last = inputs
        if not mine and not any(store.source_of(r.key) == SOURCE for r in store.resources()):
            self._status = {}
            return
        from amimesh.gatewayapi.convert import convert

        out = convert(inputs, now=_now())
        old = self._status
        # A condition's time changes only with the condition.
        self._status = {key: _keep_times(value, old.get(key)) for key, value in out.status.items()}
        parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": out.derived}, SOURCE)
        for e in parsed.errors:  # a bug of the conversion, said loudly
            log.error("gateway-api: a derived resource is invalid: %s", e)
        resources: list[Resource] = list(parsed.resources)
        for e in store.set_source(SOURCE, ParseResult(resources=resources)):
            log.warning("gateway-api: %s", e)


def _keep_times(new: Any, old: Any) -> Any:
    """`new` with the lastTransitionTime of each condition that `old` already had alike."""
    if isinstance(new, dict):
        if "lastTransitionTime" in new and isinstance(old, dict):
            same = all(new.get(k) == old.get(k) for k in ("type", "status", "reason"))
            if same and "lastTransitionTime" in old:
                return {**new, "lastTransitionTime": old["lastTransitionTime"]}
        return {
            k: _keep_times(v, old.get(k) if isinstance(old, dict) else None) for k, v in new.items()
        }
    if isinstance(new, list):
        olds = old if isinstance(old, list) else []
        return [_keep_times(v, olds[i] if i < len(olds) else None) for i, v in enumerate(new)]
    return new
