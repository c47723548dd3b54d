"""VirtualService checks beyond the schema, after Istio's validation rules.

Route weights follow Istio 1.15 and later: they are relative (a destination gets
weight / sum of weights), a single destination may omit its weight, and with several
destinations the weights must not all be 0 or omitted.
"""

from __future__ import annotations

import binascii
import ipaddress
from collections.abc import Iterator

from amimesh.resources import istio_networking as net
from amimesh.resources.checks_common import (
    dns_label_problem,
    export_to_issues,
    header_operation_issues,
    host_problem,
)
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import UINT32_MAX

ACTIONS = ("route", "redirect", "directResponse", "delegate")
_MAX_BODY = 1024 * 1024
# Envoy's longest query parameter name in a match.
_MAX_QUERY_NAME = 1024
_STAR = 'is not a valid regular expression: "*" repeats nothing (write ".*" to match anything)'


def check_virtual_service(vs: net.VirtualService) -> Iterator[Issue]:
    spec = vs.spec
    is_delegate = not spec.hosts
    for i, host in enumerate(spec.hosts):
        problem = host_problem(host, wildcard=True)
        if problem is not None:
            yield Issue(("spec", "hosts", i), problem)
    if is_delegate and spec.gateways:
        yield Issue(
            ("spec", "gateways"),
            "must be empty on a delegate VirtualService (one without hosts)",
        )
    if not spec.http and not spec.tcp and not spec.tls:
        yield Issue(("spec", "http"), "must have at least one http, tls or tcp route")
    if is_delegate and (spec.tcp or spec.tls):
        yield Issue(("spec", "tcp" if spec.tcp else "tls"), "a delegate has http routes only")
    yield from export_to_issues(spec.exportTo, ("spec", "exportTo"))
    for i, route in enumerate(spec.http):
        yield from _route_issues(route, ("spec", "http", i), is_delegate)
    for i, tcp in enumerate(spec.tcp):
        yield from _l4_route_issues(tcp, ("spec", "tcp", i))
    for i, tls in enumerate(spec.tls):
        yield from _l4_route_issues(tls, ("spec", "tls", i))


def _l4_route_issues(route: net.TCPRoute | net.TLSRoute, loc: Loc) -> Iterator[Issue]:
    if not route.route:
        yield Issue((*loc, "route"), "must have at least one destination")
    total = sum(d.weight or 0 for d in route.route)
    if len(route.route) > 1 and total == 0:
        yield Issue(
            (*loc, "route"),
            f"the weights of the {len(route.route)} destinations add up to 0: give at least "
            "one a weight (weights are relative: a destination gets weight/sum of the traffic)",
        )
    for i, dest in enumerate(route.route):
        yield from _destination_issues(dest.destination, (*loc, "route", i, "destination"))
    for i, match in enumerate(route.match):
        where = (*loc, "match", i)
        for j, subnet in enumerate(match.destinationSubnets):
            try:
                ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                yield Issue(
                    (*where, "destinationSubnets", j),
                    f'must be an IP address or CIDR block, got "{subnet}"',
                )
        if match.sourceNamespace is not None:
            problem = dns_label_problem(match.sourceNamespace)
            if problem is not None:
                yield Issue((*where, "sourceNamespace"), problem)
        for j, sni in enumerate(getattr(match, "sniHosts", [])):
            problem = host_problem(sni, wildcard=True)
            if problem is not None:
                yield Issue((*where, "sniHosts", j), problem)


def _route_issues(route: net.HTTPRoute, loc: Loc, in_delegate: bool) -> Iterator[Issue]:
    yield from _action_issues(route, loc, in_delegate)
    for i, match in enumerate(route.match):
        yield from _match_issues(match, (*loc, "match", i))
    if route.corsPolicy is not None:
        for i, origin in enumerate(route.corsPolicy.allowOrigins):
            yield from _string_match_issues(origin, (*loc, "corsPolicy", "allowOrigins", i))
    total = sum(d.weight or 0 for d in route.route)
    if len(route.route) > 1 and total == 0:
        yield Issue(
            (*loc, "route"),
            f"the weights of the {len(route.route)} destinations add up to 0: give at least "
            "one a weight (weights are relative: a destination gets weight/sum of the traffic)",
        )
    if total > UINT32_MAX:
        yield Issue(
            (*loc, "route"),
            f"the weights add up to {total}, more than Envoy takes ({UINT32_MAX}): weights "
            "are relative, smaller ones split the traffic the same way",
        )
    for i, dest in enumerate(route.route):
        yield from _destination_issues(dest.destination, (*loc, "route", i, "destination"))
        yield from header_operation_issues(dest.headers, (*loc, "route", i, "headers"))
    if route.mirror is not None:
        yield from _destination_issues(route.mirror, (*loc, "mirror"))
        if route.mirrors:
            yield Issue((*loc, "mirrors"), "set either mirror or mirrors, not both (as Istio)")
    for i, m in enumerate(route.mirrors):
        yield from _destination_issues(m.destination, (*loc, "mirrors", i, "destination"))
    yield from header_operation_issues(route.headers, (*loc, "headers"))
    yield from _authority_issues(route, loc)
    yield from _redirect_issues(route.redirect, (*loc, "redirect"))
    yield from _rewrite_issues(route.rewrite, (*loc, "rewrite"))
    yield from _retry_issues(route.retries, (*loc, "retries"))
    if route.fault is not None and route.fault.delay is None and route.fault.abort is None:
        yield Issue((*loc, "fault"), "must set delay, abort or both")
    if route.directResponse is not None:
        yield from _body_issues(route.directResponse.body, (*loc, "directResponse", "body"))


