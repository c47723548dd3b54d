"""Header intercepts in route tables: ahead of every route to an intercepted service, a
copy of it that also matches the intercept's header and goes to the intercept's
subset (`model.intercepts`). Sidecars' tables and the gateway's both go through here,
so a request carrying the header reaches the intercept however it enters the mesh.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import string_pb2

from amimesh.model.intercepts import Intercept
from amimesh.model.snapshot import Snapshot
from amimesh.translate import names


def _target(route: rc.Route, snap: Snapshot) -> tuple[int, str, tuple[Intercept, ...]] | None:
    """(port, host, its intercepts) of the first cluster of `route` whose service is
    intercepted; None if there is none."""
    if not route.HasField("route"):
        return None
    action = route.route
    which = action.WhichOneof("cluster_specifier")
    if which == "cluster":
        clusters = [action.cluster]
    elif which == "weighted_clusters":
        clusters = [c.name for c in action.weighted_clusters.clusters]
    else:
        return None
    for name in clusters:
        try:
            direction, port, _subset, host = names.parse_cluster_name(name)
        except ValueError:
            continue
        found = snap.intercepts.get(host)
        if direction == "outbound" and found:
            return port, host, found
    return None


def divert(route: rc.Route, intercept: Intercept, port: int, host: str) -> rc.Route:
    """`route` for the requests carrying `intercept`'s header, to its subset."""
    assert intercept.header is not None
    name, value = intercept.header
    out = rc.Route()
    out.CopyFrom(route)
    if out.name:
        out.name = f"{out.name}-{intercept.subset}"
    out.match.headers.append(
        rc.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(exact=value))
    )
    out.route.ClearField("weighted_clusters")
    out.route.cluster = names.outbound_cluster(port, host, intercept.subset)
    return out


def diverted(snap: Snapshot, routes: Sequence[rc.Route]) -> list[rc.Route]:
    """`routes` with each intercept's route ahead of the route it copies."""
    if not snap.intercepts:
        return list(routes)
    out: list[rc.Route] = []
    for route in routes:
        target = _target(route, snap)
        if target is not None:
            port, host, found = target
            out += [divert(route, i, port, host) for i in found if i.header is not None]
        out.append(route)
    return out
