"""HTTPRoute and GRPCRoute rules as VirtualService http routes, with the Gateway API's
precedence.

Each match of a rule becomes its own VirtualService route (one match each), so the
routes of every rule of every route on one hostname can be sorted by the API's
precedence and served first-match, as the mesh serves a VirtualService:

1. an Exact path before a RegularExpression one before a PathPrefix one; among
   prefixes, the longest first (regular expressions sit between exact and prefix
   matches, as the API leaves their place to the implementation);
2. a match with a method before one without;
3. more header matches first, then more query parameter matches;
4. then the oldest route (`metadata.creationTimestamp`), then namespace/name, then
   the rule's and the match's order.

A PathPrefix matches whole path elements (`/foo` matches `/foo` and `/foo/bar`, never
`/foobar`; a trailing `/` is ignored): it becomes two routes, `exact: /foo` and
`prefix: /foo/`, both sorted as the prefix they came from. ReplacePrefixMatch rewrites
follow the split (`/foo/bar` with replacement `/` is `/bar`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from amimesh.resources import gateway_api as ga

FULL_PATH = "^.*$"
# How a converted redirect says "replace the matched prefix" (see ROUTE_SEMANTICS).
PREFIX_MARKER = "%PREFIX()%"
ROUTE_SEMANTICS = {
    "internal.ami.dev/route-semantics": "gateway"
}  # what ReplaceFullPath's regex rewrite replaces: the whole path

# A backend resolved: (destination, None), or (None, (reason, message)).
Destination = dict[str, Any]
Problem = tuple[str, str]
Resolve = Callable[[ga.BackendObjectReference], tuple[Destination | None, Problem | None]]

# Reasons of the Gateway API used in conditions.
UNSUPPORTED = "UnsupportedValue"


# An Entry's order starts with this many values that rank its match (path, method,
# headers, query parameters); the route's age and name, the rule and the match follow.
MATCH_RANK = 5


@dataclass(frozen=True)
class Entry:
    """One VirtualService route and where it sorts."""

    order: tuple[Any, ...]
    route: dict[str, Any]


@dataclass
class RuleResult:
    entries: list[Entry]
    unresolved: list[Problem]  # ResolvedRefs False (first reason wins)
    unsupported: list[str]  # Accepted False, UnsupportedValue


def _route_order(route: ga.HTTPRoute | ga.GRPCRoute) -> tuple[str, str, str]:
    return (route.metadata.creationTimestamp or "", route.namespace, route.name)


def _escape(value: str) -> str:
    """A literal header value for Envoy, which reads `%NAME%` as a variable."""
    return value.replace("%", "%%")


def header_ops(f: ga.HTTPHeaderFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if f.set:
        out["set"] = {h.name.lower(): _escape(h.value) for h in f.set}
    if f.add:
        out["add"] = {h.name.lower(): _escape(h.value) for h in f.add}
    if f.remove:
        out["remove"] = [n.lower() for n in f.remove]
    return out


def _string_match(kind: str, value: str) -> dict[str, str]:
    return {"regex": value} if kind == "RegularExpression" else {"exact": value}


# --- HTTPRoute ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Half:
    """One VirtualService match of a path: exact, prefix or regex, and how a
    ReplacePrefixMatch of the Gateway API rewrites it."""

    kind: str  # exact, prefix, regex
    value: str
    prefix_split: bool  # the `prefix: /foo/` half of PathPrefix /foo, or prefix `/`


def _path_halves(path: ga.HTTPPathMatch | None) -> tuple[tuple[int, int], list[_Half]]:
    if path is None:
        path = ga.HTTPPathMatch()
    if path.type == "Exact":
        return (0, 0), [_Half("exact", path.value, False)]
    if path.type == "RegularExpression":
        return (1, 0), [_Half("regex", path.value, False)]
    bare = path.value.rstrip("/")
    if not bare:
        return (2, -1), [_Half("prefix", "/", True)]
    return (2, -len(bare)), [_Half("exact", bare, False), _Half("prefix", bare + "/", True)]


def _prefix_rewrite(half: _Half, replacement: str) -> str:
    if half.prefix_split:
        return replacement.rstrip("/") + "/"
    return replacement


def http_rule(
    route: ga.HTTPRoute,
    index: int,
    rule: ga.HTTPRouteRule,
    resolve: Resolve,
    port: int | None = None,
) -> RuleResult:
    """The VirtualService routes of `route`'s rule `index`; `port` is a mesh parent's."""
    result = RuleResult([], [], [])
    base = _http_base(rule, resolve, result)
    matches = rule.matches or [ga.HTTPRouteMatch()]
    for j, match in enumerate(matches):
        path_rank, halves = _path_halves(match.path)
        order = (
            *path_rank,
            0 if match.method else 1,
            -len(match.headers),
            -len(match.queryParams),
            *_route_order(route),
            index,
            j,
        )
        for half in halves:
            vs_match: dict[str, Any] = {"uri": {half.kind: half.value}}
            if match.headers:
                vs_match["headers"] = {
                    h.name.lower(): _string_match(h.type, h.value) for h in match.headers
                }
            if match.queryParams:
                vs_match["queryParams"] = {
                    q.name: _string_match(q.type, q.value) for q in match.queryParams
                }
            if match.method:
                vs_match["method"] = {"exact": match.method}
            if port is not None:
                vs_match["port"] = port
            out = {**base, "match": [vs_match]}
            _path_filters(rule.filters, half, out, result)
            result.entries.append(Entry(order, out))
    return result


def _http_base(rule: ga.HTTPRouteRule, resolve: Resolve, result: RuleResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    redirect = False
    for f in rule.filters:
        if f.type == "RequestHeaderModifier" and f.requestHeaderModifier is not None:
            headers["request"] = header_ops(f.requestHeaderModifier)
        elif f.type == "ResponseHeaderModifier" and f.responseHeaderModifier is not None:
            headers["response"] = header_ops(f.responseHeaderModifier)
        elif f.type == "RequestMirror" and f.requestMirror is not None:
            _mirror(f.requestMirror, resolve, out, result)
        elif f.type == "RequestRedirect":
            redirect = True
    if headers:
        out["headers"] = headers
    if redirect:
        return out  # the redirect itself depends on the path (see _path_filters)
    out.update(_backends(rule.backendRefs, resolve, result))
    _timeouts(rule, out)
    return out


def _mirror(
    m: ga.HTTPRequestMirrorFilter, resolve: Resolve, out: dict[str, Any], result: RuleResult
) -> None:
    if "mirror" in out:
        result.unsupported.append("more than one RequestMirror filter in a rule")
        return
    dest, problem = resolve(m.backendRef)
    if dest is None:
        if problem is not None:
            result.unresolved.append(problem)
        return
    out["mirror"] = dest
    if m.fraction is not None:
        out["mirrorPercentage"] = {"value": 100 * m.fraction.numerator / m.fraction.denominator}
    elif m.percent is not None:
        out["mirrorPercentage"] = {"value": m.percent}


def _backends(
    backends: Sequence[ga.HTTPBackendRef] | Sequence[ga.GRPCBackendRef],
    resolve: Resolve,
    result: RuleResult,
) -> dict[str, Any]:
    """`route` to the backends that resolve, by weight; a direct 500 when none does (or
    all weigh 0), as the API asks of a rule with no valid backend."""
    routes: list[dict[str, Any]] = []
    for b in backends:
        dest, problem = resolve(b.ref)
        if dest is None:
            if problem is not None:
                result.unresolved.append(problem)
            continue
        if b.weight == 0:
            continue
        entry: dict[str, Any] = {"destination": dest, "weight": b.weight}
        headers: dict[str, Any] = {}
        for f in b.filters:
            if f.type == "RequestHeaderModifier" and f.requestHeaderModifier is not None:
                headers["request"] = header_ops(f.requestHeaderModifier)
            elif f.type == "ResponseHeaderModifier" and f.responseHeaderModifier is not None:
                headers["response"] = header_ops(f.responseHeaderModifier)
            else:
                result.unsupported.append(f"a {f.type} filter on a backendRef")
        if headers:
            entry["headers"] = headers
        routes.append(entry)
    if not routes:
        return {"directResponse": {"status": 500}}
    return {"route": routes}


def _timeouts(rule: ga.HTTPRouteRule, out: dict[str, Any]) -> None:
    timeouts, retry = rule.timeouts, rule.retry
    if timeouts is not None and timeouts.request is not None:
        out["timeout"] = f"{timeouts.request}s"
    per_try = timeouts.backendRequest if timeouts is not None else None
    if retry is None and per_try is None:
        return
    # Unset attempts: the mesh's default of 2, as Istio's.
    attempts = 2 if retry is None or retry.attempts is None else retry.attempts
    retries: dict[str, Any] = {"attempts": attempts}
    if retry is not None and retry.codes:
        retries["retryOn"] = ",".join(str(c) for c in dict.fromkeys(retry.codes))
    if per_try is not None:
        if retries["attempts"] == 0:  # no retries: the one try is the backend request
            request = timeouts.request if timeouts is not None else None
            if request is None or request == 0 or per_try < request:
                out["timeout"] = f"{per_try}s"
        else:
            retries["perTryTimeout"] = f"{per_try}s"
    out["retries"] = retries


def _path_filters(
    filters: Sequence[ga.HTTPRouteFilter], half: _Half, out: dict[str, Any], result: RuleResult
) -> None:
    for f in filters:
        if f.type == "URLRewrite" and f.urlRewrite is not None:
            rewrite: dict[str, Any] = {}
            if f.urlRewrite.hostname is not None:
                rewrite["authority"] = f.urlRewrite.hostname
            path = f.urlRewrite.path
            if path is not None and path.replaceFullPath is not None:
                rewrite["uriRegexRewrite"] = {"match": FULL_PATH, "rewrite": path.replaceFullPath}
            elif path is not None and path.replacePrefixMatch is not None:
                rewrite["uri"] = _prefix_rewrite(half, path.replacePrefixMatch)
            if rewrite:
                out["rewrite"] = rewrite
        elif f.type == "RequestRedirect" and f.requestRedirect is not None:
            r = f.requestRedirect
            redirect: dict[str, Any] = {"redirectCode": r.statusCode}
            if r.scheme is not None:
                redirect["scheme"] = r.scheme
            if r.hostname is not None:
                redirect["authority"] = r.hostname
            if r.port is not None:
                redirect["port"] = r.port
            if r.path is not None and r.path.replaceFullPath is not None:
                redirect["uri"] = r.path.replaceFullPath
            elif r.path is not None and r.path.replacePrefixMatch is not None:
                redirect["uri"] = PREFIX_MARKER + _prefix_rewrite(half, r.path.replacePrefixMatch)
            out["redirect"] = redirect


# --- GRPCRoute ---------------------------------------------------------------------------

_ANY_NAME = "[^/]+"


def _grpc_path(m: ga.GRPCMethodMatch | None) -> tuple[int, dict[str, str]]:
    """The `:path` match of a gRPC method match, and its rank (exact first)."""
    if m is None:
        return 3, {"prefix": "/"}
    if m.type == "RegularExpression":
        return 2, {"regex": f"/{m.service or _ANY_NAME}/{m.method or _ANY_NAME}"}
    if m.service is not None and m.method is not None:
        return 0, {"exact": f"/{m.service}/{m.method}"}
    if m.service is not None:
        return 1, {"prefix": f"/{m.service}/"}
    return 2, {"regex": f"/{_ANY_NAME}/{_regex_literal(m.method or '')}"}


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if not (c.isalnum() or c == "_") else c for c in text)


def grpc_rule(
    route: ga.GRPCRoute,
    index: int,
    rule: ga.GRPCRouteRule,
    resolve: Resolve,
    port: int | None = None,
) -> RuleResult:
    result = RuleResult([], [], [])
    base: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    for f in rule.filters:
        if f.type == "RequestHeaderModifier" and f.requestHeaderModifier is not None:
            headers["request"] = header_ops(f.requestHeaderModifier)
        elif f.type == "ResponseHeaderModifier" and f.responseHeaderModifier is not None:
            headers["response"] = header_ops(f.responseHeaderModifier)
        elif f.type == "RequestMirror" and f.requestMirror is not None:
            _mirror(f.requestMirror, resolve, base, result)
    if headers:
        base["headers"] = headers
    base.update(_backends(rule.backendRefs, resolve, result))
    for j, match in enumerate(rule.matches or [ga.GRPCRouteMatch()]):
        rank, uri = _grpc_path(match.method)
        vs_match: dict[str, Any] = {"uri": uri}
        if match.headers:
            vs_match["headers"] = {
                h.name.lower(): _string_match(h.type, h.value) for h in match.headers
            }
        if port is not None:
            vs_match["port"] = port
        order = (rank, 0, 1, -len(match.headers), 0, *_route_order(route), index, j)
        result.entries.append(Entry(order, {**base, "match": [vs_match]}))
    return result
