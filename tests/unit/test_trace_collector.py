"""The trace collector: OTLP export over real gRPC, the Zipkin receiver, forwarding
(delivered, dropped when the queue is full, failures counted), and the traces API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import grpc  # type: ignore[import-untyped]
import pytest
from aiohttp import test_utils
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.telemetry import spans
from amimesh.telemetry.spans import Span
from amimesh.telemetry.trace_forward import TraceForwarder, parse_target
from amimesh.telemetry.traces import TraceCollector, TraceSettings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
# Spans of now: older than the store's 24 h go at the first pruning.
BASE = time.time_ns() // 1000 * 1000


def request(*span_ids: str, trace: str = TRACE) -> trace_service_pb2.ExportTraceServiceRequest:
    batch = [
        Span(
            trace_id=trace,
            span_id=sid,
            parent_span_id=span_ids[0] if i else "",
            name=f"op{i}",
            service="gateway" if i == 0 else "reviews",
            kind="SERVER",
            start_unix_nano=BASE + i * 1000,
            end_unix_nano=BASE + 5_000_000,
        )
        for i, sid in enumerate(span_ids)
    ]
    return spans.to_otlp(batch)


async def until(predicate: Callable[[], Any], limit_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        value = predicate()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Recorder(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """A test OTLP receiver that keeps what it gets."""

    def __init__(self) -> None:
        self.got: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(self, req: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        self.got.append(req)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Recorder, int]]:
    rec = Recorder()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield rec, port
    finally:
        await server.stop(None)


async def test_otlp_export_over_grpc_is_stored_and_forwarded(
    receiver: tuple[Recorder, int],
) -> None:
    rec, port = receiver
    collector = TraceCollector(TraceSettings(forward=f"127.0.0.1:{port}"))
    server = grpc.aio.server()
    collector.add_to_server(server)
    cp_port = server.add_insecure_port("127.0.0.1:0")
    await collector.start()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cp_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            sent = request("00000000000000a1", "00000000000000a2")
            await stub.Export(sent, timeout=5)
        (summary,) = await collector.search()
        assert (summary.trace_id, summary.span_count, summary.root_service) == (
            TRACE,
            2,
            "gateway",
        )
        await until(lambda: rec.got)
        assert rec.got == [sent]
        # Counted once the receiver has answered.
        await until(lambda: collector.stats()["forwarded"] == 1)
        assert collector.stats()["received"] == 2
    finally:
        await server.stop(None)
        await collector.stop()


async def test_forwarder_drops_when_full_and_counts_failures() -> None:
    fwd = TraceForwarder("127.0.0.1:1", queue_size=1, timeout_s=0.5)
    assert fwd.offer(request("00000000000000a1"))
    assert not fwd.offer(request("00000000000000a2"))
    assert fwd.dropped == 1
    await fwd.start()
    try:
        await until(lambda: fwd.failed == 1)
        assert fwd.sent == 0
    finally:
        await fwd.stop()


def test_targets() -> None:
    assert parse_target("collector:4317") == ("collector", 4317)
    assert parse_target("[::1]:4317") == ("::1", 4317)
    for bad in ("collector", ":4317", "host:0", "host:x", "[]:1"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_target(bad)
    with pytest.raises(ValueError, match="trace_forward"):
        ControlPlaneConfig(trace_forward="nowhere")


async def test_zipkin_receiver_names_services_after_proxies() -> None:
    names = {"reviews-v1-0.default": "reviews"}
    collector = TraceCollector(TraceSettings(zipkin_port=0), service_of=names.get)
    await collector.start()
    try:
        url = f"http://127.0.0.1:{collector.zipkin_port}/api/v2/spans"
        body = [
            {
                "traceId": TRACE,
                "id": "00000000000000b1",
                "name": "in",
                "kind": "SERVER",
                "timestamp": BASE // 1000,
                "duration": 2000,
                "localEndpoint": {"serviceName": "reviews-v1"},
                "tags": {"node_id": "reviews-v1-0.default"},
            },
            {
                "traceId": TRACE,
                "id": "00000000000000b2",
                "parentId": "00000000000000b1",
                "timestamp": BASE // 1000 + 500,
                "duration": 1000,
                "localEndpoint": {"serviceName": "other"},
                "tags": {"node_id": "unknown.default"},
            },
        ]
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body) as resp:
                assert resp.status == 202
            async with http.post(url, json={"not": "a list"}) as resp:
                assert resp.status == 400
                assert "not Zipkin v2 JSON spans" in (await resp.json())["error"]
        found = await collector.trace(TRACE)
        assert [(s.service, s.kind) for s in found] == [
            ("reviews", "SERVER"),
            ("other", "UNSPECIFIED"),
        ]
        assert collector.stats()["rejected"] == 1
    finally:
        await collector.stop()


# --- API -------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[tuple[ControlPlane, test_utils.TestClient[Any, Any]]]:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01))
    await cp.traces.start()
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await c.start_server()
    try:
        yield cp, c
    finally:
        await c.close()
        await cp.traces.stop()


async def get(c: test_utils.TestClient[Any, Any], path: str, status: int = 200) -> Any:
    async with c.get(path, headers=AUTH) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_traces_api(client: tuple[ControlPlane, test_utils.TestClient[Any, Any]]) -> None:
    cp, c = client
    assert await get(c, "/api/v1/traces") == {"traces": []}
    await cp.traces.ingest_otlp(request("00000000000000a1", "00000000000000a2"))
    other = "0af7651916cd43dd8448eb211c80319c"
    await cp.traces.ingest_otlp(request("00000000000000c1", trace=other))
    body = await get(c, "/api/v1/traces?limit=5")
    assert {t["trace_id"] for t in body["traces"]} == {TRACE, other}
    first = next(t for t in body["traces"] if t["trace_id"] == TRACE)
    assert set(first) >= {
        "trace_id",
        "root_service",
        "root_name",
        "start",
        "duration_ms",
        "span_count",
        "error",
        "services",
    }
    assert first["services"] == ["gateway", "reviews"] and first["span_count"] == 2
    only = await get(c, "/api/v1/traces?service=reviews")
    assert [t["trace_id"] for t in only["traces"]] == [TRACE]
    assert (await get(c, "/api/v1/traces?min_duration_ms=1000"))["traces"] == []

    one = await get(c, f"/api/v1/traces/{TRACE.upper()}")
    assert one["trace_id"] == TRACE
    root, child = one["spans"]
    assert set(root) >= {
        "span_id",
        "parent_span_id",
        "name",
        "service",
        "kind",
        "start_unix_nano",
        "end_unix_nano",
        "duration_ms",
        "status",
        "attributes",
    }
    assert (root["parent_span_id"], child["parent_span_id"]) == ("", root["span_id"])
    assert root["duration_ms"] == 5.0

    missing = await get(c, "/api/v1/traces/" + "ab" * 16, status=404)
    assert missing["error"].startswith("no trace")
    for bad in ("limit=0", "limit=x", "min_duration_ms=-1", "min_duration_ms=nan"):
        assert "error" in await get(c, f"/api/v1/traces?{bad}", status=400)
    assert "error" in await get(c, "/api/v1/traces/not-hex", status=400)
    async with c.get("/api/v1/traces") as resp:
        assert resp.status == 401
