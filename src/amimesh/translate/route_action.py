"""What a matched request gets: forwarded to clusters, redirected, or answered directly.

Destinations name clusters `outbound|PORT|SUBSET|HOST` (see `names.py`). A destination's
host resolves from the namespace of the VirtualService that names it; its port is
`destination.port`, else the service's only port, else the port of the virtual host
being built. A destination is *known* when the service exists, has that port and, if a
subset is named, a DestinationRule defines it; only then do `clusters.py` generate its
cluster. Unknown destinations are never routed to (Envoy would answer 503 NC):

- in a weighted split they are left out and the remaining weights share the traffic;
- a route with no known destination left answers a direct 503, so requests it matches
  do not fall through to a later, broader route;
- a mirror to an unknown destination is left out.

Weights are relative (Envoy divides by their sum); a destination of weight 0 is left
out; several destinations with no weight at all share equally. Forwarding routes have
no timeout unless `timeout` says (Envoy's own default would be 15 s); the grpc-timeout
header is not consulted. A redirect code Envoy cannot send (only 301, 302, 303, 307 and
308 exist) leaves the route out. Consistent hashing (a DestinationRule's
`consistentHash`) goes on the route as its hash policy (`clusters.hash_policy_for`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2
from envoy.type.v3.percent_pb2 import FractionalPercent
from google.protobuf import wrappers_pb2

from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net
from amimesh.translate import clusters, names, route_policy

UNKNOWN_DESTINATION_BODY = "no destination of this route is known to the mesh\n"

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True)
class Scope:
    """Where a route is built: host names resolve in `namespace`; `port` is the vhost's."""

    snap: Snapshot
    namespace: str
    port: int


@dataclass(frozen=True)
class Target:
    """A known destination: its cluster, and what the cluster serves."""

    cluster: str
    hostname: str
    subset: str | None
    port: int


def target(scope: Scope, dest: net.Destination) -> Target | None:
    """The cluster for `dest`, or None if the mesh has no such cluster."""
    hostname = scope.snap.resolve(dest.host, scope.namespace)
    svc = scope.snap.service(hostname)
    if svc is None:
        return None
    if dest.port is not None:
        port = dest.port.number
    elif len(svc.ports) == 1:
        port = svc.ports[0].port
    else:
        port = scope.port
    if svc.port(port) is None:
        return None
    if dest.subset and scope.snap.subset_labels(hostname, dest.subset) is None:
        return None
    return Target(names.outbound_cluster(port, hostname, dest.subset), hostname, dest.subset, port)


def forward(
    route: rc.Route, http: net.HTTPRoute, scope: Scope, authority: str | None
) -> list[Target]:
    """Make `route` forward to `http.route`'s destinations; the known targets used.

    With no known destination, `route` gets a direct 503 instead and [] is returned.
    `authority` is a Host set by the route's header operations.
    """
    picked: list[tuple[net.HTTPRouteDestination, Target]] = []
    for d in http.route:
        t = target(scope, d.destination)
        if t is not None:
            picked.append((d, t))
    if len(http.route) > 1:
        any_weight = any(d.weight is not None for d in http.route)
        picked = [(d, t) for d, t in picked if not any_weight or (d.weight or 0) > 0]
    if not picked:
        unknown(route)
        return []

    action = route.route
    action.timeout.CopyFrom(route_policy.duration(http.timeout or 0.0))
    if http.rewrite is not None:
        rw = http.rewrite
        if rw.uriRegexRewrite is not None:
            action.regex_rewrite.pattern.CopyFrom(
                regex_pb2.RegexMatcher(regex=rw.uriRegexRewrite.match)
            )
            action.regex_rewrite.substitution = rw.uriRegexRewrite.rewrite
        elif rw.uri:
            action.prefix_rewrite = rw.uri
        authority = rw.authority or authority
    if authority:
        action.host_rewrite_literal = authority

    if len(picked) == 1:
        dest, t = picked[0]
        action.cluster = t.cluster
        ops = route_policy.header_ops(dest.headers)
        ops.apply(route)
        if ops.authority and not action.host_rewrite_literal:
            action.host_rewrite_literal = ops.authority
    else:
        for dest, t in picked:
            cw = action.weighted_clusters.clusters.add(name=t.cluster)
            cw.weight.value = dest.weight if dest.weight is not None else 1
            ops = route_policy.header_ops(dest.headers)
            ops.apply(cw)
            if ops.authority:
                cw.host_rewrite_literal = ops.authority

    # Consistent hashing (a DestinationRule's consistentHash) is configured on the route.
    hashed = False
    for _, t in picked:
        for policy in clusters.hash_policy_for(scope.snap, t.hostname, t.subset, t.port):
            if policy not in action.hash_policy:
                action.hash_policy.append(policy)
                hashed = len(picked) == 1
    retry = route_policy.retry_policy(http.retries, consistent_hash=hashed)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)

    action.request_mirror_policies.extend(_mirrors(http, scope))
    return [t for _, t in picked]


