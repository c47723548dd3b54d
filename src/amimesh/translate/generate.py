"""Snapshot × proxy → everything that proxy holds, with translation shared and cached.

Resources identical for many proxies (clusters, endpoints) are translated and packed
once per snapshot; a resource whose inputs did not change between snapshots keeps its
`Built` object, so the xDS layer sees an unchanged version and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from google.protobuf.message import Message

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import clusters, endpoints, listeners, routes
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built, ProxyConfig


class Generator:
    """Holds the current snapshot and translates it for proxies on demand.

    Not thread-safe: call it from one thread (the control plane's event loop).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._per_snapshot: dict[Hashable, dict[str, Built]] = {}
        # Across snapshots: (type_url, name) -> Built, to keep identity when bytes match.
        self._previous: dict[tuple[str, str], Built] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def update(self, snapshot: Snapshot) -> None:
        """Switch to a new snapshot; unchanged resources keep their `Built` objects."""
        for table in self._per_snapshot.values():
            for b in table.values():
                self._previous[(b.type_url, b.name)] = b
        self._per_snapshot = {}
        self._snapshot = snapshot

    def generate(self, proxy: Proxy) -> ProxyConfig:
        snap = self._snapshot
        return {
            CLUSTER: {
                **self._shared(("clusters",), CLUSTER, lambda: clusters.outbound_clusters(snap)),
                **self._pack(CLUSTER, clusters.inbound_clusters(proxy)),
            },
            # Failover priorities depend on where the proxy is: shared per locality.
            ENDPOINT: self._shared(
                ("endpoints", proxy.locality),
                ENDPOINT,
                lambda: endpoints.load_assignments(snap, locality=proxy.locality),
            ),
            LISTENER: self._pack(LISTENER, listeners.listeners(snap, proxy)),
            ROUTE: self._shared(
                ("routes", routes.sharing_key(snap, proxy)),
                ROUTE,
                lambda: routes.route_configs(snap, proxy),
            ),
        }

    def _shared(
        self, key: Hashable, type_url: str, build: Callable[[], Iterable[Message]]
    ) -> dict[str, Built]:
        table = self._per_snapshot.get(key)
        if table is None:
            table = self._pack(type_url, build())
            self._per_snapshot[key] = table
        return table

    def _pack(self, type_url: str, messages: Iterable[Message]) -> dict[str, Built]:
        out: dict[str, Built] = {}
        for m in messages:
            name = str(getattr(m, "name", "") or getattr(m, "cluster_name", ""))
            b = Built(type_url, name, m)
            old = self._previous.get((type_url, name))
            if old is not None and old.serialized == b.serialized:
                b = old
            else:
                self._previous[(type_url, name)] = b
            out[name] = b
        return out
