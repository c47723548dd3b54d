"""Snapshot × proxy → everything that proxy holds, with translation shared and cached.

Resources identical for many proxies (clusters, endpoints, route tables) are translated
and packed once per snapshot. Across snapshots, a resource whose bytes did not change
keeps its `Built` object, and a table none of whose resources changed keeps its dict
object: the xDS layer then sees the very same table and skips it without comparing.
What depends only on the proxy (a sidecar's inbound clusters) is translated once per
proxy and kept while the proxy stays the same. A sidecar's listeners and its clusters
to identity providers outside the mesh (`jwks_clusters`) are translated from its
`scope.Scope` alone (the proxy, and what of the snapshot applies to it: its
PeerAuthentications, RequestAuthentications, AuthorizationPolicies, Telemetry, external
JWKS hosts), built once per proxy per snapshot: after a snapshot change they are
translated again only if the scope changed, and keep their `Built` objects, and their
table, when the bytes come out the same.

A sidecar's route tables are the "outbound" table, shared by proxies with the same
`routes.sharing_key` (in the scope), plus the tables of its upstream ports
(`route_upstream`), shared by proxies that also have the same HTTP-like upstreams. A
gateway's listeners and routes depend on the snapshot's Gateways and VirtualServices
too: they are shared tables, translated once per snapshot for all gateway proxies
with the same `gateway_servers.sharing_key` (workload, namespace, labels, port
mapping, address).

Within a shared table, only what a change affects is translated again: a service's
clusters and endpoints when the service, its DestinationRule or its endpoints changed
(`inputs`), a service's routes when what they read changed (`routes.RouteMemo`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from amimesh.model import sidecars
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.translate import (
    clusters,
    endpoints,
    envoy_filter,
    gateway_listeners,
    gateway_routes,
    gateway_servers,
    jwks_clusters,
    listeners,
    names,
    outbound_policy,
    route_upstream,
    routes,
)
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built, ProxyConfig
from amimesh.translate.scope import Scope, Scopes

Table = dict[str, Built]


def inputs(snap: Snapshot, svc: MeshService) -> tuple[object, ...]:
    """What a service's clusters and endpoints read from the snapshot."""
    host = svc.hostname
    return (
        svc,
        snap.destination_rules.get(host),
        snap.intercepts.get(host),
        *(snap.endpoints.get((host, p.port)) for p in svc.ports),
        *(snap.workload_endpoints.get((host, p.port)) for p in svc.ports),
    )


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


