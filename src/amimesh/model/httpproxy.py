"""Contour's HTTPProxy delegation, as a pure function: HTTPProxies in; the Istio
resources that serve them on the ingress gateway, and Contour's status of each, out.

    out = expand(resources)
    out.derived     # per served root: a Gateway `httpproxy-NAME` and a VirtualService
    out.status      # (namespace, name) -> {"currentStatus", "description", "conditions"}

As Contour's processor does it:
- a root proxy (with `virtualhost`) serves its fqdn; two roots naming one fqdn are both
  `invalid` and neither is served;
- a root's routes, and the routes of every proxy it `includes` (any namespace),
  transitively; an include's conditions are prepended to every route of the included
  proxy: path prefixes concatenated (repeated slashes collapsed), header conditions
  added;
- a proxy no root reaches is `orphaned` and not served; a root cannot be included;
- an include of a missing proxy, or one that closes a cycle, makes the including proxy
  `invalid`: its routes and includes are not served (the rest of the tree is);
- a route naming a Service (or port) that does not exist makes its proxy `invalid`.

Routes are ordered as Envoy needs them for Contour's "most specific wins": longer path
prefixes first, then more header conditions. A route's `timeoutPolicy.response` unset
is Contour's 15s; no `retryPolicy` is no retries (the mesh's default of 2 is Istio's,
not Contour's). With `virtualhost.tls`, routes are served over HTTPS and plain HTTP
redirects to HTTPS (301) except for `permitInsecure` routes, as in Contour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.model import hosts
from amimesh.resources import contour, kube
from amimesh.resources import istio_gateway as gw
from amimesh.resources.meta import Resource

PREFIX = "httpproxy-"
GATEWAY_SELECTOR = {"istio": "ingressgateway"}
HTTP_PORT, HTTPS_PORT = 80, 443
DEFAULT_TIMEOUT = "15s"
VALID, INVALID, ORPHANED = "valid", "invalid", "orphaned"
VALID_DESCRIPTION = "Valid HTTPProxy"
ORPHAN_DESCRIPTION = "this HTTPProxy is not part of a delegation chain from a root HTTPProxy"
_SLASHES = re.compile("//+")
Key = tuple[str, str]


@dataclass
class Expansion:
    derived: list[dict[str, Any]] = field(default_factory=list)
    status: dict[Key, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Flat:
    """A route of a tree with the conditions of every include above it."""

    owner: contour.HTTPProxy
    route: contour.Route
    prefix: str
    headers: tuple[contour.HeaderMatch, ...]


def status_of(state: str, description: str) -> dict[str, Any]:
    ok = state == VALID
    reason = {VALID: "Valid", ORPHANED: "Orphaned"}.get(state, "ErrorPresent")
    return {
        "currentStatus": state,
        "description": description,
        "conditions": [
            {
                "type": "Valid",
                "status": "True" if ok else "False",
                "reason": reason,
                "message": description,
            }
        ],
    }


def expand(resources: Iterable[Resource], domain: str = hosts.DEFAULT_DOMAIN) -> Expansion:
    """Every HTTPProxy of `resources` resolved as Contour would: see the module."""
    all_resources = list(resources)
    proxies = {(r.namespace, r.name): r for r in all_resources if isinstance(r, contour.HTTPProxy)}
    services = {
        (r.namespace, r.name): {p.port for p in r.spec.ports}
        for r in all_resources
        if isinstance(r, kube.Service)
    }
    out = Expansion()
    errors: dict[Key, list[str]] = {}
    roots = sorted(k for k, p in proxies.items() if p.spec.virtualhost is not None)
    by_fqdn: dict[str, list[Key]] = {}
    for k in roots:
        vh = proxies[k].spec.virtualhost
        assert vh is not None
        by_fqdn.setdefault(vh.fqdn.lower(), []).append(k)
    for fqdn, owners in by_fqdn.items():
        if len(owners) > 1:
            names = ", ".join(f"{ns}/{n}" for ns, n in owners)
            for k in owners:
                errors.setdefault(k, []).append(
                    f'fqdn "{fqdn}" is used in multiple HTTPProxies: {names}'
                )
    reached: set[Key] = set()
    ports = _ingress_ports(all_resources)
    for k in roots:
        if k in errors:
            continue
        walk = _Walk(proxies, services, errors, reached)
        flat = list(walk.routes(k, "", (), (k,)))
        if k in errors:
            continue
        flat.sort(key=lambda f: (-len(f.prefix), -len(f.headers)))
        out.derived += _serve(proxies[k], flat, ports, domain)
    for k, p in proxies.items():
        if k in errors:
            out.status[k] = status_of(INVALID, "; ".join(dict.fromkeys(errors[k])))
        elif p.spec.virtualhost is None and k not in reached:
            out.status[k] = status_of(ORPHANED, ORPHAN_DESCRIPTION)
        else:
            out.status[k] = status_of(VALID, VALID_DESCRIPTION)
    return out


class _Walk:
    def __init__(
        self,
        proxies: Mapping[Key, contour.HTTPProxy],
        services: Mapping[Key, set[int]],
        errors: dict[Key, list[str]],
        reached: set[Key],
    ) -> None:
        self.proxies = proxies
        self.services = services
        self.errors = errors
        self.reached = reached

    def routes(
        self,
        key: Key,
        prefix: str,
        headers: tuple[contour.HeaderMatch, ...],
        path: tuple[Key, ...],
    ) -> Iterator[_Flat]:
        proxy = self.proxies[key]
        self.reached.add(key)
        problems = list(self._problems(proxy, path))
        if problems:
            self.errors.setdefault(key, []).extend(problems)
            return
        for route in proxy.spec.routes:
            p, h = _merge(prefix, headers, route.conditions)
            yield _Flat(proxy, route, p, h)
        for inc in proxy.spec.includes:
            child = (inc.namespace or proxy.namespace, inc.name)
            p, h = _merge(prefix, headers, inc.conditions)
            yield from self.routes(child, p, h, (*path, child))

    def _problems(self, proxy: contour.HTTPProxy, path: tuple[Key, ...]) -> Iterator[str]:
        for inc in proxy.spec.includes:
            child = (inc.namespace or proxy.namespace, inc.name)
            found = self.proxies.get(child)
            if found is None:
                yield f"include {child[0]}/{child[1]} not found"
            elif found.spec.virtualhost is not None:
                name = f"{child[0]}/{child[1]}"
                yield f"root httpproxy cannot include another root httpproxy ({name})"
            elif child in path:
                chain = " -> ".join(f"{ns}/{n}" for ns, n in (*path, child))
                yield f"include creates an include cycle: {chain}"
        for route in proxy.spec.routes:
            for s in route.services:
                have = self.services.get((proxy.namespace, s.name))
                if have is None or s.port not in have:
                    yield f"Service [{s.name}:{s.port}] is invalid or missing"


def _merge(
    prefix: str,
    headers: tuple[contour.HeaderMatch, ...],
    conditions: Sequence[contour.MatchCondition],
) -> tuple[str, tuple[contour.HeaderMatch, ...]]:
    for c in conditions:
        if c.prefix is not None:
            prefix = _SLASHES.sub("/", prefix + c.prefix)
        if c.header is not None:
            headers = (*headers, c.header)
    return prefix, headers


def _ingress_ports(resources: Sequence[Resource]) -> tuple[int, int]:
    """The ports roots take on the ingress gateway: the first plain HTTP (HTTPS) port a
    user's Gateway already opens there, else 80 (443)."""
    opened: dict[str, list[int]] = {"HTTP": [], "HTTPS": []}
    for r in resources:
        if isinstance(r, gw.Gateway) and r.spec.selector.get("istio") == "ingressgateway":
            if r.name.startswith(PREFIX):
                continue
            for s in r.spec.servers:
                opened.setdefault(s.port.protocol.upper(), []).append(s.port.number)
    http = sorted(opened["HTTP"])
    https = sorted(opened["HTTPS"])
    return (http[0] if http else HTTP_PORT, https[0] if https else HTTPS_PORT)


