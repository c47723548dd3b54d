"""HTTPProxy checks beyond the schema (what Contour refuses in one proxy alone).

- A condition list has at most one path prefix (Contour: "more than one prefix is not
  allowed in a condition block").
- `timeoutPolicy.response` is a duration or "infinity"; `retryPolicy.retryOn` names
  Envoy's retry conditions.
- `pathRewritePolicy.replacePrefix` names each prefix once (at most one entry without).
- `includes` name each (namespace, name) once; a proxy does not include itself.

What needs other proxies (orphans, cycles, duplicate fqdns, missing includes) is the
delegation's status (`model.httpproxy`), as Contour reports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from amimesh.resources import contour
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import parse_duration, show

RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def check_http_proxy(p: contour.HTTPProxy) -> Iterator[Issue]:
    seen: set[tuple[str, str]] = set()
    for i, inc in enumerate(p.spec.includes):
        where: Loc = ("spec", "includes", i)
        key = (inc.namespace or p.namespace, inc.name)
        if key in seen:
            yield Issue((*where, "name"), f"includes {key[0]}/{key[1]} twice")
        seen.add(key)
        if key == (p.namespace, p.name):
            yield Issue((*where, "name"), "includes itself")
        yield from _conditions(inc.conditions, (*where, "conditions"))
    for i, route in enumerate(p.spec.routes):
        yield from _route(route, ("spec", "routes", i))


def _conditions(conditions: Sequence[contour.MatchCondition], where: Loc) -> Iterator[Issue]:
    prefixes = [i for i, c in enumerate(conditions) if c.prefix is not None]
    if len(prefixes) > 1:
        yield Issue(
            (*where, prefixes[1], "prefix"), "a condition list takes one path prefix at most"
        )


def _route(route: contour.Route, where: Loc) -> Iterator[Issue]:
    yield from _conditions(route.conditions, (*where, "conditions"))
    if not route.services:
        yield Issue((*where, "services"), "must name at least one service")
    timeout = route.timeoutPolicy.response if route.timeoutPolicy else None
    if timeout is not None and timeout != "infinity":
        try:
            parse_duration(timeout)
        except ValueError as e:
            yield Issue((*where, "timeoutPolicy", "response"), f'{e}, or "infinity"')
    if route.retryPolicy is not None:
        for j, cond in enumerate(route.retryPolicy.retryOn):
            if cond not in RETRY_ON:
                yield Issue(
                    (*where, "retryPolicy", "retryOn", j),
                    f"{show(cond)} is not a retry condition; use one of "
                    + ", ".join(sorted(RETRY_ON)),
                )
    if route.pathRewritePolicy is not None:
        prefixes: set[str | None] = set()
        for j, rp in enumerate(route.pathRewritePolicy.replacePrefix):
            if rp.prefix in prefixes:
                yield Issue(
                    (*where, "pathRewritePolicy", "replacePrefix", j, "prefix"),
                    "names a prefix an earlier replacement names (ambiguous)",
                )
            prefixes.add(rp.prefix)
