"""The Envoy routes of one virtual host, from the VirtualServices that apply to it.

Used by the sidecar's tables (`routes`, `route_upstream`) and the gateway's
(`gateway_routes`) alike. The VirtualServices' http routes are taken in the order
given, delegates inlined (`route_delegate`); each VirtualService's routes stop at its
first catch-all, and catch-all routes then move last (stable), so one VirtualService's
catch-all does not hide another's specific routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.route.v3 import route_components_pb2 as rc

from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net
from amimesh.translate import route_build, route_delegate, route_match


def http_routes(
    snap: Snapshot,
    services: Iterable[net.VirtualService],
    *,
    port: int,
    namespace: str,
    labels: Mapping[str, str],
    gateway: tuple[str, str] | None = None,
) -> list[rc.Route]:
    """Routes for a virtual host on `port` of a proxy in `namespace` with `labels`.

    `gateway` is the Gateway whose server the virtual host belongs to (None: a sidecar).
    """
    out: list[rc.Route] = []
    for vs in services:
        for sourced in route_delegate.flatten(snap, [vs]):
            built = route_build.build(
                snap,
                sourced,
                port=port,
                proxy_namespace=namespace,
                proxy_labels=labels,
                gateway=gateway,
            )
            out.extend(built)
            if built and route_match.is_catch_all(built[-1].match):
                break
    return sorted(out, key=lambda r: route_match.is_catch_all(r.match))
