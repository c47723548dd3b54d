"""Clusters removed from a proxy's config stay until its routes have moved away.

The xDS protocol's eventual-consistency notes: push new clusters and endpoints first,
then listeners and routes, and remove stale clusters only afterwards. A route that
still names a removed cluster answers 503 (no cluster) until the new routes arrive,
and a cluster whose endpoints were removed has no host to send to. So a cluster (and
its ClusterLoadAssignment) that the proxy was sent and that disappears from the
generated config is retained until the proxy has accepted its listeners and routes;
then the removal goes out. If the proxy rejects the new routes it keeps running the
old ones, so the retained clusters stay too.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from amimesh.translate.built import CLUSTER, ENDPOINT, Built, ProxyConfig

DEFERRED = (CLUSTER, ENDPOINT)


class Retained:
    """Resources kept for a proxy after the generated config dropped them."""

    def __init__(self) -> None:
        self._kept: dict[str, dict[str, Built]] = {t: {} for t in DEFERRED}

    def update(
        self,
        previous: ProxyConfig,
        config: ProxyConfig,
        delivered: Mapping[str, AbstractSet[str]],
    ) -> None:
        """Keep what the client was delivered and the new `config` drops; forget what
        the new config has again."""
        for type_url in DEFERRED:
            kept = self._kept[type_url]
            now = config.get(type_url, {})
            before = previous.get(type_url, {})
            if now is before:
                continue  # the same table: nothing dropped, nothing back
            for name in delivered.get(type_url, ()):
                if name not in now and name in before:
                    kept[name] = before[name]
            for name in [n for n in kept if n in now]:
                del kept[name]

    def merged(self, type_url: str, resources: Mapping[str, Built]) -> Mapping[str, Built]:
        """`resources` plus whatever of the type is retained."""
        kept = self._kept.get(type_url)
        if not kept:
            return resources
        return {**kept, **resources}

    def release(self) -> None:
        """Drop everything retained."""
        for kept in self._kept.values():
            kept.clear()

    def __bool__(self) -> bool:
        return any(self._kept.values())
