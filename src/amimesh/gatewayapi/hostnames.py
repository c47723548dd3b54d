"""Hostname intersection of a listener and a route, as the Gateway API defines it: a
route's hostname matches a listener's exactly or by the other's leading wildcard
(`*.example.com` covers `a.example.com` and `a.b.example.com`), and the more specific
of the two is the one served."""

from __future__ import annotations

from collections.abc import Sequence

ANY = "*"


def covers(wildcard: str, host: str) -> bool:
    """`*.example.com` covers `foo.example.com`, `a.b.example.com` and `*.x.example.com`."""
    if not wildcard.startswith("*."):
        return False
    suffix = wildcard[1:]  # ".example.com"
    bare = host[2:] if host.startswith("*.") else host
    return bare.endswith(suffix) and len(bare) > len(suffix)


def intersect(listener: str | None, route: Sequence[str]) -> list[str]:
    """The hostnames a route serves on a listener; [] when they share none, [`*`] when
    neither names one."""
    hosts = [h.lower() for h in route]
    if listener is None:
        return list(dict.fromkeys(hosts)) or [ANY]
    listener = listener.lower()
    if not hosts:
        return [listener]
    out: list[str] = []
    for h in hosts:
        if h == listener or covers(listener, h):
            out.append(h)
        elif covers(h, listener):
            out.append(listener)
    return list(dict.fromkeys(out))