@dataclass
class _ProxyTables:
    """What was translated for one sidecar from its `scope` (of `snapshot`): its
    listeners, its inbound clusters (from the proxy), its JWKS clusters;
    `own_clusters` holds both kinds of clusters."""

    scope: Scope
    snapshot: Snapshot
    listeners: Table
    inbound_clusters: Table
    own_clusters: Table


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
        # (what, hostname) -> (inputs, messages) for per-service translation.
        self._per_service: dict[tuple[Hashable, str], tuple[tuple[object, ...], list[Message]]] = {}
        self._route_memos: dict[Hashable, routes.RouteMemo] = {}
        self._upstream_memos: dict[Hashable, route_upstream.UpstreamMemo] = {}
        self._scopes = Scopes(snapshot)
        # proxy id -> (key, the filters and tables of the key, the patched config).
        self._patches: dict[str, tuple[Hashable, object, object, ProxyConfig]] = {}
        # (id(shared table), imports) -> (the shared table, kept alive; its narrowing).
        self._narrowed: dict[tuple[int, sidecars.Imports, str], tuple[Table, Table]] = {}
        self._narrowed_last: dict[tuple[sidecars.Imports, str], Table] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def update(self, snapshot: Snapshot) -> None:
        """Switch to a new snapshot; unchanged resources and tables keep their objects."""
        self._previous_tables = self._shared_tables
        self._shared_tables = {}
        self._snapshot = snapshot
        self._scopes = Scopes(snapshot)
        live = snapshot.services
        if any(host not in live for _, host in self._per_service):
            self._per_service = {k: v for k, v in self._per_service.items() if k[1] in live}

    def forget(self, proxy_id: str) -> None:
        """Drop what is cached for a proxy that disconnected."""
        self._proxies.pop(proxy_id, None)
        self._patches.pop(proxy_id, None)

    def generate(self, proxy: Proxy) -> ProxyConfig:
        """Everything `proxy` holds, with the EnvoyFilters that select it applied last."""
        config = self._generate(proxy)
        filters = sidecars.envoy_filters(self._snapshot, proxy.namespace, proxy.labels)
        if not filters:
            return config
        return self._patched(proxy, filters, config)

    def _patched(self, proxy: Proxy, filters: tuple[Any, ...], config: ProxyConfig) -> ProxyConfig:
        """`config` with `filters`' patches applied, cached on (the filters, the tables
        they patch): the patch is part of the key, as the inputs are."""
        tables = (config[LISTENER], config[ROUTE], config[CLUSTER])
        key = (tuple(id(f) for f in filters), tuple(id(t) for t in tables))
        hit = self._patches.get(proxy.id)
        if hit is not None and hit[0] == key:
            return hit[3]
        ls, rs, cs = envoy_filter.apply(
            envoy_filter.patches(filters),
            proxy.kind,
            [b.message for b in config[LISTENER].values()],
            [b.message for b in config[ROUTE].values()],
            [b.message for b in config[CLUSTER].values()],
        )
        out = {
            **config,
            LISTENER: self._pack(LISTENER, ls),
            ROUTE: self._pack(ROUTE, rs),
            CLUSTER: self._pack(CLUSTER, cs),
        }
        # The filters and tables are kept alive with the result, so their ids stay theirs.
        self._patches[proxy.id] = (key, filters, tables, out)
        return out

    def _generate(self, proxy: Proxy) -> ProxyConfig:
        shared_clusters = self._shared(
            ("clusters",),
            CLUSTER,
            lambda: self._by_service("clusters", clusters.service_clusters),
        )
        locality = proxy.locality
        # Failover priorities depend on where the proxy is: shared per locality.
        shared_endpoints = self._shared(
            ("endpoints", locality),
            ENDPOINT,
            lambda: self._by_service(
                ("endpoints", locality),
                lambda s, svc: endpoints.service_assignments(s, svc, locality=locality),
            ),
        )
        if proxy.kind == "gateway":
            # The gateway's clusters to identity providers outside the mesh, shared
            # like its listeners (they read the same policies).
            jwks = self._shared(
                ("gateway-jwks", gateway_servers.sharing_key(proxy)),
                CLUSTER,
                lambda: jwks_clusters.clusters(self._snapshot, proxy),
            )
            return {
                CLUSTER: self._merge(shared_clusters, jwks),
                ENDPOINT: shared_endpoints,
                **self._gateway_tables(proxy),
            }
        scope = self._scopes.of(proxy)
        own = self._own_tables(scope)
        return {
            CLUSTER: self._merge(
                self._narrow(shared_clusters, scope.imports, CLUSTER), own.own_clusters
            ),
            ENDPOINT: self._narrow(shared_endpoints, scope.imports, ENDPOINT),
            LISTENER: own.listeners,
            ROUTE: self._sidecar_routes(scope),
        }

    def _narrow(self, shared: Table, imports: sidecars.Imports, type_url: str) -> Table:
        """`shared` (outbound clusters or endpoints) cut to what `imports` lets in, with
        the passthrough cluster when the Sidecar's policy is ALLOW_ANY."""
        if imports.hosts is None and imports.registry_only is not False:
            return shared
        key = (id(shared), imports, type_url)
        hit = self._narrowed.get(key)
        if hit is not None:
            return hit[1]
        if len(self._narrowed) > 4 * len(self._proxies) + 64:
            self._narrowed.clear()
            self._narrowed_last.clear()
        services = self._snapshot.services
        out: Table = {}
        for name, b in shared.items():
            _, port, _, host = names.parse_cluster_name(name)
            svc = services.get(host)
            if svc is not None and imports.allows(svc, port):
                out[name] = b
        if imports.registry_only is False and type_url == CLUSTER:
            out.update(self._pack(CLUSTER, [outbound_policy.passthrough_cluster()]))
        # Unchanged by this snapshot (a change to a service the proxy does not import):
        # the very same table, which the xDS layer skips without comparing.
        last = self._narrowed_last.get((imports, type_url))
        if last is not None and _same_table(last, out):
            out = last
        self._narrowed_last[(imports, type_url)] = out
        self._narrowed[key] = (shared, out)
        return out

    def _sidecar_routes(self, scope: Scope) -> Table:
        snap, proxy = self._snapshot, scope.proxy
        route_key = scope.routes
        memo = self._route_memos.setdefault(route_key, {})
        outbound = self._shared(
            ("routes", route_key), ROUTE, lambda: routes.route_configs(snap, proxy, memo)
        )
        upstream_key = route_upstream.upstream_key(proxy.upstreams)
        if not upstream_key:
            return outbound
        upstream = self._shared(
            ("upstream-routes", route_key, upstream_key),
            ROUTE,
            lambda: route_upstream.upstream_configs(
                snap,
                proxy.namespace,
                proxy.labels,
                proxy.upstreams,
                memo,
                self._upstream_memos.setdefault(route_key, {}),
            ),
        )
        return self._merge(outbound, upstream)

    def _gateway_tables(self, proxy: Proxy) -> ProxyConfig:
        snap = self._snapshot
        key = gateway_servers.sharing_key(proxy)
        return {
            LISTENER: self._shared(
                ("gateway-listeners", key),
                LISTENER,
                lambda: gateway_listeners.listeners(snap, proxy),
            ),
            ROUTE: self._shared(
                ("gateway-routes", key), ROUTE, lambda: gateway_routes.route_configs(snap, proxy)
            ),
        }

    def _by_service(
        self, what: Hashable, build: Callable[[Snapshot, MeshService], Iterable[Message]]
    ) -> list[Message]:
        """`build` for every service in host order, reusing results whose inputs held."""
        snap = self._snapshot
        out: list[Message] = []
        for host in sorted(snap.services):
            svc = snap.services[host]
            now = inputs(snap, svc)
            known = self._per_service.get((what, host))
            if known is None or not _same(known[0], now):
                known = (now, list(build(snap, svc)))
                self._per_service[(what, host)] = known
            out.extend(known[1])
        return out

    def _own_tables(self, scope: Scope) -> _ProxyTables:
        snap, proxy = self._snapshot, scope.proxy
        cached = self._proxies.get(proxy.id)
        if cached is not None and cached.snapshot is snap and cached.scope is scope:
            return cached
        if cached is not None and cached.scope == scope:
            cached.snapshot, cached.scope = snap, scope
            return cached
        # The scope changed: translate again, keeping what comes out the same.
        same_proxy = (
            cached is not None
            and cached.scope.proxy == proxy
            and cached.scope.ingress == scope.ingress
        )
        table = self._pack(LISTENER, listeners.sidecar_listeners(scope))
        if cached is not None and _same_table(cached.listeners, table):
            table = cached.listeners
        inbound = (
            cached.inbound_clusters
            if cached is not None and same_proxy
            else self._pack(CLUSTER, clusters.inbound_clusters(proxy, scope.ingress))
        )
        own = inbound
        jwks = self._pack(CLUSTER, jwks_clusters.clusters_for(scope.policies.jwks))
        if jwks:
            own = {**inbound, **jwks}
            if cached is not None and _same_table(cached.own_clusters, own):
                own = cached.own_clusters
        tables = _ProxyTables(
            scope=scope,
            snapshot=snap,
            listeners=table,
            inbound_clusters=inbound,
            own_clusters=own,
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
            if old is not None and _same_table(old, table):
                table = old
            self._shared_tables[key] = table
        return table

    def _pack(self, type_url: str, messages: Iterable[Message]) -> Table:
        out: Table = {}
        for m in messages:
            name = str(getattr(m, "name", "") or getattr(m, "cluster_name", ""))
            old = self._built.get((type_url, name))
            if old is not None and old.message is m:
                out[name] = old  # a memoised message: same object, same bytes
                continue
            b = Built(type_url, name, m)
            if old is not None and old.serialized == b.serialized:
                b = old
            else:
                self._built[(type_url, name)] = b
            out[name] = b
        return out


def _same_table(old: Table, new: Table) -> bool:
    """Whether `new` holds the very same resources as `old`."""
    return old.keys() == new.keys() and all(old[n] is b for n, b in new.items())
