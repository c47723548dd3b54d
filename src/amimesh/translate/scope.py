"""One proxy's scope: everything of one snapshot that applies to one sidecar.

A sidecar's own config (its listeners, its inbound filters, its clusters to identity
providers outside the mesh) is translated from its `Scope` alone, never from the
snapshot: the proxy, the mesh domain, the PeerAuthentications deciding its inbound
mutual TLS, the RequestAuthentications and AuthorizationPolicies its inbound
listeners enforce, the Telemetry deciding its access log, tracing and metrics, the
external JWKS hosts it fetches from with their DestinationRules, and the key of the
route tables it shares. So while two scopes compare equal, what was translated from
the first holds for the second: the generator caches on the scope, and no translator
keeps a list of the inputs it reads.

The policy lookups depend on the proxy's namespace and labels only; `Scopes` makes
them once per (namespace, labels) per snapshot, whatever the number of proxies.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from amimesh.model import authz, mtls, sidecars, telemetry
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net
from amimesh.translate import l4_routes, routes


@dataclass(frozen=True)
class Policies:
    """What applies to every proxy of one namespace with the same labels."""

    mtls: mtls.Policies
    inbound: authz.InboundPolicies
    access_log: telemetry.AccessLogPolicy
    tracing: telemetry.TracingPolicy
    metrics: telemetry.MetricsPolicy
    # Each external JWKS host fetched from, sorted, with its DestinationRule.
    jwks: tuple[tuple[authz.ExternalJwks, net.DestinationRule | None], ...]


@dataclass(frozen=True)
class Scope:
    """Everything of one snapshot that applies to one sidecar (see the module)."""

    proxy: Proxy
    domain: str
    policies: Policies
    # `routes.sharing_key`: proxies with equal keys share their outbound route table.
    routes: Hashable
    # What the proxy's Sidecar lets it import (its clusters, endpoints and routes).
    imports: sidecars.Imports = sidecars.EVERYTHING
    # Its Sidecar's `ingress` default endpoints: (workload port, app port).
    ingress: tuple[tuple[int, int], ...] = ()
    # Per local upstream port (`proxy.upstreams`), its tcp or tls routes.
    upstream_routes: tuple[l4_routes.UpstreamRoutes, ...] = ()


def policies(snap: Snapshot, proxy: Proxy) -> Policies:
    """The policies of `snap` that apply to `proxy` (by its namespace and labels)."""
    ns, labels = proxy.namespace, proxy.labels
    inbound = authz.inbound_policies(snap, proxy)
    external = sorted({p.jwks_external for p in inbound.providers if p.jwks_external})
    return Policies(
        mtls=snap.mtls_policies(ns, labels),
        inbound=inbound,
        access_log=snap.access_log_policy(ns, labels),
        tracing=snap.tracing_policy(ns, labels),
        metrics=snap.metrics_policy(ns, labels),
        jwks=tuple((t, snap.destination_rules.get(t.rule_host)) for t in external),
    )


def of(snap: Snapshot, proxy: Proxy) -> Scope:
    """The scope of `proxy` in `snap`, computed afresh (`Scopes` shares the lookups)."""
    return Scope(
        proxy,
        snap.domain,
        policies(snap, proxy),
        routes.sharing_key(snap, proxy),
        routes.imports_of(snap, proxy),
        ingress_of(snap, proxy),
        l4_routes.upstream_routes(snap, proxy),
    )


def ingress_of(snap: Snapshot, proxy: Proxy) -> tuple[tuple[int, int], ...]:
    """(workload port, app port) for each `ingress` of the proxy's Sidecar that names a
    `defaultEndpoint`: its inbound cluster reaches the app there."""
    if proxy.kind != "sidecar":
        return ()
    found = sidecars.sidecar_for(snap, proxy.namespace, proxy.labels)
    return sidecars.ingress_endpoints(found)


class Scopes:
    """The scopes of one snapshot's proxies, with the policy lookups made once per
    (namespace, labels)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self._policies: dict[tuple[str, str, frozenset[tuple[str, str]]], Policies] = {}

    def of(self, proxy: Proxy) -> Scope:
        snap = self.snapshot
        key = (proxy.kind, proxy.namespace, frozenset(proxy.labels.items()))
        found = self._policies.get(key)
        if found is None:
            found = self._policies[key] = policies(snap, proxy)
        return Scope(
            proxy,
            snap.domain,
            found,
            routes.sharing_key(snap, proxy),
            routes.imports_of(snap, proxy),
            ingress_of(snap, proxy),
            l4_routes.upstream_routes(snap, proxy),
        )
