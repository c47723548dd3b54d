"""Per-route policies of a VirtualService: retries, fault injection, CORS, header operations.

Each function turns one Istio field into the Envoy message that carries it, with
Istio's defaults:

- retries: with no `retries`, the mesh default (2 retries on
  `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`, status
  503, retry on other hosts than the ones tried, 5 host selection attempts); `attempts: 0`
  turns retries off. Numbers in `retryOn` are retriable status codes.
- fault: a `percentage` is a `FractionalPercent` over a MILLION (so 0.1% is exact);
  the deprecated integer `percent` is over a HUNDRED. With neither, the fault applies to
  every request, as Istio documents.
- CORS: Envoy 1.40 takes the policy per route, as the `envoy.filters.http.cors`
  filter's typed per-filter config; preflights that match no origin are forwarded.
- headers: `set` overwrites, `add` appends; `host`/`:authority` cannot be added or
  removed as a header, so a value given for them becomes a host rewrite instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from amimesh.resources import istio_networking as net
from amimesh.translate import route_match

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRIES = 2
DEFAULT_RETRIABLE_STATUS_CODES = (503,)
HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5

GRPC_STATUS = {
    name: code
    for code, name in enumerate(
        "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS "
        "PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE "
        "UNIMPLEMENTED INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED".split()
    )
}


def duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def percent(p: net.Percent) -> percent_pb2.FractionalPercent:
    return percent_pb2.FractionalPercent(
        numerator=round(p.value * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def int_percent(p: int) -> percent_pb2.FractionalPercent:
    return percent_pb2.FractionalPercent(
        numerator=p, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


def pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


# --- retries ---------------------------------------------------------------------------


def retry_policy(retries: net.HTTPRetry | None, *, consistent_hash: bool) -> rc.RetryPolicy | None:
    """Envoy's retry policy for a route; None when retries are turned off.

    With consistent hashing the retry stays on the hashed host, so the
    "previous hosts" predicate is left out (as Istio does).
    """
    if retries is not None and retries.attempts <= 0:
        return None
    out = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_RETRIES),
        host_selection_retry_max_attempts=HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        retriable_status_codes=DEFAULT_RETRIABLE_STATUS_CODES,
    )
    if not consistent_hash:
        out.retry_host_predicate.append(
            rc.RetryPolicy.RetryHostPredicate(
                name="envoy.retry_host_predicates.previous_hosts",
                typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
            )
        )
    if retries is None:
        return out
    out.num_retries.value = retries.attempts
    if retries.retryOn:
        conditions, codes = _parse_retry_on(retries.retryOn)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        out.retry_on = ",".join(conditions)
        del out.retriable_status_codes[:]
        out.retriable_status_codes.extend(codes)
    if retries.perTryTimeout is not None:
        out.per_try_timeout.CopyFrom(duration(retries.perTryTimeout))
    if retries.retryRemoteLocalities:
        out.retry_priority.CopyFrom(
            rc.RetryPolicy.RetryPriority(
                name="envoy.retry_priorities.previous_priorities",
                typed_config=pack(
                    previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2)
                ),
            )
        )
    return out


def _parse_retry_on(text: str) -> tuple[list[str], list[int]]:
    conditions: list[str] = []
    codes: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit() and _is_status(int(part)):
            codes.append(int(part))
        else:
            conditions.append(part)
    return conditions, codes


def _is_status(code: int) -> bool:
    try:
        HTTPStatus(code)
    except ValueError:
        return False
    return True


# --- fault injection -------------------------------------------------------------------


def fault(spec: net.HTTPFaultInjection) -> fault_pb2.HTTPFault | None:
    """The per-route config of Envoy's fault filter; None if it would inject nothing."""
    out = fault_pb2.HTTPFault()
    if spec.delay is not None:
        d = spec.delay
        out.delay.fixed_delay.CopyFrom(duration(d.fixedDelay))
        out.delay.percentage.CopyFrom(_fault_percent(d.percentage, d.percent))
    if spec.abort is not None:
        a = spec.abort
        if a.httpStatus is not None:
            out.abort.http_status = a.httpStatus
        elif a.grpcStatus is not None:
            code = _grpc_status(a.grpcStatus)
            if code is None:
                return out if out.HasField("delay") else None
            out.abort.grpc_status = code
        out.abort.percentage.CopyFrom(_fault_percent(a.percentage, None))
    if not out.HasField("delay") and not out.HasField("abort"):
        return None
    return out


