"""Route tables of a sidecar's upstream ports: `upstream|PORT|HOST`, one per HTTP-like
upstream (GRPC, HTTP2, HTTP) of the proxy (see `listener_upstream`).

Each table has one virtual host, domains `*` (the client dials 127.0.0.1, so its
authority says nothing about the service), carrying the same routes the sidecar's
outbound table has for that service port: subsets, weights, retries, timeouts, faults
apply to gRPC exactly as to HTTP. A host the mesh does not know gets a direct 503.

The routes come from the outbound table's memo (`routes.RouteMemo`); a table whose
routes did not change is the very same message (`UpstreamMemo`), so proxies sharing a
route table share these too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from amimesh.model.proxy import Upstream
from amimesh.model.snapshot import Snapshot
from amimesh.translate import route_action, routes
from amimesh.translate.listener_upstream import is_http, upstream_name

# (hostname, port) -> (the routes list it was built from, the table).
UpstreamMemo = dict[tuple[str, int], tuple[object, route_pb2.RouteConfiguration]]


def upstream_key(upstreams: Iterable[Upstream]) -> tuple[tuple[str, int], ...]:
    """What the upstream tables of a proxy depend on, besides `routes.sharing_key`."""
    return tuple(sorted({(u.host.lower(), u.port) for u in upstreams if is_http(u)}))


def upstream_configs(
    snap: Snapshot,
    namespace: str,
    labels: Mapping[str, str],
    upstreams: Iterable[Upstream],
    memo: routes.RouteMemo | None = None,
    tables: UpstreamMemo | None = None,
) -> list[route_pb2.RouteConfiguration]:
    """The tables of the HTTP-like `upstreams` of a sidecar in `namespace` with `labels`.

    `memo` is the outbound table's memo for that proxy's sharing key, `tables` this
    module's memo for the same key.
    """
    memo = memo if memo is not None else {}
    tables = tables if tables is not None else {}
    out = []
    for host, port in upstream_key(upstreams):
        hostname = snap.resolve(host, namespace)
        found = routes.service_port_routes(snap, namespace, labels, hostname, port, memo)
        known = tables.get((host, port))
        if known is not None and found is not None and known[0] is found:
            out.append(known[1])
            continue
        table = _table(upstream_name(port, host), found)
        tables[(host, port)] = (found, table)
        out.append(table)
    return out


def _table(name: str, found: list[rc.Route] | None) -> route_pb2.RouteConfiguration:
    if found is None:
        unknown = rc.Route(name="unknown", match=rc.RouteMatch(prefix="/"))
        route_action.unknown(unknown)
        found = [unknown]
    vhost = rc.VirtualHost(
        name=name, domains=["*"], routes=found, include_request_attempt_count=True
    )
    out = route_pb2.RouteConfiguration(name=name, virtual_hosts=[vhost])
    out.max_direct_response_body_size_bytes.value = routes.MAX_DIRECT_RESPONSE_BODY_BYTES
    return out
