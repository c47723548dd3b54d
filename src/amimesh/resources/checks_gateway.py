"""Gateway checks beyond the schema, after Istio's validation rules.

A port number is served by one server, except HTTPS and TLS ports, which several
servers may share when their hosts differ (the client's SNI picks the server). Port names and
server names are unique within a Gateway, as Istio requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from amimesh.resources import istio_gateway as gw
from amimesh.resources.checks_common import dns_label_problem, duplicates, host_problem
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show

_TLS_VERSIONS = ("TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")


def check_gateway(gateway: gw.Gateway) -> Iterator[Issue]:
    servers = gateway.spec.servers
    if not servers:
        yield Issue(("spec", "servers"), "must have at least one server")
    for i, server in enumerate(servers):
        yield from _server_issues(server, ("spec", "servers", i))
    yield from _port_issues(servers)
    for first, later in duplicates(servers, lambda s: s.port.name):
        yield Issue(
            ("spec", "servers", later, "port", "name"),
            f'port name "{servers[later].port.name}" is already used by servers[{first}]',
        )
    for first, later in duplicates(servers, lambda s: s.name):
        yield Issue(
            ("spec", "servers", later, "name"),
            f'server name "{servers[later].name}" is already used by servers[{first}]',
        )


def _server_issues(server: gw.Server, loc: Loc) -> Iterator[Issue]:
    if not server.hosts:
        yield Issue((*loc, "hosts"), "must have at least one host")
    for i, host in enumerate(server.hosts):
        problem = _host_problem(host)
        if problem is not None:
            yield Issue((*loc, "hosts", i), problem)
    yield from _tls_issues(server, (*loc, "tls"))


def _host_problem(host: str) -> str | None:
    if "://" in host:
        return host_problem(host, wildcard=True)
    namespace, name = gw.split_host(host)
    if "/" in name:
        return f'must be "host" or "namespace/host", got {show(host)}'
    if namespace not in ("*", ".") and dns_label_problem(namespace) is not None:
        return f'the namespace before "/" must be ".", "*" or a namespace name, got {show(host)}'
    if not name:
        return f"must name a host after the namespace, got {show(host)}"
    return host_problem(name, wildcard=True)


_FILES = ("serverCertificate", "privateKey", "caCertificates")
# A Kubernetes Secret name: a DNS subdomain.
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _tls_issues(server: gw.Server, loc: Loc) -> Iterator[Issue]:
    tls = server.tls
    https = server.port.protocol == "HTTPS"
    if server.port.protocol == "TLS":
        if tls is None or tls.mode not in ("PASSTHROUGH", "AUTO_PASSTHROUGH"):
            yield Issue(
                (*loc, "mode") if tls is not None else loc,
                "a TLS server takes mode PASSTHROUGH (routed by SNI by tls routes); "
                "terminating TLS in front of TCP is not supported by Ami yet",
            )
        return
    if tls is None:
        if https:
            yield Issue(loc, "is required on an HTTPS server: set mode SIMPLE and the certificate")
        return
    if https and tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH"):
        return
    if not https:
        for name in ("mode", *_FILES, "credentialName"):
            if getattr(tls, name) is not None:
                yield Issue(
                    (*loc, name),
                    f"is only for HTTPS servers (this one is {server.port.protocol}); "
                    "a plain-text server takes only httpsRedirect",
                )
        return
    if tls.httpsRedirect:
        yield Issue((*loc, "httpsRedirect"), "is for plain-text HTTP servers, not HTTPS ones")
    if tls.mode is None:
        yield Issue(
            (*loc, "mode"),
            "is required on an HTTPS server: SIMPLE, MUTUAL or PASSTHROUGH",
        )
        return
    if tls.credentialName is not None:
        yield from _credential_issues(tls, loc)
    else:
        yield from _file_issues(tls, loc)
    if tls.mode != "MUTUAL" and tls.subjectAltNames:
        yield Issue(
            (*loc, "subjectAltNames"),
            "is only for mode MUTUAL (it matches the client's certificate)",
        )
    low, high = tls.minProtocolVersion, tls.maxProtocolVersion
    if low in _TLS_VERSIONS and high in _TLS_VERSIONS and low > high:
        yield Issue((*loc, "minProtocolVersion"), f"must not be above maxProtocolVersion ({high})")


def _credential_issues(tls: gw.ServerTLSSettings, loc: Loc) -> Iterator[Issue]:
    name = gw.credential(tls) or ""
    if len(name) > 253 or not _SECRET_NAME.match(name):
        yield Issue(
            (*loc, "credentialName"),
            "must be a secret name (lowercase letters, digits, '-' and '.'), "
            f"optionally after kubernetes://, got {show(tls.credentialName or '')}",
        )
    for field in _FILES:
        if getattr(tls, field) is not None:
            yield Issue(
                (*loc, field),
                "must not be set with credentialName (the credential holds the certificate, "
                "its key and, for MUTUAL, the CA)",
            )


def _file_issues(tls: gw.ServerTLSSettings, loc: Loc) -> Iterator[Issue]:
    needed = _FILES if tls.mode == "MUTUAL" else _FILES[:2]
    for name in _FILES:
        path = getattr(tls, name)
        if path is None:
            if name in needed:
                yield Issue(
                    (*loc, name), f"is required with mode {tls.mode} (or set credentialName)"
                )
        elif not path.strip() or any(c in path for c in "\x00\r\n"):
            yield Issue((*loc, name), f"must be a file path, got {show(path)}")
        # Not needed: caCertificates with SIMPLE, which Istio ignores (and so does Ami;
        # `ami analyze` says so). A relative path is the proxy's working directory's.


def _port_issues(servers: list[gw.Server]) -> Iterator[Issue]:
    first: dict[int, int] = {}
    for i, server in enumerate(servers):
        number = server.port.number
        if number not in first:
            first[number] = i
            continue
        earlier = servers[first[number]]
        loc: Loc = ("spec", "servers", i, "port", "number")
        if earlier.port.protocol != server.port.protocol:
            yield Issue(
                loc,
                f"port {number} is already used by servers[{first[number]}] "
                f"with protocol {earlier.port.protocol}",
            )
        elif server.port.protocol not in ("HTTPS", "TLS"):
            yield Issue(
                loc,
                f"port {number} is already used by servers[{first[number]}]: "
                "list all its hosts in one server (only HTTPS and TLS servers may share "
                "a port)",
            )
    yield from _shared_https_hosts(servers)


def _shared_https_hosts(servers: list[gw.Server]) -> Iterator[Issue]:
    """Servers sharing an HTTPS port are told apart by SNI: their hosts must differ."""
    seen: dict[tuple[int, str], int] = {}
    for i, server in enumerate(servers):
        if server.port.protocol not in ("HTTPS", "TLS"):
            continue
        for j, host in enumerate(server.hosts):
            key = (server.port.number, gw.split_host(host)[1].lower())
            if key in seen and seen[key] != i:
                yield Issue(
                    ("spec", "servers", i, "hosts", j),
                    f'host "{key[1]}" on port {key[0]} is already served by servers[{seen[key]}]',
                )
            seen.setdefault(key, i)
