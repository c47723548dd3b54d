"""TCPRoute and TLSRoute rules as VirtualService `tcp` and `tls` routes.

Each rule becomes one route whose destinations are the rule's backendRefs that
resolve, with their weights (relative; weight 0 gets nothing). A rule none of whose
backends resolves becomes no route: its connections are closed, as the API asks of a
rule with no valid backend. Routes sort oldest first, then by namespace/name and the
rules' order: a TCP listener takes each connection by its first route (a connection
says nothing else to choose by), a TLS one by the client's SNI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amimesh.gatewayapi import http
from amimesh.resources import gateway_api as ga

StreamRoute = ga.TCPRoute | ga.TLSRoute


@dataclass(frozen=True)
class Entry:
    """One `tcp` or `tls` route's destinations, and where it sorts."""

    order: tuple[Any, ...]
    route: list[dict[str, Any]]


@dataclass
class Rules:
    entries: list[Entry] = field(default_factory=list)
    unresolved: list[http.Problem] = field(default_factory=list)


def rules(route: StreamRoute, resolve: http.Resolve) -> Rules:
    out = Rules()
    age = (route.metadata.creationTimestamp or "", route.namespace, route.name)
    for i, rule in enumerate(route.spec.rules):
        destinations: list[dict[str, Any]] = []
        for b in rule.backendRefs:
            dest, problem = resolve(b.ref)
            if dest is None:
                if problem is not None:
                    out.unresolved.append(problem)
                continue
            if b.weight > 0:
                destinations.append({"destination": dest, "weight": b.weight})
        if destinations:
            out.entries.append(Entry((*age, i), destinations))
    return out


def tcp_routes(entries: list[Entry], port: int | None) -> list[dict[str, Any]]:
    """The `tcp` routes of `entries`, in order; `port` limits them to a service port."""
    match = [{"port": port}] if port is not None else []
    return [
        {**({"match": match} if match else {}), "route": e.route}
        for e in sorted(entries, key=lambda e: e.order)
    ]


def tls_routes(entries: list[Entry], sni: str) -> list[dict[str, Any]]:
    """The `tls` routes of `entries` for the SNI name `sni`, in order."""
    return [
        {"match": [{"sniHosts": [sni]}], "route": e.route}
        for e in sorted(entries, key=lambda e: e.order)
    ]