def _serve(
    root: contour.HTTPProxy, flat: Sequence[_Flat], ports: tuple[int, int], domain: str
) -> list[dict[str, Any]]:
    vh = root.spec.virtualhost
    assert vh is not None
    name = PREFIX + root.name
    http_port, https_port = ports
    servers: list[dict[str, Any]] = [
        {"port": {"number": http_port, "name": "http", "protocol": "HTTP"}, "hosts": [vh.fqdn]}
    ]
    http: list[dict[str, Any]] = []
    if vh.tls is not None:
        tls: dict[str, Any] = {
            "mode": "SIMPLE",
            "credentialName": vh.tls.secretName.rpartition("/")[2],
        }
        if vh.tls.minimumProtocolVersion in ("1.2", "1.3"):
            tls["minProtocolVersion"] = "TLSV" + vh.tls.minimumProtocolVersion.replace(".", "_")
        servers.append(
            {
                "port": {"number": https_port, "name": "https", "protocol": "HTTPS"},
                "hosts": [vh.fqdn],
                "tls": tls,
            }
        )
        for f in flat:
            http.append(_http_route(f, domain, port=https_port))
        for f in flat:
            if f.route.permitInsecure:
                http.append(_http_route(f, domain, port=http_port))
            else:
                redirect = {"scheme": "https", "redirectCode": 301}
                http.append({"match": [_match(f, http_port)], "redirect": redirect})
    else:
        http = [_http_route(f, domain) for f in flat]
    meta = {"name": name, "namespace": root.namespace}
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": meta,
            "spec": {"selector": dict(GATEWAY_SELECTOR), "servers": servers},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta,
            "spec": {"hosts": [vh.fqdn], "gateways": [f"{root.namespace}/{name}"], "http": http},
        },
    ]


