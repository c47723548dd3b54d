"""Gateway API checks beyond the schema, after the API's own validation rules (its CEL
rules on the CRDs): a filter names its type's field and no other; a path rewrite's type
names its value; ReplacePrefixMatch needs a PathPrefix match; paths start with "/";
regular expressions are RE2; listener names are unique in a Gateway; a Terminate
listener has a certificate; hostnames are host names (a leading `*.` allowed)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from amimesh.resources import gateway_api as ga
from amimesh.resources import re2
from amimesh.resources.checks_common import duplicates, host_problem
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import NOT_SUPPORTED_MESSAGE, show

_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "ExtensionRef": "extensionRef",
    "CORS": "cors",
}
_NOT_YET = ("ExtensionRef", "CORS")
# The API's HTTPHeaderName: an HTTP token.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")


def _header_name(name: str, loc: Loc) -> Iterator[Issue]:
    if not _HEADER_NAME.match(name):
        yield Issue(loc, f"{show(name)} is not a valid HTTP header name")


def check_gateway(gateway: ga.Gateway) -> Iterator[Issue]:
    listeners = gateway.spec.listeners
    for first, later in duplicates(listeners, lambda x: x.name):
        yield Issue(
            ("spec", "listeners", later, "name"),
            f'listener name "{listeners[later].name}" is already used by listeners[{first}]',
        )
    for i, listener in enumerate(listeners):
        loc: Loc = ("spec", "listeners", i)
        if listener.hostname is not None:
            yield from _host_issues(listener.hostname, (*loc, "hostname"))
        if listener.protocol == "UDP":
            yield Issue((*loc, "protocol"), f"UDP {NOT_SUPPORTED_MESSAGE}")
        tls = listener.tls
        if listener.protocol == "HTTPS":
            if tls is None or tls.mode != "Terminate" or not tls.certificateRefs:
                yield Issue((*loc, "tls"), "an HTTPS listener needs tls.certificateRefs")
        elif listener.protocol == "TLS":
            if tls is None:
                yield Issue((*loc, "tls"), "a TLS listener needs tls (mode Passthrough)")
        elif tls is not None:
            yield Issue((*loc, "tls"), f"must not be set on a {listener.protocol} listener")
        if tls is not None and tls.mode == "Passthrough" and tls.certificateRefs:
            yield Issue((*loc, "tls", "certificateRefs"), "must not be set with Passthrough")
        namespaces = listener.allowedRoutes.namespaces if listener.allowedRoutes else None
        if namespaces is not None and (namespaces.from_ == "Selector") != (
            namespaces.selector is not None
        ):
            yield Issue(
                (*loc, "allowedRoutes", "namespaces", "selector"),
                "is required with from: Selector, and only then",
            )


def check_http_route(route: ga.HTTPRoute) -> Iterator[Issue]:
    yield from _hostnames(route.spec.hostnames)
    for i, rule in enumerate(route.spec.rules):
        loc: Loc = ("spec", "rules", i)
        for j, match in enumerate(rule.matches):
            yield from _match_issues(match, (*loc, "matches", j))
        yield from _filters(rule.filters, (*loc, "filters"))
        types = [f.type for f in rule.filters]
        if "RequestRedirect" in types and "URLRewrite" in types:
            yield Issue((*loc, "filters"), "RequestRedirect and URLRewrite cannot be combined")
        if "RequestRedirect" in types and rule.backendRefs:
            yield Issue((*loc, "backendRefs"), "must be empty with a RequestRedirect filter")
        for t in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect"):
            if types.count(t) > 1:
                yield Issue((*loc, "filters"), f"{t} may be given once per rule")
        prefix_rewrite = any(
            f.type in ("URLRewrite", "RequestRedirect") and _path_of(f) == "ReplacePrefixMatch"
            for f in rule.filters
        )
        if prefix_rewrite and not all(
            m.path is None or m.path.type == "PathPrefix" for m in rule.matches
        ):
            yield Issue(
                (*loc, "filters"),
                "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
            )
        for j, backend in enumerate(rule.backendRefs):
            yield from _filters(backend.filters, (*loc, "backendRefs", j, "filters"))
        timeouts = rule.timeouts
        if (
            timeouts is not None
            and timeouts.request
            and timeouts.backendRequest is not None
            and timeouts.backendRequest > timeouts.request
        ):
            yield Issue(
                (*loc, "timeouts", "backendRequest"),
                "must not be longer than timeouts.request",
            )


def check_grpc_route(route: ga.GRPCRoute) -> Iterator[Issue]:
    yield from _hostnames(route.spec.hostnames)
    for i, rule in enumerate(route.spec.rules):
        loc: Loc = ("spec", "rules", i)
        for j, match in enumerate(rule.matches):
            at: Loc = (*loc, "matches", j)
            method = match.method
            if method is not None:
                if method.service is None and method.method is None:
                    yield Issue((*at, "method"), "must set service, method or both")
                if method.type == "RegularExpression":
                    for name in ("service", "method"):
                        yield from _regex(getattr(method, name), (*at, "method", name))
            for k, h in enumerate(match.headers):
                yield from _header_name(h.name, (*at, "headers", k, "name"))
                if h.type == "RegularExpression":
                    yield from _regex(h.value, (*at, "headers", k, "value"))
        yield from _filters(rule.filters, (*loc, "filters"))


def check_tls_route(route: ga.TLSRoute) -> Iterator[Issue]:
    yield from _hostnames(route.spec.hostnames)


def _hostnames(hostnames: Sequence[str]) -> Iterator[Issue]:
    for i, h in enumerate(hostnames):
        yield from _host_issues(h, ("spec", "hostnames", i))


def _host_issues(host: str, loc: Loc) -> Iterator[Issue]:
    if host == "*":
        yield Issue(loc, 'must not be "*" (leave it unset to match every host)')
        return
    problem = host_problem(host, wildcard=True)
    if problem is not None:
        yield Issue(loc, problem)


def _match_issues(match: ga.HTTPRouteMatch, loc: Loc) -> Iterator[Issue]:
    path = match.path
    if path is not None:
        if path.type == "RegularExpression":
            yield from _regex(path.value, (*loc, "path", "value"))
        elif not path.value.startswith("/"):
            yield Issue((*loc, "path", "value"), f'must start with "/", got {show(path.value)}')
    for key in ("headers", "queryParams"):
        items = getattr(match, key)
        for first, later in duplicates(items, lambda m: m.name.lower()):
            yield Issue((*loc, key, later, "name"), f"is already matched by {key}[{first}]")
        for k, m in enumerate(items):
            if key == "headers":
                yield from _header_name(m.name, (*loc, key, k, "name"))
            if m.type == "RegularExpression":
                yield from _regex(m.value, (*loc, key, k, "value"))


def _regex(value: str | None, loc: Loc) -> Iterator[Issue]:
    if value is None:
        return
    problem = re2.problem(value)
    if problem is not None:
        yield Issue(loc, problem)


def _path_of(f: ga.HTTPRouteFilter | ga.GRPCRouteFilter) -> str | None:
    body = getattr(f, _FILTER_FIELDS[f.type], None)
    path = getattr(body, "path", None)
    return path.type if isinstance(path, ga.HTTPPathModifier) else None


def _filters(
    filters: Sequence[ga.HTTPRouteFilter | ga.GRPCRouteFilter], loc: Loc
) -> Iterator[Issue]:
    for i, f in enumerate(filters):
        at: Loc = (*loc, i)
        if f.type in _NOT_YET:
            yield Issue((*at, "type"), f"{f.type} filters {NOT_SUPPORTED_MESSAGE}")
            continue
        want = _FILTER_FIELDS[f.type]
        for name in _FILTER_FIELDS.values():
            given = getattr(f, name, None) is not None
            if name == want and not given:
                yield Issue((*at, name), f"is required with type {f.type}")
            elif name != want and given:
                yield Issue((*at, name), f"must not be set with type {f.type}")
        body = getattr(f, want, None)
        if isinstance(body, ga.HTTPHeaderFilter):
            yield from _header_filter(body, (*at, want), response=want.startswith("response"))
        hostname = getattr(body, "hostname", None)
        if isinstance(hostname, str):
            problem = host_problem(hostname, wildcard=False)
            if problem is not None:
                yield Issue((*at, want, "hostname"), problem)
        path = getattr(body, "path", None)
        if isinstance(path, ga.HTTPPathModifier):
            yield from _path_modifier(path, (*at, want, "path"))
        if isinstance(body, ga.HTTPRequestMirrorFilter) and (
            body.percent is not None and body.fraction is not None
        ):
            yield Issue((*at, want), "set only one of percent and fraction")
        if isinstance(body, ga.HTTPRequestMirrorFilter) and body.fraction is not None:
            if body.fraction.numerator > body.fraction.denominator:
                yield Issue(
                    (*at, want, "fraction", "numerator"), "must not be more than denominator"
                )


def _header_filter(body: ga.HTTPHeaderFilter, loc: Loc, *, response: bool) -> Iterator[Issue]:
    for op in ("set", "add"):
        headers: list[ga.HTTPHeader] = getattr(body, op)
        for i, h in enumerate(headers):
            yield from _header_name(h.name, (*loc, op, i, "name"))
            if response and h.name.lower() == "host":
                yield Issue((*loc, op, i, "name"), "the host header can only be set on requests")
        for first, later in duplicates(headers, lambda h: h.name.lower()):
            yield Issue((*loc, op, later, "name"), f"is already named by {op}[{first}]")
    for i, name in enumerate(body.remove):
        yield from _header_name(name, (*loc, "remove", i))
    for first, later in duplicates(body.remove, str.lower):
        yield Issue((*loc, "remove", later), f"is already named by remove[{first}]")


def _path_modifier(path: ga.HTTPPathModifier, loc: Loc) -> Iterator[Issue]:
    want = "replaceFullPath" if path.type == "ReplaceFullPath" else "replacePrefixMatch"
    other = "replacePrefixMatch" if want == "replaceFullPath" else "replaceFullPath"
    if getattr(path, want) is None:
        yield Issue((*loc, want), f"is required with type {path.type}")
    if getattr(path, other) is not None:
        yield Issue((*loc, other), f"must not be set with type {path.type}")
