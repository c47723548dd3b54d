"""VirtualService `match` conditions → Envoy `RouteMatch`, and which matches apply to a proxy.

An `HTTPMatchRequest` has two kinds of conditions. Request conditions (uri, headers,
withoutHeaders, queryParams, method, authority) become a `RouteMatch` that Envoy checks
per request. Placement conditions (port, sourceLabels, sourceNamespace, gateways) are
decided here, at translation time: a match that does not apply to this proxy and virtual
host port yields no Envoy route at all.

String matches follow Istio: `exact`/`prefix`/`regex` map to Envoy's `StringMatcher`;
the regex `*` (not valid RE2) and an empty prefix or regex mean "present".
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from amimesh.model.snapshot import MESH_GATEWAY, gateway_ref
from amimesh.resources import istio_networking as net

__all__ = ["MESH_GATEWAY", "applies", "binds", "route_match"]


def binds(names: list[str], gateway: tuple[str, str] | None, vs_namespace: str) -> bool:
    """Whether a `gateways` list of a VirtualService in `vs_namespace` names `gateway`
    ((namespace, name) of a Gateway; None for the sidecars, `mesh`)."""
    return any(gateway_ref(n, vs_namespace) == gateway for n in names)


def applies(
    match: net.HTTPMatchRequest | None,
    *,
    port: int,
    namespace: str,
    labels: Mapping[str, str],
    gateway: tuple[str, str] | None = None,
    vs_namespace: str = "default",
) -> bool:
    """Whether a match's placement conditions hold for a virtual host on `port`.

    `namespace` and `labels` are the proxy's (a sidecar's, or a gateway's); `gateway`
    is the Gateway whose server the virtual host serves, None for a sidecar. A match's
    `gateways` resolve in `vs_namespace`, the namespace of its VirtualService. The
    match's request conditions are not looked at: Envoy evaluates those per request.
    """
    if match is None:
        return True
    if match.port is not None and match.port != port:
        return False
    if match.gateways and not binds(match.gateways, gateway, vs_namespace):
        return False
    if any(labels.get(k) != v for k, v in match.sourceLabels.items()):
        return False
    return match.sourceNamespace is None or match.sourceNamespace == namespace


def route_match(match: net.HTTPMatchRequest | None) -> rc.RouteMatch:
    """The Envoy match for one `HTTPMatchRequest`; None matches every request."""
    out = rc.RouteMatch(prefix="/")
    if match is None:
        return out
    if match.uri is not None:
        if match.uri.exact is not None:
            out.path = match.uri.exact
        elif match.uri.prefix is not None:
            out.prefix = match.uri.prefix or "/"
        elif match.uri.regex is not None:
            out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.uri.regex))
    if match.ignoreUriCase:
        out.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=False))
    # Header order is by name, so the output does not depend on the YAML's key order.
    headers = [header_matcher(n.lower(), m) for n, m in sorted(match.headers.items())]
    for name, m in sorted(match.withoutHeaders.items()):
        inverted = header_matcher(name.lower(), m)
        inverted.invert_match = True
        if not inverted.present_match:
            # A missing header then compares as "" and so counts as "without" it.
            inverted.treat_missing_header_as_empty = True
        headers.append(inverted)
    headers.sort(key=lambda h: h.name)
    if match.method is not None:
        headers.append(header_matcher(":method", match.method))
    if match.authority is not None:
        headers.append(header_matcher(":authority", match.authority))
    out.headers.extend(headers)
    for name, m in sorted(match.queryParams.items()):
        qp = rc.QueryParameterMatcher(name=name)
        sm = string_matcher(m)
        if sm is None:
            qp.present_match = True
        else:
            qp.string_match.CopyFrom(sm)
        out.query_parameters.append(qp)
    return out


def header_matcher(name: str, match: net.StringMatch) -> rc.HeaderMatcher:
    out = rc.HeaderMatcher(name=name)
    sm = string_matcher(match)
    if sm is None:
        out.present_match = True
    else:
        out.string_match.CopyFrom(sm)
    return out


def string_matcher(match: net.StringMatch) -> string_pb2.StringMatcher | None:
    """Envoy's matcher for an Istio `StringMatch`; None when it only asks for presence."""
    if match.exact is not None:
        return string_pb2.StringMatcher(exact=match.exact)
    if match.prefix:
        return string_pb2.StringMatcher(prefix=match.prefix)
    if match.regex and match.regex != "*":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=match.regex))
    return None


def is_catch_all(match: rc.RouteMatch) -> bool:
    """Whether `match` takes every request, so that routes after it are unreachable."""
    which = match.WhichOneof("path_specifier")
    path_all = (which == "prefix" and match.prefix == "/") or (
        which == "safe_regex" and match.safe_regex.regex == ".*"
    )
    return (
        path_all
        and not match.headers
        and not match.query_parameters
        and not match.dynamic_metadata
        and not match.HasField("runtime_fraction")
    )
