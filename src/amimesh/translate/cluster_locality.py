"""Locality-aware load balancing: which endpoints a proxy prefers, by priority or weight.

Localities are `region/zone/subzone` strings, as on Istio endpoints. For a proxy in
locality P, with failover on (outlier detection set, locality LB not disabled), a
locality group gets Envoy priority by how much of P it shares, as Istio does:

    same region/zone/subzone → 0, same region/zone → 1, same region → 2, other → 3,
    and with `failover: [{from: P.region, to: R}]`, other regions than R → 4,

renumbered densely from 0. Envoy sends everything to priority 0 while it is healthy
and spills to the next one as outlier detection ejects its hosts.

`distribute: [{from: PATTERN, to: {PATTERN: PERCENT}}]` instead gives each locality
group a load-balancing weight (the first rule whose `from` matches P wins); groups
that no `to` names receive nothing. Patterns take `*` for any segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from amimesh.resources import istio_networking as net

T = TypeVar("T")


@dataclass(frozen=True)
class Locality:
    region: str = ""
    zone: str = ""
    subzone: str = ""

    @classmethod
    def parse(cls, text: str) -> Locality:
        parts = [p.strip() for p in (text or "").split("/")] + ["", "", ""]
        return cls(parts[0], parts[1], parts[2])

    def __str__(self) -> str:
        return "/".join((self.region, self.zone, self.subzone)).rstrip("/")


@dataclass(frozen=True)
class Group(Generic[T]):
    """The endpoints of one locality, with the priority and weight Envoy will see."""

    locality: Locality
    items: tuple[T, ...]
    weight: int
    priority: int = 0


def matches(pattern: str, loc: Locality) -> bool:
    """Whether `loc` falls under `pattern` (`region`, `region/zone/*`, `*`, ...)."""
    pattern = pattern.strip()
    if pattern == "*":
        return True
    for want, have in zip(pattern.split("/"), (loc.region, loc.zone, loc.subzone), strict=False):
        if want != "*" and want != have:
            return False
    return True


def _priority(proxy: Locality, ep: Locality, failover: Sequence[net.LocalityFailover]) -> int:
    if proxy.region == ep.region:
        if proxy.zone == ep.zone:
            return 0 if proxy.subzone == ep.subzone else 1
        return 2
    for f in failover:
        if f.from_ == proxy.region:
            return 3 if ep.region == f.to else 4
    return 3


def with_failover(
    groups: Sequence[Group[T]], proxy: Locality, failover: Sequence[net.LocalityFailover]
) -> list[Group[T]]:
    """Groups with priorities for a proxy in `proxy`, numbered 0..N without gaps."""
    raw = [_priority(proxy, g.locality, failover) for g in groups]
    dense = {p: i for i, p in enumerate(sorted(set(raw)))}
    return [replace(g, priority=dense[p]) for g, p in zip(groups, raw, strict=True)]


def with_distribution(
    groups: Sequence[Group[T]], proxy: Locality, rules: Sequence[net.LocalityDistribute]
) -> list[Group[T]]:
    """Groups re-weighted by the first `distribute` rule that applies to `proxy`."""
    rule = next((r for r in rules if matches(r.from_, proxy)), None)
    if rule is None:
        return list(groups)
    weights: dict[int, int] = {}
    for pattern, percent in rule.to.items():
        chosen = [
            i for i, g in enumerate(groups) if i not in weights and matches(pattern, g.locality)
        ]
        total = sum(groups[i].weight for i in chosen)
        for i in chosen:
            weights[i] = math.ceil(groups[i].weight * percent / total) if total else 0
    return [replace(g, weight=weights[i]) for i, g in enumerate(groups) if weights.get(i, 0) > 0]


def arrange(
    groups: Sequence[Group[T]],
    proxy_locality: str,
    setting: net.LocalityLbSetting | None,
    *,
    outlier_detection: bool,
) -> list[Group[T]]:
    """Apply `setting` for a proxy in `proxy_locality` (distribute, else failover)."""
    if setting is None:
        return list(groups)
    proxy = Locality.parse(proxy_locality)
    if setting.distribute:
        return with_distribution(groups, proxy, setting.distribute)
    if outlier_detection:
        # Without outlier detection nothing ever ejects the local hosts, so Envoy
        # would never fail over: Istio applies priorities only with it, and so do we.
        return with_failover(groups, proxy, setting.failover)
    return list(groups)
