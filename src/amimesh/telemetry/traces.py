"""The control plane's trace collector: OTLP/gRPC and Zipkin receivers, store, forward.

    traces = TraceCollector(TraceSettings(db=STATE / "traces.db", forward="host:4317"))
    cp.grpc_services.append(traces.add_to_server)   # OTLP TraceService on the xDS server
    await traces.start()                            # store (own thread), forwarder, Zipkin
    await traces.search(service="reviews")          # for the API
    await traces.stop()

Envoy's OpenTelemetry tracer exports OTLP over gRPC through the `xds-grpc` cluster, so
the OTLP `TraceService` shares the xDS server's port. Envoy's Zipkin tracer posts Zipkin
v2 JSON over HTTP; with `zipkin_port` set, the collector serves `POST /api/v2/spans` on
loopback there (no token: the same trust as the xDS port), and each span's service
becomes what the OpenTelemetry tracer would call it (`service_of` its `node_id` tag).

All SQLite work runs on one thread of its own, off the event loop; an export is
answered once its spans are stored. Every OTLP export is also forwarded unchanged
(`TraceForwarder`), Zipkin spans as OTLP; forwarding never delays nor fails ingestion.
The store is pruned by age every `PRUNE_EVERY_S`, and by count on every batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from amimesh.telemetry import spans as spans_mod
from amimesh.telemetry.spans import BadSpans, Span
from amimesh.telemetry.trace_forward import TraceForwarder
from amimesh.telemetry.trace_store import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_SPANS,
    TraceStore,
    TraceSummary,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
PRUNE_EVERY_S = 60.0
ZIPKIN_PATH = "/api/v2/spans"
MAX_ZIPKIN_BODY = 16 * 1024 * 1024
# The tag Envoy's tracers put on every span: the proxy's node id.
NODE_ID_TAG = "node_id"


@dataclass(frozen=True)
class TraceSettings:
    """Where spans are kept (`db`: a SQLite file, None: memory), the store's bounds,
    where every export is forwarded (`host:port`, OTLP/gRPC; None: nowhere), and the
    Zipkin receiver's port (None: none, 0: a free one) on `zipkin_host`."""

    db: Path | None = None
    max_spans: int = DEFAULT_MAX_SPANS
    max_age_s: float = DEFAULT_MAX_AGE_S
    forward: str | None = None
    zipkin_port: int | None = None
    zipkin_host: str = "127.0.0.1"


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: TraceCollector) -> None:
        self._collector = collector

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        await self._collector.ingest_otlp(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class TraceCollector:
    def __init__(
        self,
        settings: TraceSettings | None = None,
        *,
        service_of: Callable[[str], str | None] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings or TraceSettings()
        self.forwarder = TraceForwarder(self.settings.forward) if self.settings.forward else None
        self.service_of = service_of
        self.zipkin_port = 0  # bound port while the Zipkin receiver runs
        self.received = 0  # spans received
        self.rejected = 0  # Zipkin bodies that were not spans
        self._clock_ns = clock_ns
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-store")
        self._store: TraceStore | None = None
        self._last_prune = 0.0
        self._zipkin: web.AppRunner | None = None

    # --- life cycle --------------------------------------------------------------------

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Serve OTLP's TraceService on `server` (the control plane's gRPC server)."""
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), server
        )

    async def start(self) -> None:
        s = self.settings
        self._store = await self._run(
            lambda: TraceStore(s.db, max_spans=s.max_spans, max_age_s=s.max_age_s)
        )
        try:
            await self._start_services()
        except BaseException:
            await self.stop()
            raise

    async def _start_services(self) -> None:
        s = self.settings
        if self.forwarder is not None:
            await self.forwarder.start()
        if s.zipkin_port is not None:
            app = web.Application(client_max_size=MAX_ZIPKIN_BODY)
            app.router.add_post(ZIPKIN_PATH, self._zipkin_post)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, s.zipkin_host, s.zipkin_port)
            await site.start()
            self._zipkin = runner
            self.zipkin_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._zipkin is not None:
            await self._zipkin.cleanup()
            self._zipkin = None
            self.zipkin_port = 0
        if self.forwarder is not None:
            await self.forwarder.stop()
        store, self._store = self._store, None
        if store is not None:
            await self._run(store.close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # --- ingestion ---------------------------------------------------------------------

    async def ingest_otlp(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Store an OTLP export's spans and forward it unchanged."""
        if self.forwarder is not None:
            self.forwarder.offer(request)
        # Reading the spans out of the request is work too: on the store's thread.
        await self._ingest(lambda: spans_mod.from_otlp(request))

    async def ingest(self, batch: Sequence[Span]) -> None:
        """Store a batch of spans (pruning as needed); never raises."""
        if batch:
            await self._ingest(lambda: batch)

    async def _ingest(self, read: Callable[[], Sequence[Span]]) -> None:
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        prune = now - self._last_prune >= PRUNE_EVERY_S
        if prune:
            self._last_prune = now
        clock = self._clock_ns

        def write() -> int:
            batch = read()
            store.add(batch)
            if prune:
                store.prune(clock())
            return len(batch)

        try:
            self.received += await self._run(write)
        except Exception:
            log.exception("could not store spans")

    async def _zipkin_post(self, request: web.Request) -> web.Response:
        try:
            batch = spans_mod.from_zipkin(await request.json())
        except (ValueError, BadSpans) as err:
            self.rejected += 1
            return web.json_response({"error": f"not Zipkin v2 JSON spans: {err}"}, status=400)
        batch = self._rename(batch)
        if self.forwarder is not None and batch:
            self.forwarder.offer(spans_mod.to_otlp(batch))
        await self.ingest(batch)
        return web.Response(status=202)

    def _rename(self, batch: list[Span]) -> list[Span]:
        """Each span's service as `service_of` its `node_id` tag says (asked once per
        node: a batch comes from one Envoy)."""
        service_of = self.service_of
        if service_of is None:
            return batch
        names: dict[str, str | None] = {}
        out = []
        for span in batch:
            node = span.attributes.get(NODE_ID_TAG)
            if isinstance(node, str):
                if node not in names:
                    names[node] = service_of(node)
                name = names[node]
                if name:
                    span = replace(span, service=name)
            out.append(span)
        return out

    # --- reading -----------------------------------------------------------------------

    async def search(
        self, *, service: str | None = None, min_duration_ms: float = 0.0, limit: int = 20
    ) -> list[TraceSummary]:
        store = self._store
        if store is None:
            return []
        return await self._run(
            lambda: store.search(service=service, min_duration_ms=min_duration_ms, limit=limit)
        )

    async def trace(self, trace_id: str) -> list[Span]:
        store = self._store
        if store is None:
            return []
        return await self._run(lambda: store.trace(trace_id))

    async def prune(self) -> int:
        """Prune now (by age and count); how many spans went."""
        store = self._store
        if store is None:
            return 0
        clock = self._clock_ns
        return await self._run(lambda: store.prune(clock()))

    def stats(self) -> dict[str, int]:
        fwd = self.forwarder
        store = self._store
        return {
            "received": self.received,
            "rejected": self.rejected,
            "stored": store.span_count if store is not None else 0,
            "pruned": store.pruned_spans if store is not None else 0,
            "forwarded": fwd.sent if fwd else 0,
            "forward_dropped": fwd.dropped if fwd else 0,
            "forward_failed": fwd.failed if fwd else 0,
        }
