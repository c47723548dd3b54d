"""The activator's HTTP/2 side: h2c (gRPC) requests held while their revision has no
ready instance, then sent on over HTTP/2 to an instance's inbound sidecar.

A proxy sends a revision whose port is `h2c` to the activator with HTTP/2's prior
knowledge (the activator's mesh port 81); the activator tells such a connection from
an HTTP/1.1 one by its first bytes (the HTTP/2 connection preface) and hands it here.
Every stream is one request: its headers name the revision (`Knative-Serving-Revision`,
`-Namespace`), it waits for a ready instance exactly as an HTTP/1.1 request does (the
same queue, deadline and `containerConcurrency`), and then goes to that instance's
sidecar over mutual TLS (ALPN `h2`), one kept connection per instance carrying many
streams. Headers, data and trailers (gRPC's `grpc-status`) flow both ways as they come;
each side's flow-control window is opened only once what it sent has been passed on,
so a slow receiver holds the sender back and no stream buffers more than a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
READ_SIZE = 1 << 16
MAX_HEADER_LIST = 64 * 1024
MAX_STREAMS = 1000
CONNECTION_WINDOW = 64 * 1024 * MAX_STREAMS
REVISION_HEADER = b"knative-serving-revision"
NAMESPACE_HEADER = b"knative-serving-namespace"
# Not forwarded: one hop's (RFC 9113 8.2.2 forbids them in HTTP/2 anyway), and the
# activator's own routing headers. `te: trailers` (gRPC's) is kept.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        REVISION_HEADER,
        NAMESPACE_HEADER,
    }
)

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Refused:
    """The activator's own answer to a request it does not forward."""

    status: int
    message: str


# (namespace, revision) → an instance's inbound port and a release callback, or Refused.
Admit = Callable[[str, str], Awaitable["tuple[str, int, Callable[[], Awaitable[None]]] | Refused"]]


class _Ended(Exception):
    """The peer's connection is gone."""