def unknown(route: rc.Route) -> None:
    """Answer requests on `route` with 503: its destination does not exist."""
    route.direct_response.status = 503
    route.direct_response.body.inline_string = UNKNOWN_DESTINATION_BODY


def _mirrors(http: net.HTTPRoute, scope: Scope) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """`mirror` (with `mirrorPercentage` or the older `mirrorPercent`), or each of
    `mirrors` with its own `percentage` (unset: 100%)."""
    wanted: list[tuple[net.Destination, FractionalPercent]] = []
    if http.mirror is not None:
        if http.mirrorPercentage is not None:
            fraction = route_policy.percent(http.mirrorPercentage)
        else:
            fraction = route_policy.int_percent(
                100 if http.mirrorPercent is None else http.mirrorPercent
            )
        wanted.append((http.mirror, fraction))
    for m in http.mirrors:
        fraction = (
            route_policy.percent(m.percentage)
            if m.percentage is not None
            else route_policy.int_percent(100)
        )
        wanted.append((m.destination, fraction))
    out = []
    for dest, fraction in wanted:
        policy = _mirror_to(dest, fraction, scope)
        if policy is not None:
            out.append(policy)
    return out


def _mirror_to(
    dest: net.Destination, fraction: FractionalPercent, scope: Scope
) -> rc.RouteAction.RequestMirrorPolicy | None:
    t = target(scope, dest)
    if t is None or fraction.numerator == 0:
        return None
    return rc.RouteAction.RequestMirrorPolicy(
        cluster=t.cluster,
        runtime_fraction=base_pb2.RuntimeFractionalPercent(default_value=fraction),
        trace_sampled=wrappers_pb2.BoolValue(value=False),
    )


# VirtualServices converted from the Gateway API carry this annotation; in them a
# redirect `uri` starting with PREFIX_MARKER replaces only the matched prefix (the
# Gateway API's ReplacePrefixMatch, written as Istio's conversion writes it).
ROUTE_SEMANTICS = "internal.ami.dev/route-semantics"
GATEWAY_API = "gateway"
PREFIX_MARKER = "%PREFIX()%"


def redirect(route: rc.Route, spec: net.HTTPRedirect, *, gateway_api: bool = False) -> bool:
    """Make `route` redirect; False if Envoy cannot send `spec.redirectCode`."""
    code = _REDIRECT_CODES.get(spec.redirectCode or 301)
    if code is None:
        return False
    out = route.redirect
    out.response_code = code
    if spec.uri and gateway_api and spec.uri.startswith(PREFIX_MARKER):
        out.prefix_rewrite = spec.uri.removeprefix(PREFIX_MARKER)
    elif spec.uri:
        out.path_redirect = spec.uri
    if spec.authority:
        out.host_redirect = spec.authority
    if spec.scheme:
        out.scheme_redirect = spec.scheme
    if spec.port is not None:
        scheme = spec.scheme or "http"
        # The default port of the scheme is left out of the Location, as browsers do.
        if (scheme, spec.port) not in (("http", 80), ("https", 443)):
            out.port_redirect = spec.port
    return True


def direct_response(route: rc.Route, spec: net.HTTPDirectResponse) -> None:
    out = route.direct_response
    out.status = spec.status
    if spec.body is None:
        return
    if spec.body.string is not None:
        out.body.inline_string = spec.body.string
    elif spec.body.bytes is not None:
        try:
            out.body.inline_bytes = base64.b64decode(spec.body.bytes, validate=True)
        except binascii.Error:
            # Validation should have caught it; send the text rather than nothing.
            out.body.inline_bytes = spec.body.bytes.encode()
