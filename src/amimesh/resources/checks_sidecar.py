"""Sidecar, ProxyConfig and EnvoyFilter checks beyond the schema.

- Sidecar: each egress host is `namespace/dnsName` (namespace `*`, `.`, `~` or a
  namespace name; dnsName `*`, `*.suffix` or a host name); an ingress
  `defaultEndpoint` is `127.0.0.1:PORT` or `0.0.0.0:PORT` (Istio's Unix socket
  endpoints need a pod's shared filesystem).
- EnvoyFilter: each patch's operation is one Istio allows for its `applyTo`, a
  `value` is given unless the operation is REMOVE, and it parses into the Envoy
  message of its `applyTo` (`envoy_values`); `targetRefs` and proxy metadata matches
  are not supported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from amimesh.resources import envoy_values
from amimesh.resources import istio_envoyfilter as ef
from amimesh.resources import istio_sidecar as sc
from amimesh.resources.checks_common import dns_label_problem, host_problem
from amimesh.resources.errors import Issue
from amimesh.resources.fields import NOT_SUPPORTED_MESSAGE, show

_ENDPOINT = re.compile(r"^(127\.0\.0\.1|0\.0\.0\.0):(\d{1,5})$")
_ALL = ("MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE")
OPERATIONS: dict[str, tuple[str, ...]] = {
    "LISTENER": ("MERGE", "ADD", "REMOVE"),
    "FILTER_CHAIN": ("MERGE", "ADD", "REMOVE"),
    "NETWORK_FILTER": _ALL,
    "HTTP_FILTER": _ALL,
    "ROUTE_CONFIGURATION": ("MERGE",),
    "VIRTUAL_HOST": ("MERGE", "ADD", "REMOVE"),
    "HTTP_ROUTE": ("MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST"),
    "CLUSTER": ("MERGE", "ADD", "REMOVE"),
}


def check_sidecar(s: sc.Sidecar) -> Iterator[Issue]:
    for i, listener in enumerate(s.spec.egress):
        for j, host in enumerate(listener.hosts):
            problem = egress_host_problem(host)
            if problem:
                yield Issue(("spec", "egress", i, "hosts", j), problem)
    for i, ingress in enumerate(s.spec.ingress):
        endpoint = ingress.defaultEndpoint
        if endpoint is None:
            continue
        m = _ENDPOINT.match(endpoint)
        if m is None or not 0 < int(m.group(2)) < 65536:
            yield Issue(
                ("spec", "ingress", i, "defaultEndpoint"),
                f"must be 127.0.0.1:PORT or 0.0.0.0:PORT, got {show(endpoint)}"
                + (" (Unix sockets need a pod)" if endpoint.startswith("unix://") else ""),
            )


def egress_host_problem(host: str) -> str | None:
    ns, slash, dns = host.partition("/")
    if not slash:
        return f'must be "namespace/dnsName" (e.g. "./*" or "istio-system/*"), got {show(host)}'
    if ns not in ("*", ".", "~"):
        problem = dns_label_problem(ns)
        if problem:
            return f"namespace {problem}"
    if dns == "*":
        return None
    problem = host_problem(dns, wildcard=True)
    return f"dnsName {problem}" if problem else None


def check_proxy_config(p: sc.ProxyConfig) -> Iterator[Issue]:
    return iter(())


def check_envoy_filter(f: ef.EnvoyFilter) -> Iterator[Issue]:
    if f.spec.targetRefs:
        yield Issue(
            ("spec", "targetRefs"),
            f"{NOT_SUPPORTED_MESSAGE}: select the proxies with workloadSelector",
        )
    for i, p in enumerate(f.spec.configPatches):
        where = ("spec", "configPatches", i)
        op = p.patch.operation
        allowed = OPERATIONS[p.applyTo]
        if op not in allowed:
            yield Issue(
                (*where, "patch", "operation"),
                f"{op} does not apply to {p.applyTo}; use one of {', '.join(allowed)}",
            )
        if p.match is not None and p.match.proxy is not None and p.match.proxy.metadata:
            yield Issue(
                (*where, "match", "proxy", "metadata"), f"{NOT_SUPPORTED_MESSAGE}: leave it out"
            )
        value = p.patch.value
        if value is None:
            if op != "REMOVE":
                yield Issue((*where, "patch", "value"), f"{op} needs a value")
            continue
        try:
            envoy_values.parse(p.applyTo, value)
        except ValueError as e:
            message = envoy_values.MESSAGES[p.applyTo].DESCRIPTOR.full_name
            yield Issue((*where, "patch", "value"), f"is not an Envoy {message}: {e}")