def _match(f: _Flat, port: int | None) -> dict[str, Any]:
    match: dict[str, Any] = {"uri": {"prefix": f.prefix or "/"}}
    present: dict[str, Any] = {}
    absent: dict[str, Any] = {}
    for h in f.headers:
        n = h.name.lower()
        if h.present:
            present[n] = {}
        elif h.notpresent:
            absent[n] = {}
        elif h.exact is not None:
            present[n] = {"exact": h.exact}
        elif h.notexact is not None:
            absent[n] = {"exact": h.notexact}
        elif h.contains is not None:
            present[n] = {"regex": f".*{re.escape(h.contains)}.*"}
        elif h.notcontains is not None:
            absent[n] = {"regex": f".*{re.escape(h.notcontains)}.*"}
    if present:
        match["headers"] = present
    if absent:
        match["withoutHeaders"] = absent
    if port is not None:
        match["port"] = port
    return match


def _headers(policy: contour.HeadersPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "set": {h.name.lower(): h.value for h in policy.set},
        "remove": [n.lower() for n in policy.remove],
    }


def _http_route(f: _Flat, domain: str, port: int | None = None) -> dict[str, Any]:
    route = f.route
    weighted = any(s.weight for s in route.services)
    destinations = []
    for s in route.services:
        d: dict[str, Any] = {
            "destination": {
                "host": hosts.fqdn(s.name, f.owner.namespace, domain),
                "port": {"number": s.port},
            },
            "weight": (s.weight or 0) if weighted else 1,
        }
        ops = {
            k: v
            for k, v in (
                ("request", _headers(s.requestHeadersPolicy)),
                ("response", _headers(s.responseHeadersPolicy)),
            )
            if v is not None
        }
        if ops:
            d["headers"] = ops
        destinations.append(d)
    out: dict[str, Any] = {"match": [_match(f, port)], "route": destinations}
    timeout = route.timeoutPolicy.response if route.timeoutPolicy else None
    out["timeout"] = "0s" if timeout == "infinity" else (timeout or DEFAULT_TIMEOUT)
    retry = route.retryPolicy
    if retry is None:
        out["retries"] = {"attempts": 0}
    else:
        retries: dict[str, Any] = {
            "attempts": retry.count,
            "retryOn": ",".join(retry.retryOn) or "5xx",
        }
        if retry.perTryTimeout is not None:
            retries["perTryTimeout"] = f"{retry.perTryTimeout}s"
        out["retries"] = retries
    rewrite = _rewrite(route.pathRewritePolicy, f.prefix)
    if rewrite == "/" and f.prefix.rstrip("/"):
        # `/app/x` with prefix `/app` becomes `/x`, not `//x`, as in Contour.
        match = f"^{re.escape(f.prefix.rstrip('/'))}/*"
        out["rewrite"] = {"uriRegexRewrite": {"match": match, "rewrite": "/"}}
    elif rewrite is not None:
        out["rewrite"] = {"uri": rewrite}
    ops = {
        k: v
        for k, v in (
            ("request", _headers(route.requestHeadersPolicy)),
            ("response", _headers(route.responseHeadersPolicy)),
        )
        if v is not None
    }
    if ops:
        out["headers"] = ops
    return out


def _rewrite(policy: contour.PathRewritePolicy | None, prefix: str) -> str | None:
    """The replacement for the route's full `prefix`: the entry naming that prefix
    (trailing slashes aside), else the entry naming none."""
    if policy is None:
        return None
    fallback = None
    for r in policy.replacePrefix:
        if r.prefix is None:
            fallback = r.replacement
        elif r.prefix.rstrip("/") == prefix.rstrip("/"):
            return r.replacement
    return fallback
