"""The broker's HTTP/1.1 server: requests read whole and bounded (httptools' parser,
the one uvicorn uses), handed to one handler, answered in order on kept-alive
connections.

Only its sidecar talks to it (it listens on loopback behind the inbound listener),
but nothing from the network is trusted: a request line and its headers are at most
`MAX_HEAD_BYTES` and `MAX_HEADERS` headers, a body at most the server's `max_body`
(refused with 413 from its `Content-Length` before any of it is read, or as soon as a
chunked body passes it), anything the parser refuses gets 400; after any of these the
connection is closed. A connection reads no further while `MAX_QUEUED` of its
requests wait for their answers, and is closed after `IDLE_TIMEOUT_S` without one,
or when a request it started is not whole within `READ_TIMEOUT_S`.

A web framework's machinery (request objects, routing, middleware, response
preparation) cost the broker more per event than the rest of its ingress; a request
here is a method, a path, lowercase headers and a body.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_QUEUED = 8  # requests of one connection waiting for their answers
IDLE_TIMEOUT_S = 300.0
READ_TIMEOUT_S = 30.0  # from a request's first byte to its last
# After refusing a request whose body is still coming, what is read (and dropped)
# before the connection closes: closing with unread data would reset it, and the
# client could lose the answer before reading it.
DRAIN_BYTES = 4 << 20
DRAIN_S = 5.0
STOP_GRACE_S = 5.0  # when the server stops, for the answers owed


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    headers: dict[str, str]  # lowercase names; a repeated header's values joined by ", "
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    text: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[Request], Awaitable[Response]]


@functools.cache  # on every answer: a handful of statuses
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode(response: Response, close: bool) -> bytes:
    body = response.text.encode()
    head = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    head += [f"{k}: {v}" for k, v in response.headers]
    if body:
        head.append("Content-Type: text/plain; charset=utf-8")
    head.append(f"Content-Length: {len(body)}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.response = Response(status, text)


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order."""

    def __init__(self, handler: Handler, max_body: int, live: set[_Connection]) -> None:
        self._handler = handler
        self._live = live
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # Requests read (and whether the connection stays open after each), or the
        # refusal of one that could not be read, last.
        self._queue: deque[tuple[Request | Response, bool]] = deque()
        self._busy = False
        self._closing = False
        self._paused = False
        self._draining = -1  # bytes left to drop after a refusal (-1: not refused)
        self._stopping = False  # the server stops: close once the answers owed are sent
        self._reading = False  # a request begun and not yet whole
        self._idle: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but are the same kind.
        self._transport = cast(asyncio.Transport, transport)
        self._live.add(self)
        self._arm_timer(IDLE_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        # Requests being handled finish (an event being stored is stored); nothing
        # more is read or answered.
        self._closing = True
        self._queue.clear()
        self._transport = None
        self._live.discard(self)
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        if self._draining >= 0:
            self._draining -= len(data)
            if self._draining < 0 and self._transport is not None:
                self._transport.abort()
            return
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except _Refused as e:
            self._refuse(e.response)
        except httptools.HttpParserUpgrade:
            self._refuse(Response(400, "upgrades are not served\n"))
        except httptools.HttpParserError as e:
            # A limit a callback found comes wrapped in the parser's own error.
            refused = e.__context__ if isinstance(e.__context__, _Refused) else None
            self._refuse(refused.response if refused else Response(400, f"not HTTP/1.1: {e}\n"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._reset()
        self._reading = True
        self._arm_timer(READ_TIMEOUT_S)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        if len(self._headers) >= MAX_HEADERS:
            raise _Refused(431, f"more than {MAX_HEADERS} headers\n")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            status = 413 if length.isdigit() else 400
            raise _Refused(status, f"a body is at most {self._max_body} bytes\n")
        expect = self._headers.get("expect", "").lower() == "100-continue"
        if expect and self._transport and not self._busy and not self._queue:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            raise _Refused(413, f"a body is at most {self._max_body} bytes\n")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self._url)
        path = parsed.path.decode("latin-1") if parsed.path else "/"
        method = self._parser.get_method().decode("latin-1")
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        request = Request(method, path, self._headers, body)
        self._queue.append((request, self._parser.should_keep_alive()))
        self._reset()
        self._reading = False
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if len(self._queue) >= MAX_QUEUED and self._transport and not self._paused:
            self._transport.pause_reading()
            self._paused = True
        self._start()

    def _start(self) -> None:
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._answer())

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Refused(431, f"a request's head is at most {MAX_HEAD_BYTES} bytes\n")

    # answering

    async def _answer(self) -> None:
        """Answer the queued requests in order, until none is left."""
        try:
            while self._queue:
                request, keep_alive = self._queue.popleft()
                if isinstance(request, Response):  # a refusal: the last answer
                    self._drain(request)
                    return
                try:
                    response = await self._handler(request)
                except Exception:  # the handler's bug: the client gets a 500, not silence
                    log.exception("%s %s failed", request.method, request.path)
                    response = Response(500, "internal error\n")
                transport = self._transport
                if transport is None:
                    return
                transport.write(encode(response, close=not keep_alive))
                if not keep_alive:
                    self._close()
                    return
                if self._paused and len(self._queue) < MAX_QUEUED:
                    self._paused = False
                    transport.resume_reading()
        finally:
            self._busy = False
            if self._stopping and not self._queue:
                self._close()
            elif not self._queue and not self._reading:
                self._arm_timer(IDLE_TIMEOUT_S)

    def _refuse(self, response: Response) -> None:
        """Answer a request that cannot be read, after those before it, and close."""
        self._closing = True
        if self._transport is None:
            return
        self._transport.pause_reading()
        self._queue.append((response, False))
        self._start()

    def _drain(self, refusal: Response) -> None:
        """Send the refusal and the end of the stream, and drop what still comes until
        the client closes (or `DRAIN_BYTES`, or `DRAIN_S`)."""
        transport = self._transport
        if transport is None:
            return
        transport.write(encode(refusal, close=True))
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._draining = DRAIN_BYTES
        transport.resume_reading()
        asyncio.get_running_loop().call_later(DRAIN_S, self._close)

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def stop(self) -> None:
        """Read no more requests; close once those read are answered."""
        self._stopping = True
        if self._transport is None:
            return
        self._transport.pause_reading()
        if not self._busy and not self._queue:
            self._close()

    def _arm_timer(self, seconds: float) -> None:
        """Close the connection after `seconds` (idle, or a request not whole)."""
        if self._transport is None or self._closing:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(seconds, self._close)


class Listener:
    """A listening server and its open connections."""

    def __init__(self, server: asyncio.Server, live: set[_Connection]) -> None:
        self.server = server
        self._live = live

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop listening; answer the requests already read (an event being stored is
        answered 202 once it is), for `grace_s` at most; then close every connection."""
        self.server.close()
        for conn in list(self._live):
            conn.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._live and loop.time() < deadline:  # noqa: ASYNC110 (a few turns)
            await asyncio.sleep(0.02)
        for conn in list(self._live):
            conn.abort()


async def serve(handler: Handler, host: str, port: int, max_body: int) -> Listener:
    """Listen on `host:port` and answer every request with `handler`."""
    live: set[_Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(handler, max_body, live), host, port
    )
    return Listener(server, live)
