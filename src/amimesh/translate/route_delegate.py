"""The http routes a host's VirtualServices give, in order, with delegates inlined.

Several VirtualServices for one host: their routes are concatenated in the order the
snapshot lists the VirtualServices (namespace, then name). Istio leaves that order
undefined; Ami keeps it deterministic. (`routes.py` then moves catch-all routes to the
end, so one VirtualService's catch-all does not hide another's specific routes.)

Delegation (one level, as Istio): a root route with `delegate: {name, namespace}` is
replaced by the delegate's http routes. Each delegate route's match must be narrower
than one of the root's matches (Istio's rules: uri/method/authority and headers/
queryParams prefix-within-prefix or equal exact, no regex on either side, same
ignoreUriCase, same port); a delegate route whose match cannot be merged is dropped.
A merged match takes the delegate's conditions and, where the delegate sets none, the
root's; unlike Istio, the root's sourceLabels, sourceNamespace and gateways carry over
too, so a root restricted to some clients stays restricted after delegation.
Route-level fields the delegate leaves unset (rewrite, timeout, retries, fault, mirror,
corsPolicy, headers) come from the root route. A missing delegate, one not exported to
the root's namespace, or a delegate route that itself delegates, yields no routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_networking as net


@dataclass(frozen=True)
class SourcedRoute:
    """An http route and the VirtualService it came from (for host names and metadata)."""

    route: net.HTTPRoute
    origin: net.VirtualService


def exported_to(vs: net.VirtualService, namespace: str) -> bool:
    """Whether `vs` is visible in `namespace` under its `exportTo`."""
    export = vs.spec.exportTo
    return (
        not export
        or "*" in export
        or namespace in export
        or ("." in export and vs.namespace == namespace)
    )


def flatten(snap: Snapshot, services: Iterable[net.VirtualService]) -> Iterator[SourcedRoute]:
    """Every http route of `services` in order, delegates replaced by their merged routes."""
    for vs in services:
        for http in vs.spec.http:
            if http.delegate is None:
                yield SourcedRoute(http, vs)
                continue
            ns = http.delegate.namespace or vs.namespace
            child = snap.delegate(http.delegate.name, ns)
            if child is None or not exported_to(child, vs.namespace):
                continue
            for sub in child.spec.http:
                if sub.delegate is not None:
                    continue
                merged = merge_route(http, sub)
                if merged is not None:
                    yield SourcedRoute(merged, child)


def merge_route(root: net.HTTPRoute, sub: net.HTTPRoute) -> net.HTTPRoute | None:
    """`sub` placed under `root`; None if their matches conflict."""
    matches = merge_matches(root.match, sub.match)
    if matches is None:
        return None
    update: dict[str, Any] = {"match": matches, "name": _join(root.name, sub.name)}
    inherited = (
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "mirror",
        "mirrorPercent",
        "mirrorPercentage",
        "corsPolicy",
        "headers",
    )
    for name in inherited:
        if getattr(sub, name) is None:
            update[name] = getattr(root, name)
    return sub.model_copy(update=update)


def merge_matches(
    root: list[net.HTTPMatchRequest], sub: list[net.HTTPMatchRequest]
) -> list[net.HTTPMatchRequest] | None:
    if not root:
        return sub
    if not sub:
        return root
    out: list[net.HTTPMatchRequest] = []
    for leaf in sub:
        merged = [merge_match(r, leaf) for r in root if not _conflict(r, leaf)]
        if not merged:
            return None
        out.extend(merged)
    return out


def merge_match(root: net.HTTPMatchRequest, leaf: net.HTTPMatchRequest) -> net.HTTPMatchRequest:
    return leaf.model_copy(
        update={
            "name": _join(root.name, leaf.name),
            "uri": leaf.uri or root.uri,
            "method": leaf.method or root.method,
            "authority": leaf.authority or root.authority,
            "headers": {**root.headers, **leaf.headers},
            "withoutHeaders": {**root.withoutHeaders, **leaf.withoutHeaders},
            "queryParams": {**root.queryParams, **leaf.queryParams},
            "port": leaf.port or root.port,
            "sourceLabels": leaf.sourceLabels or root.sourceLabels,
            "sourceNamespace": leaf.sourceNamespace or root.sourceNamespace,
            "gateways": leaf.gateways or root.gateways,
        }
    )


def _conflict(root: net.HTTPMatchRequest, leaf: net.HTTPMatchRequest) -> bool:
    pairs = [
        (root.uri, leaf.uri),
        (root.method, leaf.method),
        (root.authority, leaf.authority),
        *((root.headers.get(k), m) for k, m in leaf.headers.items()),
        *((root.withoutHeaders.get(k), m) for k, m in leaf.withoutHeaders.items()),
        *((root.queryParams.get(k), m) for k, m in leaf.queryParams.items()),
    ]
    if any(_string_conflict(r, m) for r, m in pairs):
        return True
    if root.ignoreUriCase != leaf.ignoreUriCase:
        return True
    return root.port is not None and leaf.port is not None and root.port != leaf.port


def _string_conflict(root: net.StringMatch | None, leaf: net.StringMatch | None) -> bool:
    """Whether `leaf` may match something `root` does not (so it cannot be nested)."""
    if root is None or leaf is None:
        return False
    if root.regex is not None or leaf.regex is not None:
        return True
    if root.exact is not None:
        return leaf.exact != root.exact
    assert root.prefix is not None
    value = leaf.prefix if leaf.prefix is not None else leaf.exact
    return value is None or not value.startswith(root.prefix)


def _join(a: str | None, b: str | None) -> str | None:
    if a and b:
        return f"{a}-{b}"
    return b or a
