"""Which Sidecar, ProxyConfig and EnvoyFilters apply to a proxy, as Istio decides it.

Sidecar: the one in the proxy's namespace whose `workloadSelector` matches its labels,
else the one in its namespace without selector, else the one without selector in the
root namespace (`istio-system`), which is the mesh's default. At one level the first
by name wins (Istio takes the oldest). A Sidecar's `egress` hosts are
`namespace/dnsName`: `*` any namespace, `.` the Sidecar's own namespace (for the
root namespace's default, the namespace of the proxy it applies to), `~` none;
dnsName `*` (all), `*.suffix`, or a full name. Without `egress`, everything is
imported.

ProxyConfig: Istio merges the mesh's (root namespace, no selector), the namespace's
(no selector) and the workload's (selector matching), the narrower one's set fields
winning.

EnvoyFilter: those of the proxy's namespace and of the root namespace whose
`workloadSelector` matches the proxy (or that have none), ordered by `priority`, then
the root namespace's first, then by name (Istio: by creation time).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from amimesh.model import hosts
from amimesh.model.selection import ROOT_NAMESPACE, selects
from amimesh.model.snapshot import MeshService, Snapshot
from amimesh.resources import istio_envoyfilter as ef
from amimesh.resources import istio_sidecar as sc


@dataclass(frozen=True)
class _Index:
    sidecars: Mapping[str, tuple[sc.Sidecar, ...]]
    proxy_configs: Mapping[str, tuple[sc.ProxyConfig, ...]]
    envoy_filters: Mapping[str, tuple[ef.EnvoyFilter, ...]]


_indexes: weakref.WeakKeyDictionary[Snapshot, _Index] = weakref.WeakKeyDictionary()


def _index(snap: Snapshot) -> _Index:
    found = _indexes.get(snap)
    if found is None:
        side: dict[str, list[sc.Sidecar]] = {}
        pcs: dict[str, list[sc.ProxyConfig]] = {}
        efs: dict[str, list[ef.EnvoyFilter]] = {}
        for r in snap.resources.values():  # in key order: by namespace, then name
            if isinstance(r, sc.Sidecar):
                side.setdefault(r.namespace, []).append(r)
            elif isinstance(r, sc.ProxyConfig):
                pcs.setdefault(r.namespace, []).append(r)
            elif isinstance(r, ef.EnvoyFilter):
                efs.setdefault(r.namespace, []).append(r)
        found = _Index(
            {k: tuple(v) for k, v in side.items()},
            {k: tuple(v) for k, v in pcs.items()},
            {k: tuple(v) for k, v in efs.items()},
        )
        _indexes[snap] = found
    return found


def sidecar_for(snap: Snapshot, namespace: str, labels: Mapping[str, str]) -> sc.Sidecar | None:
    """The Sidecar that applies to a proxy in `namespace` with `labels`, if any."""
    index = _index(snap).sidecars
    if not index:
        return None
    own = index.get(namespace, ())
    for s in own:
        selector = s.spec.workloadSelector
        if selector is not None and selector.labels and selects(selector.labels, labels):
            return s
    for s in own:
        if s.spec.workloadSelector is None or not s.spec.workloadSelector.labels:
            return s
    for s in index.get(ROOT_NAMESPACE, ()):
        if s.spec.workloadSelector is None or not s.spec.workloadSelector.labels:
            return s
    return None


@dataclass(frozen=True)
class Imports:
    """What one Sidecar lets a proxy in `namespace` import: (namespace pattern, dnsName
    pattern, port or 0 for all) per egress host; None: everything."""

    namespace: str
    hosts: tuple[tuple[str, str, int], ...] | None
    registry_only: bool | None  # None: the Sidecar does not say

    def allows(self, svc: MeshService, port: int) -> bool:
        if self.hosts is None:
            return True
        return any(
            (p == 0 or p == port) and _ns_matches(ns, svc.namespace) and _dns_matches(dns, svc)
            for ns, dns, p in self.hosts
        )

    def allows_host(self, svc: MeshService) -> bool:
        """Whether some port of `svc` is imported."""
        return any(self.allows(svc, p.port) for p in svc.ports)

    def allows_name(self, host: str, namespace: str) -> bool:
        """Whether a host named by a VirtualService of `namespace` (no service) is imported."""
        if self.hosts is None:
            return True
        return any(
            _ns_matches(ns, namespace) and _pattern_matches(dns, host.lower())
            for ns, dns, _ in self.hosts
        )


EVERYTHING = Imports("", None, None)


def imports(sidecar: sc.Sidecar | None, namespace: str) -> Imports:
    """What `sidecar` lets a proxy of `namespace` import (all of it without one)."""
    if sidecar is None:
        return EVERYTHING
    policy = sidecar.spec.outboundTrafficPolicy
    registry_only = None if policy is None else policy.mode == "REGISTRY_ONLY"
    if not sidecar.spec.egress:
        return Imports(namespace, None, registry_only)
    # `.` is the Sidecar's namespace; the root namespace's default stands in for the
    # proxy's own namespace's.
    own = namespace if sidecar.namespace == ROOT_NAMESPACE else sidecar.namespace
    out: list[tuple[str, str, int]] = []
    for listener in sidecar.spec.egress:
        port = listener.port.number if listener.port is not None else 0
        for h in listener.hosts:
            ns, _, dns = h.partition("/")
            if ns == "~":
                continue
            out.append((own if ns == "." else ns, dns.lower(), port))
    return Imports(namespace, tuple(sorted(set(out))), registry_only)


def _ns_matches(pattern: str, namespace: str) -> bool:
    return pattern == "*" or pattern == namespace


def _dns_matches(pattern: str, svc: MeshService) -> bool:
    return _pattern_matches(pattern, svc.hostname)


def _pattern_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if hosts.is_wildcard(pattern):
        return hosts.wildcard_matches(pattern, host)
    return pattern == host


def ingress_endpoints(sidecar: sc.Sidecar | None) -> tuple[tuple[int, int], ...]:
    """(port, app port) of each `ingress` listener of `sidecar` with a
    `defaultEndpoint` (`127.0.0.1:PORT` or `0.0.0.0:PORT`: the app on loopback)."""
    if sidecar is None:
        return ()
    out: dict[int, int] = {}
    for i in sidecar.spec.ingress:
        endpoint = i.defaultEndpoint or ""
        host, _, port = endpoint.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0") and port.isdigit():
            out.setdefault(i.port.number, int(port))
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class ProxySettings:
    """What the ProxyConfigs of a proxy set (None: not set)."""

    concurrency: int | None = None
    environment: tuple[tuple[str, str], ...] = ()


def proxy_settings(snap: Snapshot, namespace: str, labels: Mapping[str, str]) -> ProxySettings:
    index = _index(snap).proxy_configs
    if not index:
        return ProxySettings()

    def unselected(pcs: Iterable[sc.ProxyConfig]) -> sc.ProxyConfig | None:
        return next(
            (p for p in pcs if p.spec.selector is None or not p.spec.selector.matchLabels), None
        )

    own = index.get(namespace, ())
    workload = next(
        (p for p in own if _labels(p) and selects(_labels(p), labels)),
        None,
    )
    levels = [unselected(index.get(ROOT_NAMESPACE, ())), unselected(own), workload]
    concurrency: int | None = None
    env: dict[str, str] = {}
    for p in levels:
        if p is None:
            continue
        if p.spec.concurrency is not None:
            concurrency = p.spec.concurrency
        env.update(p.spec.environmentVariables)
    return ProxySettings(concurrency, tuple(sorted(env.items())))


def envoy_filters(
    snap: Snapshot, namespace: str, labels: Mapping[str, str]
) -> tuple[ef.EnvoyFilter, ...]:
    """The EnvoyFilters that apply to a proxy in `namespace` with `labels`, in the order
    their patches apply."""
    index = _index(snap).envoy_filters
    if not index:
        return ()
    found: list[tuple[int, int, str, ef.EnvoyFilter]] = []
    spaces = [ROOT_NAMESPACE] if namespace == ROOT_NAMESPACE else [ROOT_NAMESPACE, namespace]
    for level, ns in enumerate(spaces):
        for f in index.get(ns, ()):
            selector = f.spec.workloadSelector
            if f.spec.targetRefs:
                continue  # attached to a Gateway API resource: not a sidecar's
            if selector is None or selects(selector.labels, labels):
                found.append((f.spec.priority, level, f.name, f))
    found.sort(key=lambda t: t[:3])
    return tuple(t[3] for t in found)


def _labels(p: sc.ProxyConfig) -> Mapping[str, str]:
    return p.spec.selector.matchLabels if p.spec.selector is not None else {}
