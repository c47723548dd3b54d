"""The ADS gRPC servicer: a thin shell that moves messages between a stream and its
`StreamState`.

Each stream gets a `Session`. A reader task applies requests to the state machine;
the handler itself writes whatever the state machine says to send, waking when a
request arrives, the proxy's config changes, or an ACK wait times out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf import json_format

from amimesh.model.proxy import Proxy, proxy_from_metadata
from amimesh.xds.encode import delta_response, sotw_response
from amimesh.xds.status import Mode, ProxySyncStatus
from amimesh.xds.stream import RequestOutcome, StreamState
from amimesh.xds.wire import (
    Response,
    delta_request_from_proto,
    sotw_request_from_proto,
)

logger = logging.getLogger(__name__)


class Session:
    """One live ADS stream: the proxy on it, its state machine, its wake-up event."""

    def __init__(self, stream_id: int, proxy: Proxy, state: StreamState) -> None:
        self.stream_id = stream_id
        self.proxy = proxy
        self.state = state
        self.connected_since = time.time()
        self.wake = asyncio.Event()
        self.ended = False

    @property
    def mode(self) -> Mode:
        return self.state.mode

    def end(self) -> None:
        """Ask the stream to finish (its handler returns, the RPC ends with OK)."""
        self.ended = True
        self.wake.set()

    def status(self) -> ProxySyncStatus:
        """A snapshot for `XdsServer.status()`."""
        return ProxySyncStatus(
            proxy_id=self.proxy.id,
            stream_id=self.stream_id,
            mode=self.mode,
            connected_since=self.connected_since,
            synced=self.state.synced(),
            types=self.state.status(),
        )


class Hub(Protocol):
    """What the servicer needs from the server that owns the sessions."""

    def open(self, proxy: Proxy, mode: Mode) -> Session:
        """Register a stream and give it the proxy's current config; may raise."""
        ...

    def close(self, session: Session) -> None:
        """Forget a stream that ended."""
        ...

    def changed(self, session: Session) -> None:
        """A session's sync state may have changed."""
        ...


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """`StreamAggregatedResources` (SotW) and `DeltaAggregatedResources` (delta)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:  # noqa: N802
        await self._serve(context, "sotw")

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:  # noqa: N802
        await self._serve(context, "delta")

    async def _serve(self, context: Any, mode: Mode) -> None:
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if not first.node.id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request lacks node.id")
        try:
            metadata = json_format.MessageToDict(first.node.metadata)
            proxy = proxy_from_metadata(first.node.id, metadata)
        except (KeyError, TypeError, ValueError) as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad node metadata: {err!r}")
        try:
            session = self._hub.open(proxy, mode)
        except Exception:
            logger.exception("cannot generate config for proxy %s", proxy.id)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "config generation failed")
        logger.info("proxy %s connected (%s, stream %d)", proxy.id, mode, session.stream_id)
        try:
            self._apply(session, first)
            reader = asyncio.create_task(
                self._read(context, session), name=f"xds-read-{session.stream_id}"
            )
            try:
                await self._write(context, session, reader)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            self._hub.close(session)
            logger.info("proxy %s disconnected (stream %d)", proxy.id, session.stream_id)

    async def _read(self, context: Any, session: Session) -> None:
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                self._apply(session, request)
        finally:
            session.wake.set()

    async def _write(self, context: Any, session: Session, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        encode: Callable[[Response], bytes] = (
            sotw_response if session.mode == "sotw" else delta_response
        )
        while not reader.done() and not session.ended:
            session.wake.clear()
            now = loop.time()
            while (response := session.state.next_response(now)) is not None:
                await context.write(encode(response))
                self._hub.changed(session)
                now = loop.time()
            try:
                async with asyncio.timeout_at(session.state.next_deadline(now)):
                    await session.wake.wait()
            except TimeoutError:
                pass
        if reader.done():
            reader.result()

    def _apply(self, session: Session, proto: Any) -> None:
        if not proto.type_url:
            logger.warning("proxy %s sent a request without type_url", session.proxy.id)
            return
        at = time.time()
        outcome: RequestOutcome
        if session.mode == "sotw":
            outcome = session.state.on_sotw_request(sotw_request_from_proto(proto), at=at)
        else:
            outcome = session.state.on_delta_request(delta_request_from_proto(proto), at=at)
        if outcome.nack is not None:
            nack = outcome.nack
            logger.warning(
                "proxy %s rejected %s version %s (nonce %s, resources %s): %s",
                session.proxy.id,
                nack.type_url,
                nack.version,
                nack.nonce,
                ", ".join(nack.resource_names),
                nack.message,
            )
        elif outcome.answer == "stale":
            logger.debug("proxy %s: stale nonce for %s", session.proxy.id, outcome.type_url)
        session.wake.set()
        self._hub.changed(session)
