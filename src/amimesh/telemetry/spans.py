"""Spans as the trace store keeps them, from OTLP and from Zipkin v2 JSON. Pure.

Envoy's OpenTelemetry tracer exports OTLP (`ExportTraceServiceRequest`), its Zipkin
tracer Zipkin v2 JSON; both become `Span`s: hex ids (trace 32 digits, span 16), the
service (OTLP: the resource's `service.name`; Zipkin: `localEndpoint.serviceName`),
the kind (`SERVER`, `CLIENT`, ...), start and end in Unix nanoseconds, the status
(`UNSET`, `OK`, `ERROR`) and the attributes. A span is an error when its status is
`ERROR` or its `error` attribute is true (Envoy tags 5xx answers and failures so).

`to_otlp` turns spans back into one OTLP request, to forward spans that came as Zipkin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # OTLP's messages load when spans are read or written as OTLP (not
    # with the trace store, which the control plane opens before it serves)
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2

SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown"
KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUSES = ("UNSET", "OK", "ERROR")
Attribute = str | bool | int | float | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    kind: str
    start_unix_nano: int
    end_unix_nano: int
    status: str = "UNSET"
    attributes: Mapping[str, Attribute] = field(default_factory=dict)

    @property
    def duration_nano(self) -> int:
        return max(0, self.end_unix_nano - self.start_unix_nano)

    @property
    def error(self) -> bool:
        return self.status == "ERROR" or str(self.attributes.get("error", "")).lower() == "true"


# --- OTLP ------------------------------------------------------------------------------


def any_value(value: common_pb2.AnyValue) -> Attribute:
    """An OTLP attribute value as plain Python (bytes as hex)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return ""


def attributes(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Attribute]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _kind(value: int) -> str:
    return KINDS[value] if 0 <= value < len(KINDS) else "UNSPECIFIED"


def _status(code: int) -> str:
    return STATUSES[code] if 0 <= code < len(STATUSES) else "UNSET"


def from_otlp(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    """The spans of an OTLP export; spans without a trace or span id are left out."""
    out: list[Span] = []
    for rs in request.resource_spans:
        service = str(attributes(rs.resource.attributes).get(SERVICE_NAME) or UNKNOWN_SERVICE)
        for ss in rs.scope_spans:
            for s in ss.spans:
                if not s.trace_id.strip(b"\0") or not s.span_id.strip(b"\0"):
                    continue
                out.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex() if s.parent_span_id else "",
                        name=s.name,
                        service=service,
                        kind=_kind(s.kind),
                        start_unix_nano=s.start_time_unix_nano,
                        end_unix_nano=s.end_time_unix_nano,
                        status=_status(s.status.code),
                        attributes=attributes(s.attributes),
                    )
                )
    return out


def _otlp_value(value: Attribute) -> common_pb2.AnyValue:
    from opentelemetry.proto.common.v1 import common_pb2

    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[_otlp_value(v) for v in value])
        )
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=_kvs(value)))
    return common_pb2.AnyValue(string_value=str(value))


def _kvs(attrs: Mapping[str, Attribute]) -> list[common_pb2.KeyValue]:
    from opentelemetry.proto.common.v1 import common_pb2

    return [common_pb2.KeyValue(key=k, value=_otlp_value(v)) for k, v in attrs.items()]


def to_otlp(spans: Iterable[Span]) -> trace_service_pb2.ExportTraceServiceRequest:
    """One OTLP export of `spans`, one resource per service."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    by_service: dict[str, list[Span]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    request = trace_service_pb2.ExportTraceServiceRequest()
    for service, group in by_service.items():
        rs = request.resource_spans.add(
            resource=resource_pb2.Resource(attributes=_kvs({SERVICE_NAME: service}))
        )
        ss = rs.scope_spans.add()
        for s in group:
            ss.spans.append(
                trace_pb2.Span(
                    trace_id=bytes.fromhex(s.trace_id),
                    span_id=bytes.fromhex(s.span_id),
                    parent_span_id=bytes.fromhex(s.parent_span_id),
                    name=s.name,
                    kind=trace_pb2.Span.SpanKind.ValueType(
                        KINDS.index(s.kind) if s.kind in KINDS else 0
                    ),
                    start_time_unix_nano=s.start_unix_nano,
                    end_time_unix_nano=s.end_unix_nano,
                    attributes=_kvs(s.attributes),
                    status=trace_pb2.Status(
                        code=trace_pb2.Status.StatusCode.ValueType(
                            STATUSES.index(s.status) if s.status in STATUSES else 0
                        )
                    ),
                )
            )
    return request


# --- Zipkin v2 JSON --------------------------------------------------------------------


class BadSpans(ValueError):
    """A Zipkin body that is not a list of spans."""


def _hex_id(value: Any, digits: int, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadSpans(f"{what} must be a hex string")
    text = value.lower()
    try:
        int(text, 16)
    except ValueError:
        raise BadSpans(f"{what} must be a hex string, got {value!r}") from None
    if len(text) > digits:
        raise BadSpans(f"{what} has more than {digits} hex digits")
    return text.rjust(digits, "0")


def _zipkin_span(raw: Any) -> Span:
    if not isinstance(raw, dict):
        raise BadSpans("each span must be a JSON object")
    trace_id = _hex_id(raw.get("traceId"), 32, "traceId")
    span_id = _hex_id(raw.get("id"), 16, "id")
    parent = raw.get("parentId")
    parent_id = _hex_id(parent, 16, "parentId") if parent else ""
    start_us = raw.get("timestamp") or 0
    duration_us = raw.get("duration") or 0
    if not isinstance(start_us, int) or not isinstance(duration_us, int):
        raise BadSpans("timestamp and duration must be integers (microseconds)")
    local = raw.get("localEndpoint") or {}
    service = local.get("serviceName") if isinstance(local, dict) else None
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise BadSpans("tags must be a JSON object")
    attrs = {str(k): str(v) for k, v in tags.items()}
    kind = str(raw.get("kind") or "")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_id,
        name=str(raw.get("name") or ""),
        service=str(service or UNKNOWN_SERVICE),
        kind=kind if kind in KINDS else "UNSPECIFIED",
        start_unix_nano=start_us * 1000,
        end_unix_nano=(start_us + duration_us) * 1000,
        status="ERROR" if attrs.get("error", "").lower() == "true" else "UNSET",
        attributes=dict[str, Attribute](attrs),
    )


def from_zipkin(body: Any) -> list[Span]:
    """The spans of a Zipkin v2 JSON body (a list of spans); `BadSpans` if it is not."""
    if not isinstance(body, list):
        raise BadSpans("the body must be a JSON list of spans")
    return [_zipkin_span(raw) for raw in body]


def traces_of(spans: Iterable[Span]) -> Iterator[tuple[str, list[Span]]]:
    """`spans` grouped by trace id, in first-seen order."""
    groups: dict[str, list[Span]] = {}
    for s in spans:
        groups.setdefault(s.trace_id, []).append(s)
    yield from groups.items()
