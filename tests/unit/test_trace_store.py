"""Spans from OTLP and Zipkin JSON, and the SQLite trace store: summaries, search,
duplicates, pruning by age and by count, reopening a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from amimesh.telemetry import spans
from amimesh.telemetry.spans import BadSpans, Span
from amimesh.telemetry.trace_store import TraceStore, iso_time, root_of, span_json

T1 = "0af7651916cd43dd8448eb211c80319c"
T2 = "4bf92f3577b34da6a3ce929d0e0e4736"
MS = 1_000_000
BASE = 1_700_000_000_000_000_000


def span(
    trace: str,
    sid: str,
    parent: str = "",
    *,
    service: str = "frontend",
    start_ms: float = 0,
    end_ms: float = 10,
    status: str = "UNSET",
    name: str = "op",
) -> Span:
    return Span(
        trace_id=trace,
        span_id=sid.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0") if parent else "",
        name=name,
        service=service,
        kind="SERVER",
        start_unix_nano=BASE + int(start_ms * MS),
        end_unix_nano=BASE + int(end_ms * MS),
        status=status,
        attributes={"http.status_code": "200"},
    )


# --- spans -----------------------------------------------------------------------------


def otlp_request() -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="web"))
    ss = rs.scope_spans.add()
    s = ss.spans.add(
        trace_id=bytes.fromhex(T1),
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("b7ad6b7169203331"),
        name="web:8080/*",
        kind=trace_pb2.Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=BASE,
        end_time_unix_nano=BASE + 5 * MS,
    )
    s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    s.attributes.add(key="http.status_code", value=common_pb2.AnyValue(string_value="503"))
    s.attributes.add(key="retries", value=common_pb2.AnyValue(int_value=2))
    s.attributes.add(key="ok", value=common_pb2.AnyValue(bool_value=False))
    s.attributes.add(key="ratio", value=common_pb2.AnyValue(double_value=0.5))
    arr = common_pb2.AnyValue()
    arr.array_value.values.add(string_value="a")
    s.attributes.add(key="list", value=arr)
    # A span without ids is left out.
    ss.spans.add(name="broken")
    return req


def test_from_otlp() -> None:
    (s,) = spans.from_otlp(otlp_request())
    assert s == Span(
        trace_id=T1,
        span_id="00f067aa0ba902b7",
        parent_span_id="b7ad6b7169203331",
        name="web:8080/*",
        service="web",
        kind="CLIENT",
        start_unix_nano=BASE,
        end_unix_nano=BASE + 5 * MS,
        status="ERROR",
        attributes={
            "http.status_code": "503",
            "retries": 2,
            "ok": False,
            "ratio": 0.5,
            "list": ["a"],
        },
    )
    assert s.error and s.duration_nano == 5 * MS
    # Back to OTLP and again: the same span.
    assert spans.from_otlp(spans.to_otlp([s])) == [s]


def test_from_zipkin() -> None:
    body = [
        {
            "traceId": "463ac35c9f6413ad",
            "id": "a2fb4a1d1a96d312",
            "parentId": "0020000000000001",
            "name": "get /x",
            "kind": "SERVER",
            "timestamp": 1_700_000_000_000_000,
            "duration": 1500,
            "localEndpoint": {"serviceName": "reviews-v1"},
            "tags": {"error": "true", "node_id": "reviews-v1-0.default"},
        },
        {"traceId": T2, "id": "b7ad6b7169203331", "timestamp": 5, "duration": 1},
    ]
    first, second = spans.from_zipkin(body)
    assert first.trace_id == "0000000000000000463ac35c9f6413ad"
    assert first.parent_span_id == "0020000000000001"
    assert (first.service, first.kind, first.status, first.error) == (
        "reviews-v1",
        "SERVER",
        "ERROR",
        True,
    )
    assert first.start_unix_nano == BASE and first.duration_nano == 1_500_000
    assert (second.parent_span_id, second.service, second.kind) == ("", "unknown", "UNSPECIFIED")
    for bad in ({}, [1], [{"traceId": "xyz", "id": "1"}], [{"traceId": "1", "id": "1" * 17}]):
        with pytest.raises(BadSpans):
            spans.from_zipkin(bad)


# --- store -----------------------------------------------------------------------------


def test_summaries_and_search() -> None:
    store = TraceStore()
    # T1: gateway -> frontend -> reviews (error), 30 ms; T2 later: one span, 5 ms.
    store.add(
        [
            span(T1, "2", "1", service="frontend", start_ms=2, end_ms=28),
            span(T1, "3", "2", service="reviews", start_ms=5, end_ms=20, status="ERROR"),
        ]
    )
    store.add([span(T1, "1", service="gateway", start_ms=0, end_ms=30, name="GET /")])
    store.add([span(T2, "9", service="ratings", start_ms=100, end_ms=105)])
    assert store.span_count == 4
    newest, oldest = store.search()
    assert newest.trace_id == T2
    assert oldest.to_json() == {
        "trace_id": T1,
        "root_service": "gateway",
        "root_name": "GET /",
        "start": iso_time(BASE),
        "start_unix_nano": BASE,
        "duration_ms": 30.0,
        "span_count": 3,
        "error": True,
        "services": ["frontend", "gateway", "reviews"],
    }
    assert [t.trace_id for t in store.search(service="reviews")] == [T1]
    assert [t.trace_id for t in store.search(min_duration_ms=10)] == [T1]
    assert [t.trace_id for t in store.search(limit=1)] == [T2]
    assert store.search(service="nobody") == []
    trace = store.trace(T1.upper())
    assert [s.span_id[-1] for s in trace] == ["1", "2", "3"]
    assert span_json(trace[2])["status"] == "ERROR"
    assert span_json(trace[2])["attributes"] == {"http.status_code": "200"}
    assert store.trace("ff" * 16) == []


def test_root_is_the_span_whose_parent_is_missing() -> None:
    # A request that came in with a parent from outside the mesh.
    orphan = [span(T1, "5", "4", start_ms=1), span(T1, "6", "5", start_ms=2)]
    root = root_of(orphan)
    assert root is not None and root.span_id.endswith("5")
    assert root_of([]) is None


def test_a_span_twice_is_kept_once() -> None:
    store = TraceStore()
    batch = [span(T1, "1"), span(T1, "2", "1")]
    assert store.add(batch) == 2
    assert store.add(batch) == 0
    assert store.span_count == 2
    assert store.search()[0].span_count == 2


def test_prune_by_age() -> None:
    store = TraceStore(max_age_s=60)
    store.add([span(T1, "1", start_ms=0)])
    store.add([span(T2, "1", start_ms=50_000)])
    assert store.prune(BASE + 30 * 1000 * MS) == 0
    assert store.prune(BASE + 100 * 1000 * MS) == 1
    assert [t.trace_id for t in store.search()] == [T2]
    assert store.trace(T1) == []
    assert store.span_count == 1 and store.pruned_spans == 1


def test_prune_by_count_drops_whole_oldest_traces() -> None:
    store = TraceStore(max_spans=10)
    for i in range(5):  # 5 traces of 3 spans, older first
        trace = f"{i + 1:032x}"
        store.add([span(trace, "1", start_ms=i * 100), span(trace, "2", "1", start_ms=i * 100 + 1)])
        store.add([span(trace, "3", "1", start_ms=i * 100 + 2)])
    assert store.span_count <= 10
    kept = [t.trace_id for t in store.search()]
    assert kept == [f"{i:032x}" for i in (5, 4, 3)]
    assert all(t.span_count == 3 for t in store.search())
    assert store.span_count == 9


def test_file_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "traces.db"
    store = TraceStore(path)
    store.add([span(T1, "1"), span(T1, "2", "1")])
    store.close()
    again = TraceStore(path)
    assert again.span_count == 2
    assert [t.trace_id for t in again.search()] == [T1]
    again.close()


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_spans"):
        TraceStore(max_spans=0)
    with pytest.raises(ValueError, match="max_age_s"):
        TraceStore(max_age_s=0)
