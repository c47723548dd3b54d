"""`ami get` columns of the Gateway API's kinds, from their spec and the status the
control plane gives them (a condition that is not True shows its reason)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _spec(item: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = item.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(item: Mapping[str, Any]) -> Mapping[str, Any]:
    status = item.get("status")
    return status if isinstance(status, Mapping) else {}


def _joined(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values) or "-"


def condition(conditions: Iterable[Mapping[str, Any]], kind: str) -> str:
    """`True`, or `False (Reason)`; `-` when there is no such condition."""
    for c in conditions:
        if c.get("type") == kind:
            if c.get("status") == "True":
                return "True"
            return f"{c.get('status')} ({c.get('reason')})"
    return "-"


def _route_condition(item: Mapping[str, Any], kind: str) -> str:
    parents = _status(item).get("parents") or ()
    return _joined(condition(p.get("conditions") or (), kind) for p in parents)


def _parents(item: Mapping[str, Any]) -> str:
    out = []
    for p in _spec(item).get("parentRefs") or ():
        name = p.get("name", "")
        if p.get("namespace"):
            name = f"{p['namespace']}/{name}"
        if p.get("kind") == "Service":
            name = f"svc/{name}"
        if p.get("sectionName"):
            name += f"/{p['sectionName']}"
        if p.get("port"):
            name += f":{p['port']}"
        out.append(name)
    return _joined(out)


def _listeners(item: Mapping[str, Any]) -> str:
    state = {x.get("name"): x for x in _status(item).get("listeners") or ()}
    out = []
    for x in _spec(item).get("listeners") or ():
        text = f"{x.get('name')}:{x.get('port')}/{x.get('protocol')}"
        found = state.get(x.get("name"))
        if found is not None:
            programmed = condition(found.get("conditions") or (), "Programmed")
            text += f" {found.get('attachedRoutes', 0)} routes" if programmed == "True" else ""
            text += "" if programmed == "True" else f" {programmed}"
        out.append(text)
    return ", ".join(out) or "-"


_ROUTE = [
    ("HOSTNAMES", lambda i: _joined(_spec(i).get("hostnames") or ())),
    ("PARENTS", _parents),
    ("ACCEPTED", lambda i: _route_condition(i, "Accepted")),
    ("RESOLVED", lambda i: _route_condition(i, "ResolvedRefs")),
]

COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "GatewayClass": [
        ("CONTROLLER", lambda i: str(_spec(i).get("controllerName", ""))),
        ("ACCEPTED", lambda i: condition(_status(i).get("conditions") or (), "Accepted")),
    ],
    "Gateway.gateway.networking.k8s.io": [
        ("CLASS", lambda i: str(_spec(i).get("gatewayClassName", ""))),
        ("PROGRAMMED", lambda i: condition(_status(i).get("conditions") or (), "Programmed")),
        ("LISTENERS", _listeners),
    ],
    "HTTPRoute": _ROUTE,
    "GRPCRoute": _ROUTE,
    "TLSRoute": _ROUTE,
    "TCPRoute": [c for c in _ROUTE if c[0] != "HOSTNAMES"],
    "ReferenceGrant": [
        (
            "FROM",
            lambda i: _joined(
                f"{f.get('namespace')}/{f.get('kind')}" for f in _spec(i).get("from") or ()
            ),
        ),
        (
            "TO",
            lambda i: _joined(
                f"{t.get('kind')}/{t.get('name') or '*'}" for t in _spec(i).get("to") or ()
            ),
        ),
    ],
}