def _fault_percent(p: net.Percent | None, legacy: int | None) -> percent_pb2.FractionalPercent:
    if p is not None:
        return percent(p)
    return int_percent(100 if legacy is None else legacy)


def _grpc_status(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    return GRPC_STATUS.get(value.upper())


# --- CORS ------------------------------------------------------------------------------


def cors(spec: net.CorsPolicy) -> cors_pb2.CorsPolicy:
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(spec.allowMethods),
        allow_headers=",".join(spec.allowHeaders),
        expose_headers=",".join(spec.exposeHeaders),
        filter_enabled=base_pb2.RuntimeFractionalPercent(default_value=int_percent(100)),
        forward_not_matching_preflights=wrappers_pb2.BoolValue(value=True),
    )
    if spec.allowOrigins:
        for m in spec.allowOrigins:
            # A presence-only origin match (`regex: "*"`) means any origin.
            sm = route_match.string_matcher(m)
            out.allow_origin_string_match.append(sm or string_pb2.StringMatcher(exact="*"))
    else:
        # The deprecated list of exact origins; Envoy reads an exact "*" as any origin.
        out.allow_origin_string_match.extend(
            string_pb2.StringMatcher(exact=origin) for origin in spec.allowOrigin
        )
    if spec.maxAge is not None:
        out.max_age = str(int(spec.maxAge))
    if spec.allowCredentials is not None:
        out.allow_credentials.value = spec.allowCredentials
    return out


# --- header operations -----------------------------------------------------------------


@dataclass
class HeaderOps:
    """Header operations translated for a route or a weighted cluster."""

    request_add: list[base_pb2.HeaderValueOption] = field(default_factory=list)
    request_remove: list[str] = field(default_factory=list)
    response_add: list[base_pb2.HeaderValueOption] = field(default_factory=list)
    response_remove: list[str] = field(default_factory=list)
    authority: str | None = None

    def apply(self, target: Any) -> None:
        """Append to a `Route` or a `WeightedCluster.ClusterWeight` (same field names)."""
        target.request_headers_to_add.extend(self.request_add)
        target.request_headers_to_remove.extend(self.request_remove)
        target.response_headers_to_add.extend(self.response_add)
        target.response_headers_to_remove.extend(self.response_remove)


def header_ops(headers: net.Headers | None) -> HeaderOps:
    out = HeaderOps()
    if headers is None:
        return out
    if headers.request is not None:
        req = headers.request
        out.request_add = _values(req.set, overwrite=True) + _values(req.add, overwrite=False)
        out.request_remove = [h for h in req.remove if not _internal(h)]
        # A `set` authority wins over an `add` one.
        for values in (req.add, req.set):
            for k, v in values.items():
                if k.lower() in ("host", ":authority"):
                    out.authority = v
    if headers.response is not None:
        resp = headers.response
        out.response_add = _values(resp.set, overwrite=True) + _values(resp.add, overwrite=False)
        out.response_remove = [h for h in resp.remove if not _internal(h)]
    return out


def _values(values: Mapping[str, str], *, overwrite: bool) -> list[base_pb2.HeaderValueOption]:
    action = (
        base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        if overwrite
        else base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    )
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=k, value=v), append_action=action
        )
        for k, v in sorted(values.items())
        if not _internal(k)
    ]


def _internal(name: str) -> bool:
    """Pseudo-headers and Host, which Envoy does not let a route add or remove."""
    return name.startswith(":") or name.lower() == "host"