def _action_issues(route: net.HTTPRoute, loc: Loc, in_delegate: bool) -> Iterator[Issue]:
    values = (route.route or None, route.redirect, route.directResponse, route.delegate)
    present = [name for name, value in zip(ACTIONS, values, strict=True) if value is not None]
    if in_delegate and route.delegate is not None:
        yield Issue(
            (*loc, "delegate"),
            "a delegate VirtualService (one without hosts) cannot delegate again",
        )
    elif not present:
        yield Issue(loc, "needs one of route, redirect, directResponse or delegate")
    for extra in present[1:]:
        yield Issue(
            (*loc, extra),
            f"cannot be used together with {present[0]}: an HTTP route takes exactly one of "
            "route, redirect, directResponse or delegate",
        )
    answered = route.redirect is not None or route.directResponse is not None
    if answered:
        answer = "redirect" if route.redirect is not None else "directResponse"
        for name in ("rewrite", "fault"):
            if getattr(route, name) is not None:
                yield Issue(
                    (*loc, name),
                    f"cannot be used with {answer}: the route answers the client itself",
                )


def _match_issues(match: net.HTTPMatchRequest, loc: Loc) -> Iterator[Issue]:
    if match.sourceNamespace is not None:
        problem = dns_label_problem(match.sourceNamespace)
        if problem is not None:
            yield Issue((*loc, "sourceNamespace"), problem)
    for name in ("uri", "method", "authority"):
        yield from _string_match_issues(getattr(match, name), (*loc, name))
    for field, matches in (("headers", match.headers), ("queryParams", match.queryParams)):
        for key, value in matches.items():
            yield from _star_regex(value, (*loc, field, key))
    for key in match.queryParams:
        if not key or len(key.encode()) > _MAX_QUERY_NAME:
            yield Issue(
                (*loc, "queryParams", key),
                f"a query parameter name is 1 to {_MAX_QUERY_NAME} bytes long, "
                f"got {len(key.encode())}",
            )


def _string_match_issues(match: net.StringMatch | None, loc: Loc) -> Iterator[Issue]:
    """Only header and query parameter matches may be empty (meaning "is present")."""
    if match is not None and match.exact is None and match.prefix is None and match.regex is None:
        yield Issue(loc, "must set one of exact, prefix, regex")
    yield from _star_regex(match, loc)


def _star_regex(match: net.StringMatch | None, loc: Loc) -> Iterator[Issue]:
    """A lone "*" regex means "present" in withoutHeaders only; elsewhere it is invalid."""
    if match is not None and match.regex == "*":
        yield Issue((*loc, "regex"), _STAR)


def _destination_issues(dest: net.Destination, loc: Loc) -> Iterator[Issue]:
    problem = host_problem(dest.host, wildcard=False)
    if problem is not None:
        yield Issue((*loc, "host"), problem)
    if dest.subset is not None:
        problem = dns_label_problem(dest.subset)
        if problem is not None:
            yield Issue((*loc, "subset"), problem)


def _authority_issues(route: net.HTTPRoute, loc: Loc) -> Iterator[Issue]:
    """The authority may be rewritten in one place only."""
    request = route.headers.request if route.headers is not None else None
    if request is None:
        return
    setters = [
        (op, name)
        for op, values in (("set", request.set), ("add", request.add))
        for name in values
        if name.lower() in (":authority", "host")
    ]
    if route.rewrite is not None and route.rewrite.authority is not None:
        setters.insert(0, ("rewrite", "authority"))
    for op, name in setters[1:]:
        where: Loc = (*loc, "headers", "request", op, name)
        yield Issue(where, "the authority is already rewritten elsewhere in this route")


def _redirect_issues(redirect: net.HTTPRedirect | None, loc: Loc) -> Iterator[Issue]:
    if redirect is None:
        return
    if all(v is None for v in (redirect.uri, redirect.authority, redirect.scheme, redirect.port)):
        yield Issue(loc, "must set at least one of uri, authority, scheme, port")
    if redirect.scheme is not None and redirect.scheme not in ("http", "https"):
        yield Issue((*loc, "scheme"), f'must be "http" or "https", got "{redirect.scheme}"')


def _rewrite_issues(rewrite: net.HTTPRewrite | None, loc: Loc) -> Iterator[Issue]:
    if rewrite is None:
        return
    if rewrite.uri is not None and rewrite.uriRegexRewrite is not None:
        yield Issue((*loc, "uriRegexRewrite"), "cannot be used together with uri")
    if rewrite.uri is None and rewrite.uriRegexRewrite is None and rewrite.authority is None:
        yield Issue(loc, "must set uri, uriRegexRewrite or authority")
    if rewrite.uriRegexRewrite is not None and rewrite.uriRegexRewrite.match == "*":
        yield Issue((*loc, "uriRegexRewrite", "match"), _STAR)


def _retry_issues(retries: net.HTTPRetry | None, loc: Loc) -> Iterator[Issue]:
    if retries is None or retries.attempts != 0:
        return
    for name in ("perTryTimeout", "retryOn", "retryRemoteLocalities"):
        if getattr(retries, name) is not None:
            yield Issue(
                (*loc, name),
                "has no effect: attempts is 0, which turns retries off",
            )


def _body_issues(body: net.HTTPBody | None, loc: Loc) -> Iterator[Issue]:
    if body is None:
        return
    if body.string is not None and body.bytes is not None:
        yield Issue((*loc, "bytes"), "cannot be used together with string")
    if body.bytes is not None:
        try:
            data = binascii.a2b_base64(body.bytes.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            yield Issue((*loc, "bytes"), "must be base64-encoded")
            return
        if len(data) > _MAX_BODY:
            yield Issue((*loc, "bytes"), "must be at most 1 MiB")
    if body.string is not None and len(body.string.encode()) > _MAX_BODY:
        yield Issue((*loc, "string"), "must be at most 1 MiB")