@dataclass
class _Peer:
    """One HTTP/2 connection (either side): its events sorted into per-stream queues by
    a reader task, and sending that waits for flow-control window."""

    conn: h2.connection.H2Connection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: str
    streams: dict[int, asyncio.Queue[h2.events.Event | None]] = field(default_factory=dict)
    window: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    @classmethod
    def make(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client: bool,
        name: str,
    ) -> _Peer:
        config = h2.config.H2Configuration(
            client_side=client, header_encoding=None, validate_inbound_headers=True
        )
        conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=client,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        conn.initiate_connection()
        # The whole connection may hold a window per waiting stream: each stream keeps
        # its own (64 KiB) window, the connection's is as wide as all of them.
        conn.increment_flow_control_window(CONNECTION_WINDOW)
        peer = cls(conn, reader, writer, name)
        peer.flush()
        return peer

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        self.flush()
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as e:
            raise _Ended(str(e)) from None

    def queue(self, stream_id: int) -> asyncio.Queue[h2.events.Event | None]:
        q = self.streams.get(stream_id)
        if q is None:
            q = self.streams[stream_id] = asyncio.Queue()
        return q

    async def run(
        self, initial: bytes = b"", on_request: Callable[[int, Headers], None] | None = None
    ) -> None:
        """Read until the connection ends, sorting events into the streams' queues."""
        data = initial
        try:
            while True:
                if data:
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        log.debug("%s: HTTP/2 protocol error: %s", self.name, e)
                        self.flush()
                        return
                    for event in events:
                        self._sort(event, on_request)
                    self.flush()
                data = await self.reader.read(READ_SIZE)
                if not data:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self.closed = True
            self.window.set()
            for q in self.streams.values():
                q.put_nowait(None)

    def _sort(
        self, event: h2.events.Event, on_request: Callable[[int, Headers], None] | None
    ) -> None:
        if isinstance(event, h2.events.RequestReceived) and on_request is not None:
            sid = event.stream_id
            self.queue(sid)
            on_request(sid, [(bytes(k), bytes(v)) for k, v in event.headers or []])
        elif isinstance(
            event,
            h2.events.ResponseReceived
            | h2.events.TrailersReceived
            | h2.events.DataReceived
            | h2.events.StreamEnded
            | h2.events.StreamReset,
        ):
            sid = event.stream_id
            if sid is not None and sid in self.streams:
                self.streams[sid].put_nowait(event)
            elif isinstance(event, h2.events.DataReceived) and sid is not None:
                # A stream nobody follows any more: its window is given back at once.
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
            self.window.set()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    def ack(self, stream_id: int, length: int) -> None:
        """What the stream received has been passed on: open its window again."""
        if length and not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                self.conn.acknowledge_received_data(length, stream_id)
                self.flush()

    async def send_headers(self, stream_id: int, headers: Headers, *, end: bool = False) -> None:
        if self.closed:
            raise _Ended(f"{self.name}: closed")
        self.conn.send_headers(stream_id, headers, end_stream=end)
        await self.drain()

    async def send_data(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        view = memoryview(data)
        while view:
            if self.closed:
                raise _Ended(f"{self.name}: closed")
            room = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if room <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.conn.send_data(stream_id, bytes(view[:room]))
            view = view[room:]
            await self.drain()
        if end:
            await self.end(stream_id)

    async def end(self, stream_id: int) -> None:
        if self.closed:
            raise _Ended(f"{self.name}: closed")
        self.conn.end_stream(stream_id)
        await self.drain()

    def reset(self, stream_id: int, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            self.conn.reset_stream(stream_id, code)
            self.flush()

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection()
                self.flush()
        self.closed = True
        self.writer.close()


class Upstreams:
    """Kept HTTP/2 connections to the instances' inbound sidecars, one per port."""

    def __init__(self) -> None:
        self._peers: dict[int, _Peer] = {}
        self._opening: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, port: int, tls: ssl.SSLContext) -> _Peer:
        async with self._opening.setdefault(port, asyncio.Lock()):
            peer = self._peers.get(port)
            if (
                peer is not None
                and not peer.closed
                and peer.conn.open_outbound_streams
                < (peer.conn.remote_settings.max_concurrent_streams)
            ):
                return peer
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            tls_object = writer.get_extra_info("ssl_object")
            if tls_object is None or tls_object.selected_alpn_protocol() != "h2":
                writer.close()
                raise OSError(f"the sidecar on port {port} did not agree to HTTP/2")
            peer = _Peer.make(reader, writer, client=True, name=f"instance port {port}")
            self._peers[port] = peer
            task = asyncio.get_running_loop().create_task(peer.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await peer.drain()
            return peer

    def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()


async def serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    initial: bytes,
    admit: Admit,
    upstreams: Upstreams,
    tls: Callable[[], ssl.SSLContext | None],
) -> None:
    """One client connection of HTTP/2 (prior knowledge): each stream a request."""
    down = _Peer.make(reader, writer, client=False, name="activator client")
    tasks: set[asyncio.Task[None]] = set()

    def on_request(sid: int, headers: Headers) -> None:
        task = asyncio.get_running_loop().create_task(
            _stream(down, sid, headers, admit, upstreams, tls)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        await down.run(initial, on_request)
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        down.close()


async def _answer(down: _Peer, sid: int, status: int, message: str) -> None:
    body = f"activator: {message}\n".encode()
    headers = [
        (b":status", str(status).encode()),
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
    ]
    with contextlib.suppress(_Ended, h2.exceptions.ProtocolError):
        await down.send_headers(sid, headers)
        await down.send_data(sid, body, end=True)


async def _stream(
    down: _Peer,
    sid: int,
    headers: Headers,
    admit: Admit,
    upstreams: Upstreams,
    tls: Callable[[], ssl.SSLContext | None],
) -> None:
    given = {k.lower(): v for k, v in headers}
    revision = given.get(REVISION_HEADER, b"").decode("latin-1")
    ns = given.get(NAMESPACE_HEADER, b"").decode("latin-1")
    try:
        if not revision or not ns:
            await _answer(down, sid, 400, "no Knative-Serving-Revision and -Namespace")
            return
        admitted = await admit(ns, revision)
        if isinstance(admitted, Refused):
            await _answer(down, sid, admitted.status, admitted.message)
            return
        instance, port, release = admitted
        try:
            context = tls()
            if context is None:
                await _answer(down, sid, 503, "no identity yet")
                return
            try:
                up = await upstreams.get(port, context)
                usid = up.conn.get_next_available_stream_id()
                up.queue(usid)
                forward = [(k, v) for k, v in headers if k.lower() not in _HOP]
                await up.send_headers(usid, forward)
            except (OSError, _Ended, h2.exceptions.ProtocolError) as e:
                await _answer(down, sid, 502, f"{instance}: {e or type(e).__name__}")
                return
            try:
                await _relay(down, sid, up, usid)
            finally:
                up.forget(usid)
        finally:
            await release()
    finally:
        down.forget(sid)


async def _relay(down: _Peer, sid: int, up: _Peer, usid: int) -> None:
    """The request's rest to the instance and its answer back, both as they come."""
    request = asyncio.get_running_loop().create_task(_pump(down, sid, up, usid, request=True))
    try:
        answered = await _pump(up, usid, down, sid, request=False)
        if not answered:
            request.cancel()
    finally:
        if not request.done():
            # The answer ended first (a server may answer before reading the whole
            # request): what the client still sends has nowhere to go.
            request.cancel()
        with contextlib.suppress(asyncio.CancelledError, _Ended, h2.exceptions.ProtocolError):
            await request


async def _pump(src: _Peer, ssid: int, dst: _Peer, dsid: int, *, request: bool) -> bool:
    """Pass `src`'s stream events to `dst`'s stream until the stream ends; whether it
    ended cleanly. An answer that never started is a 502."""
    queue = src.streams[ssid]
    started = request
    try:
        while True:
            event = await queue.get()
            if event is None or isinstance(event, h2.events.StreamReset):
                code = (
                    event.error_code
                    if isinstance(event, h2.events.StreamReset) and event.error_code is not None
                    else h2.errors.ErrorCodes.CANCEL
                )
                if not started:
                    await _answer(dst, dsid, 502, "the instance ended the stream before an answer")
                else:
                    dst.reset(dsid, code)
                _stop_other(dst, dsid)
                return False
            if isinstance(event, h2.events.ResponseReceived):
                started = True
                fields = [(bytes(k), bytes(v)) for k, v in event.headers or [] if k not in _HOP]
                await dst.send_headers(dsid, fields, end=event.stream_ended is not None)
                if event.stream_ended is not None:
                    return True
            elif isinstance(event, h2.events.TrailersReceived):
                fields = [(bytes(k), bytes(v)) for k, v in event.headers or []]
                await dst.send_headers(dsid, fields, end=True)
                return True
            elif isinstance(event, h2.events.DataReceived):
                ended = event.stream_ended is not None
                await dst.send_data(dsid, bytes(event.data or b""), end=ended)
                src.ack(ssid, event.flow_controlled_length or 0)
                if ended:
                    return True
            elif isinstance(event, h2.events.StreamEnded):
                await dst.end(dsid)
                return True
    except (_Ended, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
        src.reset(ssid)
        dst.reset(dsid)
        _stop_other(dst, dsid)
        return False


def _stop_other(peer: _Peer, stream_id: int) -> None:
    """The other direction's pump reads `peer`'s stream: it ends too."""
    queue = peer.streams.get(stream_id)
    if queue is not None:
        queue.put_nowait(None)
