"""Snapshot × proxy → everything that proxy holds, with translation shared and cached.

Resources identical for many proxies (clusters, endpoints, route tables) are translated
and packed once per snapshot. Across snapshots, a resource whose bytes did not change
keeps its `Built` object, and a table none of whose resources changed keeps its dict
object: the xDS layer then sees the very same table and skips it without comparing.
What depends only on the proxy (its listeners, its inbound clusters) is translated
once per proxy and kept while the proxy stays the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import clusters, endpoints, listeners, routes
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built, ProxyConfig

Table = dict[str, Built]


@dataclass
class _ProxyTables:
    """What was translated from the proxy alone (independent of the snapshot)."""

    proxy: Proxy
    listeners: Table
    inbound_clusters: Table


class Generator:
    """Holds the current snapshot and translates it for proxies on demand.

    Not thread-safe: call it from one thread (the control plane's event loop).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._shared_tables: dict[Hashable, Table] = {}
        self._previous_tables: dict[Hashable, Table] = {}
        # (type_url, name) -> Built, to keep identity when bytes match.
        self._built: dict[tuple[str, str], Built] = {}
        self._proxies: dict[str, _ProxyTables] = {}
        # (id(shared clusters), id(inbound clusters)) -> merged table, with both kept
        # alive so their ids stay unique.
        self._merged: dict[tuple[int, int], tuple[Table, Table, Table]] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def update(self, snapshot: Snapshot) -> None:
        """Switch to a new snapshot; unchanged resources and tables keep their objects."""
        self._previous_tables = self._shared_tables
        self._shared_tables = {}
        self._snapshot = snapshot

    def forget(self, proxy_id: str) -> None:
        """Drop what is cached for a proxy that disconnected."""
        self._proxies.pop(proxy_id, None)

    def generate(self, proxy: Proxy) -> ProxyConfig:
        snap = self._snapshot
        own = self._own_tables(proxy)
        shared_clusters = self._shared(
            ("clusters",), CLUSTER, lambda: clusters.outbound_clusters(snap)
        )
        return {
            CLUSTER: self._merge(shared_clusters, own.inbound_clusters),
            # Failover priorities depend on where the proxy is: shared per locality.
            ENDPOINT: self._shared(
                ("endpoints", proxy.locality),
                ENDPOINT,
                lambda: endpoints.load_assignments(snap, locality=proxy.locality),
            ),
            LISTENER: own.listeners,
            ROUTE: self._shared(
                ("routes", routes.sharing_key(snap, proxy)),
                ROUTE,
                lambda: routes.route_configs(snap, proxy),
            ),
        }

    def _own_tables(self, proxy: Proxy) -> _ProxyTables:
        # Listeners and inbound clusters read only the proxy today; once a policy of
        # the snapshot shapes them (e.g. inbound mTLS), the cache key must include it.
        cached = self._proxies.get(proxy.id)
        if cached is not None and cached.proxy == proxy:
            return cached
        tables = _ProxyTables(
            proxy=proxy,
            listeners=self._pack(LISTENER, listeners.listeners(self._snapshot, proxy)),
            inbound_clusters=self._pack(CLUSTER, clusters.inbound_clusters(proxy)),
        )
        self._proxies[proxy.id] = tables
        return tables

    def _merge(self, shared: Table, own: Table) -> Table:
        if not own:
            return shared
        key = (id(shared), id(own))
        hit = self._merged.get(key)
        if hit is not None:
            return hit[2]
        if len(self._merged) > 4 * len(self._proxies) + 64:
            self._merged.clear()
        merged = {**shared, **own}
        self._merged[key] = (shared, own, merged)
        return merged

    def _shared(
        self, key: Hashable, type_url: str, build: Callable[[], Iterable[Message]]
    ) -> Table:
        table = self._shared_tables.get(key)
        if table is None:
            table = self._pack(type_url, build())
            old = self._previous_tables.get(key)
            if (
                old is not None
                and old.keys() == table.keys()
                and all(old[n] is b for n, b in table.items())
            ):
                table = old
            self._shared_tables[key] = table
        return table

    def _pack(self, type_url: str, messages: Iterable[Message]) -> Table:
        out: Table = {}
        for m in messages:
            name = str(getattr(m, "name", "") or getattr(m, "cluster_name", ""))
            b = Built(type_url, name, m)
            old = self._built.get((type_url, name))
            if old is not None and old.serialized == b.serialized:
                b = old
            else:
                self._built[(type_url, name)] = b
            out[name] = b
        return out
