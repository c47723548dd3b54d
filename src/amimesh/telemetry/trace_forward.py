"""Forward every trace export to another OTLP/gRPC receiver (a collector, Jaeger, Tempo).

    fwd = TraceForwarder("otel-collector:4317")
    await fwd.start()                        # on the control plane's event loop
    fwd.offer(request)                       # never blocks, never raises
    await fwd.stop()

Requests are sent unchanged, one at a time, from a bounded queue. Forwarding never
holds up or fails ingestion: when the queue is full the request is dropped, when the
receiver fails the request is lost; both are counted (`dropped`, `failed`) and logged
(the first, then at most every `LOG_EVERY_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
TIMEOUT_S = 5.0
LOG_EVERY_S = 10.0
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def parse_target(text: str) -> tuple[str, int]:
    """(host, port) of `host:port` (`[v6]:port` too); ValueError with a reason if not."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"want HOST:PORT (e.g. 127.0.0.1:4317), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"want HOST:PORT (e.g. 127.0.0.1:4317), got {text!r}")
    return host, int(port)


class TraceForwarder:
    def __init__(
        self, target: str, *, queue_size: int = QUEUE_SIZE, timeout_s: float = TIMEOUT_S
    ) -> None:
        host, port = parse_target(target)
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout_s = timeout_s
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[trace_service_pb2.ExportTraceServiceRequest] = asyncio.Queue(
            queue_size
        )
        self._task: asyncio.Task[None] | None = None
        self._last_log = {"dropped": 0.0, "failed": 0.0}

    def offer(self, request: trace_service_pb2.ExportTraceServiceRequest) -> bool:
        """Queue `request` to be forwarded; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            self.dropped += 1
            self._warn("dropped", f"trace forward queue full: dropped {self.dropped} export(s)")
            return False
        return True

    def _warn(self, what: str, message: str) -> None:
        now = time.monotonic()
        count = self.dropped if what == "dropped" else self.failed
        if count == 1 or now - self._last_log[what] >= LOG_EVERY_S:
            self._last_log[what] = now
            log.warning("%s (to %s)", message, self.target)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="trace-forward")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # No HTTP proxy: the control plane's environment may point one at a sidecar.
        channel = grpc.aio.insecure_channel(self.target, options=[("grpc.enable_http_proxy", 0)])
        export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        try:
            while True:
                request = await self._queue.get()
                try:
                    await export(request, timeout=self.timeout_s)
                    self.sent += 1
                except grpc.aio.AioRpcError as err:
                    self.failed += 1
                    self._warn(
                        "failed",
                        f"trace forward failed ({err.code().name}: {err.details()}); "
                        f"{self.failed} export(s) lost",
                    )
        finally:
            await channel.close()
