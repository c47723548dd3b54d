"""One VirtualService http route → the Envoy routes a sidecar's virtual host gets for it.

Istio emits one Envoy route per `match` entry (the entries are OR'ed), all sharing the
same action and policies, and none for a match whose port, sourceLabels,
sourceNamespace or gateways rule it out for this proxy and port. A gateway gets the
same routes as a sidecar would; there, `port` is the Gateway server's port, and
sourceLabels and sourceNamespace compare with the gateway proxy's own. After a catch-all
match nothing else of the route can match, so the rest are left out.

Every route names its VirtualService in metadata (`filter_metadata["ami"]["config"]`),
and carries a tracing operation like Istio's (`host:port/path*`).
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.route.v3 import route_components_pb2 as rc

from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net
from amimesh.translate import names, route_action, route_match, route_policy
from amimesh.translate.route_delegate import SourcedRoute

METADATA_KEY = "ami"


def build(
    snap: Snapshot,
    sourced: SourcedRoute,
    *,
    port: int,
    proxy_namespace: str,
    proxy_labels: Mapping[str, str],
    gateway: tuple[str, str] | None = None,
) -> list[rc.Route]:
    """The Envoy routes for one http route on a virtual host of `port`.

    `gateway` is the (namespace, name) of the Gateway whose server the virtual host
    serves, None on a sidecar; `port` is then the server's port.
    """
    http, vs = sourced.route, sourced.origin
    matches: list[net.HTTPMatchRequest | None] = list(http.match) or [None]
    matches = [
        m
        for m in matches
        if route_match.applies(
            m,
            port=port,
            namespace=proxy_namespace,
            labels=proxy_labels,
            gateway=gateway,
            vs_namespace=vs.namespace,
        )
    ]
    if not matches:
        return []
    scope = route_action.Scope(snap=snap, namespace=vs.namespace, port=port)
    semantics = vs.metadata.annotations.get(route_action.ROUTE_SEMANTICS)
    template = _template(http, scope, gateway_api=semantics == route_action.GATEWAY_API)
    if template is None:
        return []
    template.metadata.filter_metadata[METADATA_KEY].update({"config": vs.ref})
    out: list[rc.Route] = []
    for m in matches:
        r = rc.Route()
        r.CopyFrom(template)
        name = ".".join(p for p in (http.name, m.name if m else None) if p)
        if name:
            r.name = name
        r.match.CopyFrom(route_match.route_match(m))
        r.decorator.operation = _operation(r, vs.name, port)
        out.append(r)
        if route_match.is_catch_all(r.match):
            break
    return out


def _template(
    http: net.HTTPRoute, scope: route_action.Scope, *, gateway_api: bool = False
) -> rc.Route | None:
    """Everything but the match and name; None if the route does nothing.
    `gateway_api`: the route was converted from the Gateway API (its redirects may
    replace the matched prefix)."""
    out = rc.Route()
    ops = route_policy.header_ops(http.headers)
    ops.apply(out)
    if http.redirect is not None:
        if not route_action.redirect(out, http.redirect, gateway_api=gateway_api):
            return None
    elif http.directResponse is not None:
        route_action.direct_response(out, http.directResponse)
    elif http.route:
        route_action.forward(out, http, scope, ops.authority)
    else:
        return None
    if http.fault is not None:
        fault = route_policy.fault(http.fault)
        if fault is not None:
            out.typed_per_filter_config[route_policy.FAULT_FILTER].Pack(fault)
    if http.corsPolicy is not None:
        out.typed_per_filter_config[route_policy.CORS_FILTER].Pack(
            route_policy.cors(http.corsPolicy)
        )
    return out


def _operation(r: rc.Route, vs_name: str, port: int) -> str:
    m = r.match
    which = m.WhichOneof("path_specifier")
    path = {"prefix": m.prefix + "*", "path": m.path, "safe_regex": m.safe_regex.regex}.get(
        which or "", "/*"
    )
    if r.HasField("route") and r.route.cluster:
        _, cport, _, host = names.parse_cluster_name(r.route.cluster)
        return f"{host}:{cport}{path}"
    return f"{vs_name}:{port}{path}"
