"""Checks several kinds share: host names, DNS labels, exportTo, duplicates, headers."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import is_ip, show
from amimesh.resources.istio_networking import Headers

T = TypeVar("T")

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Envoy header values: "%%" is a literal percent, "%NAME%" or "%NAME(arg)%" a variable.
_PERCENT_OK = re.compile(r"%%|%[A-Z0-9_]+(\([^)]*\))?(:[0-9]+)?%")
_VARIABLE = re.compile(r"%([A-Z0-9_]+)(\([^)]*\))?(:[0-9]+)?%")
# The variables (command operators) of Envoy's substitution formatter that Ami lets
# through; any other name makes Envoy reject the whole route table.
ENVOY_VARIABLES = frozenset(
    """
    START_TIME START_TIME_LOCAL EMIT_TIME REQUEST_HEADERS_BYTES RESPONSE_HEADERS_BYTES
    RESPONSE_TRAILERS_BYTES BYTES_RECEIVED BYTES_SENT UPSTREAM_WIRE_BYTES_SENT
    UPSTREAM_WIRE_BYTES_RECEIVED UPSTREAM_HEADER_BYTES_SENT UPSTREAM_HEADER_BYTES_RECEIVED
    DOWNSTREAM_WIRE_BYTES_SENT DOWNSTREAM_WIRE_BYTES_RECEIVED DOWNSTREAM_HEADER_BYTES_SENT
    DOWNSTREAM_HEADER_BYTES_RECEIVED PROTOCOL UPSTREAM_PROTOCOL RESPONSE_CODE
    RESPONSE_CODE_DETAILS CONNECTION_TERMINATION_DETAILS DURATION REQUEST_DURATION
    REQUEST_TX_DURATION RESPONSE_DURATION RESPONSE_TX_DURATION RESPONSE_FLAGS
    RESPONSE_FLAGS_LONG UPSTREAM_HOST UPSTREAM_CLUSTER UPSTREAM_LOCAL_ADDRESS
    UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT UPSTREAM_LOCAL_PORT UPSTREAM_REMOTE_ADDRESS
    UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT UPSTREAM_REMOTE_PORT UPSTREAM_REQUEST_ATTEMPT_COUNT
    UPSTREAM_TRANSPORT_FAILURE_REASON DOWNSTREAM_REMOTE_ADDRESS
    DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT DOWNSTREAM_REMOTE_PORT
    DOWNSTREAM_DIRECT_REMOTE_ADDRESS DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT
    DOWNSTREAM_DIRECT_REMOTE_PORT DOWNSTREAM_LOCAL_ADDRESS
    DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT DOWNSTREAM_LOCAL_PORT DOWNSTREAM_LOCAL_URI_SAN
    DOWNSTREAM_PEER_URI_SAN DOWNSTREAM_LOCAL_SUBJECT DOWNSTREAM_PEER_SUBJECT
    DOWNSTREAM_PEER_ISSUER DOWNSTREAM_TLS_SESSION_ID DOWNSTREAM_TLS_CIPHER
    DOWNSTREAM_TLS_VERSION DOWNSTREAM_PEER_FINGERPRINT_256 DOWNSTREAM_PEER_FINGERPRINT_1
    DOWNSTREAM_PEER_SERIAL DOWNSTREAM_PEER_CERT DOWNSTREAM_PEER_CERT_V_START
    DOWNSTREAM_PEER_CERT_V_END DOWNSTREAM_TRANSPORT_FAILURE_REASON CONNECTION_ID
    REQUESTED_SERVER_NAME ROUTE_NAME VIRTUAL_CLUSTER_NAME HOSTNAME LOCAL_REPLY_BODY
    FILTER_CHAIN_NAME STREAM_ID UNIQUE_ID REQ RESP TRAILER DYNAMIC_METADATA
    CLUSTER_METADATA UPSTREAM_METADATA FILTER_STATE UPSTREAM_FILTER_STATE ENVIRONMENT
    """.split()
)


def dns_label_problem(name: str) -> str | None:
    if _LABEL.match(name):
        return None
    return (
        "must be a DNS label: at most 63 lowercase letters, digits and '-', "
        f"starting and ending with a letter or digit, got {show(name)}"
    )


def host_problem(host: str, *, wildcard: bool) -> str | None:
    """Why `host` is not a host name (`reviews`, `reviews.shop.svc.cluster.local`, an IP).

    With `wildcard`, `*` and `*.example.com` are allowed too.
    """
    if "://" in host:
        bare = host.split("://", 1)[1].split("/", 1)[0]
        return f"must be a host name, not a URL: write {show(bare)}"
    if is_ip(host) or (wildcard and host == "*"):
        return None
    name = host[2:] if wildcard and host.startswith("*.") else host
    if ":" in name:
        return f"must be a host name without a port, got {show(host)}"
    if "*" in name:
        if not wildcard:
            return f"must not be a wildcard here, got {show(host)}"
        return f'may only start with "*." as a wildcard, got {show(host)}'
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"must be a host name (letters, digits, '-' and '.'), got {show(host)}"
    return None


def export_to_issues(values: Sequence[str], loc: Loc) -> Iterator[Issue]:
    """Each exportTo entry is ".", "*" or a namespace, as Istio allows."""
    for i, value in enumerate(values):
        if value in (".", "*"):
            continue
        if dns_label_problem(value) is not None:
            yield Issue((*loc, i), f'must be ".", "*" or a namespace name, got {show(value)}')


def duplicates(items: Iterable[T], key: Callable[[T], Hashable]) -> Iterator[tuple[int, int]]:
    """(first index, later index) for each item whose key an earlier item already had."""
    first: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        if k is None:
            continue
        if k in first:
            yield first[k], i
        else:
            first[k] = i


def header_operation_issues(headers: Headers | None, loc: Loc) -> Iterator[Issue]:
    """Header names and values that Envoy would reject or that cannot be changed."""
    if headers is None:
        return
    for side, ops in (("request", headers.request), ("response", headers.response)):
        if ops is None:
            continue
        for op, values in (("set", ops.set), ("add", ops.add)):
            for name, value in values.items():
                where = (*loc, side, op, name)
                problem = _header_name_problem(name, side == "request")
                if problem is not None:
                    yield Issue(where, problem)
                problem = header_value_problem(value)
                if problem is not None:
                    yield Issue(where, problem)
        for j, name in enumerate(ops.remove):
            problem = _header_name_problem(name, settable_authority=False)
            if problem is not None:
                yield Issue((*loc, side, "remove", j), problem)


def _header_name_problem(name: str, settable_authority: bool) -> str | None:
    if not name:
        return "header name must not be empty"
    lower = name.lower()
    if settable_authority and lower in (":authority", "host"):
        return None
    if lower == "host":
        return "the host header can only be set on requests"
    if name.startswith(":"):
        return f"pseudo-header {name} cannot be changed"
    if not _TOKEN.match(name):
        return f"{show(name)} is not a valid HTTP header name"
    return None


def header_value_problem(value: str) -> str | None:
    if _CONTROL.search(value):
        return "header value must not contain control characters such as newlines"
    if "%" in _PERCENT_OK.sub("", value):
        return (
            f'has a lone "%" in {show(value)}: write "%%" for a percent sign '
            "(Envoy reads %NAME% as a variable)"
        )
    for m in _VARIABLE.finditer(value.replace("%%", "")):
        if m.group(1) not in ENVOY_VARIABLES:
            return (
                f"%{m.group(1)}% is not a variable Envoy knows (such as "
                '%DOWNSTREAM_REMOTE_ADDRESS% or %REQ(header)%): write "%%" for a percent sign'
            )
    return None
