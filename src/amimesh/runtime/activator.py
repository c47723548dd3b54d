"""The activator: where a Knative revision's requests wait while it has no ready
instance (scaled to zero, or starting), in the node agent.

    activator = Activator(port, identity, instances, activate)
    await activator.start()          # 127.0.0.1:port, HTTP/1.1 and HTTP/2 (h2c)
    activator.changed()              # an instance started, stopped, became ready
    await activator.stop()

Proxies reach it as the mesh host `activator-service.knative-serving` (plain HTTP on
loopback); each request names its revision in `Knative-Serving-Revision` and
`Knative-Serving-Namespace`, as Knative's activator reads them. A request for a
revision with no ready instance asks the control plane for one at once (`activate`),
and waits, up to its deadline, in a queue of at most `QUEUE_DEPTH` per revision (503
beyond, as Knative's). It then goes to a ready instance's inbound sidecar over mutual
TLS as the activator's own identity (`knative-serving/activator`), so authorization,
metrics and traces see it like any other client; never more than `containerConcurrency`
at once per instance when the revision sets it.

Bodies stream both ways, chunk by chunk, with the sender held back while the receiver
is slow (a request body once the instance is there, the response as the app writes
it): a server-sent event stream or a long download through the activator arrives as
it is written. A request whose body is small (`BUFFERED_BODY`) is read whole first, so
that it can go again on a new connection when a kept-alive one turns out closed;
connections to the instances are kept alive (a TLS handshake per connection, not per
request). An h2c (gRPC) revision's requests come over HTTP/2 and go on over HTTP/2
(`activator_h2`), told apart by their connection's first bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import h11

from amimesh.agent.http_client import Closed
from amimesh.agent.sds import Secrets
from amimesh.identity import workload_sds
from amimesh.runtime import activator_h2

log = logging.getLogger(__name__)

REVISION_HEADER = "knative-serving-revision"
NAMESPACE_HEADER = "knative-serving-namespace"
QUEUE_DEPTH = 10_000
MAX_BODY = 32 * 1024 * 1024  # a request body, streamed or not
BUFFERED_BODY = 64 * 1024  # read whole before it goes, so that it can go again
MAX_HEADERS = 64 * 1024
DEFAULT_TIMEOUT_S = 300.0
READ_SIZE = 1 << 16
# Not forwarded: they describe one hop (RFC 9110 7.6.1), or are remade.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        REVISION_HEADER,
        NAMESPACE_HEADER,
    }
)


@dataclass(frozen=True)
class Target:
    """A ready instance of a revision: its inbound sidecar's port, and how many
    requests it may have in flight (0: no limit)."""

    instance: str
    port: int
    concurrency: int = 0


Instances = Callable[[str, str], list[Target]]  # (namespace, revision) → ready ones
Activate = Callable[[str, str], Awaitable[None]]


class Activator:
    def __init__(
        self,
        port: int,
        instances: Instances,
        activate: Activate,
        *,
        host: str = "127.0.0.1",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.host = host
        self._instances = instances
        self._activate = activate
        self._timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None
        self._tls_h2: ssl.SSLContext | None = None
        self._h2_pool = activator_h2.Upstreams()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._waiting: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, int] = {}
        self._turn = itertools.count()
        self._pool = _Pool()
        self.forwarded = 0

    # --- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        log.info("activator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._pool.close()
        self._h2_pool.close()

    def use_identity(self, secrets: Secrets) -> None:
        """The activator's certificate (and each renewal): its TLS client context
        (connections made with the last one are dropped)."""
        self._tls = client_context(secrets)
        self._tls_h2 = client_context(secrets)
        self._tls_h2.set_alpn_protocols(["h2"])
        self._pool.close()
        self._h2_pool.close()

    def changed(self) -> None:
        """Instances changed: waiting requests look again."""
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- one connection: HTTP/1.1 requests in turn ---------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await _first_bytes(reader)
        if first.startswith(activator_h2.PREFACE):
            try:
                await activator_h2.serve(
                    reader, writer, first, self.admit, self._h2_pool, lambda: self._tls_h2
                )
            finally:
                writer.close()
            return
        down = _Downstream(
            h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS), reader, writer
        )
        down.conn.receive_data(first)
        try:
            while True:
                head = await down.request()
                if head is None:
                    return
                await self._handle(down, head)
                if down.conn.our_state is h11.MUST_CLOSE or down.conn.their_state is not h11.DONE:
                    return
                down.conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, _TooLarge) as e:
            if down.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.ProtocolError, ConnectionError):
                    code = 413 if isinstance(e, _TooLarge) else 400
                    await down.answer(code, f"{e}\n".encode())
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handle(self, down: _Downstream, head: h11.Request) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        given = {k.lower(): v for k, v in headers}
        revision, ns = given.get(REVISION_HEADER, ""), given.get(NAMESPACE_HEADER, "")
        if not revision or not ns:
            await down.answer(400, b"activator: no Knative-Serving-Revision and -Namespace\n")
            return
        target = await self._admit((ns, revision))
        if isinstance(target, activator_h2.Refused):
            await down.answer(target.status, f"activator: {target.message}\n".encode())
            return
        try:
            await self._forward(target, down, head, headers)
        finally:
            await self._release(target)

    async def admit(
        self, ns: str, revision: str
    ) -> tuple[str, int, Callable[[], Awaitable[None]]] | activator_h2.Refused:
        """For the HTTP/2 side: a ready instance's (name, port, release), or why not."""
        target = await self._admit((ns, revision))
        if isinstance(target, activator_h2.Refused):
            return target
        return target.instance, target.port, lambda: self._release(target)

    async def _admit(self, key: tuple[str, str]) -> Target | activator_h2.Refused:
        """A request's place in its revision's queue, then a ready instance with room
        for it (counted taken until `_release`)."""
        if self._waiting.get(key, 0) >= QUEUE_DEPTH:
            return activator_h2.Refused(503, "queue full")
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            return await asyncio.wait_for(self._target(key), self._timeout_s)
        except TimeoutError:
            return activator_h2.Refused(504, f"{key[0]}/{key[1]} did not become ready")
        finally:
            self._waiting[key] -= 1

    async def _release(self, target: Target) -> None:
        self._in_flight[target.instance] -= 1
        await self._notify()

    async def _target(self, key: tuple[str, str]) -> Target:
        """A ready instance with room for one more request (counted taken)."""
        asked = False
        async with self._changed:
            while True:
                ready = self._instances(*key)
                room = [
                    t
                    for t in ready
                    if not t.concurrency or self._in_flight.get(t.instance, 0) < t.concurrency
                ]
                if room and self._tls is not None:
                    target = room[next(self._turn) % len(room)]
                    self._in_flight[target.instance] = self._in_flight.get(target.instance, 0) + 1
                    return target
                if not ready and not asked:
                    asked = True
                    asyncio.get_running_loop().create_task(self._ask(key))
                # Woken by a change; looked at again every second in any case.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1.0)

    async def _ask(self, key: tuple[str, str]) -> None:
        try:
            await self._activate(*key)
        except Exception as e:  # the next request asks again; the autoscaler too
            log.warning("activator: cannot activate %s/%s: %s", key[0], key[1], e)

    async def _forward(
        self,
        target: Target,
        down: _Downstream,
        head: h11.Request,
        headers: list[tuple[str, str]],
    ) -> None:
        """Send the request to `target`'s sidecar, its body as it comes, and the answer
        back as it comes. An instance that fails before answering is a 502; one that
        fails mid-answer ends the client's connection (the answer is cut short)."""
        fields = [(k, v) for k, v in headers if k.lower() not in _HOP]
        fields += _framing(head)
        tls = self._tls
        assert tls is not None
        small = await down.small_body(head)
        try:
            up = await asyncio.wait_for(
                self._pool.start(target.port, tls, head, fields, small, down), self._timeout_s
            )
        except (OSError, TimeoutError, h11.ProtocolError, _Cut) as e:
            if down.conn.our_state is h11.SEND_RESPONSE:
                await down.answer(
                    502, f"activator: {target.instance}: {e or type(e).__name__}\n".encode()
                )
            else:
                down.abort()
            return
        self.forwarded += 1
        kept = await up.relay(down)
        self._pool.done(target.port, up, kept)


class _TooLarge(Exception):
    pass


class _Cut(Exception):
    """A body ended before its end (a peer closed the connection mid-message)."""


@dataclass
class _Downstream:
    """The client's side: an h11 server connection over one stream."""

    conn: h11.Connection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def _event(self) -> object:
        return await _next_event(self.conn, self.reader)

    async def request(self) -> h11.Request | None:
        """The next request's head; None when the client is done."""
        event = await self._event()
        if isinstance(event, h11.Request):
            return event
        return None

    async def small_body(self, head: h11.Request) -> bytes | None:
        """The whole body if it is small (or absent) by its Content-Length; else None,
        and the body is read as it is forwarded (`body_chunks`)."""
        if self.conn.their_state is h11.DONE:
            return b""
        length = _header(head.headers, b"content-length")
        if length is None or not length.isdigit() or int(length) > BUFFERED_BODY:
            return None
        chunks = [c async for c in self.body_chunks()]
        return b"".join(chunks)

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The request body, chunk by chunk, to its end (`_Cut` if it stops short)."""
        size = 0
        while self.conn.their_state is not h11.DONE:
            event = await self._event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise _TooLarge(f"body over {MAX_BODY} bytes")
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                raise _Cut("the client closed the connection mid-request")

    async def send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def answer(self, status: int, body: bytes) -> None:
        """A whole answer of the activator's own."""
        headers = [("Content-Length", str(len(body)))]
        await self.send(h11.Response(status_code=status, headers=headers))
        if body:
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())

    def abort(self) -> None:
        self.conn.send_failed()
        self.writer.close()


@dataclass
class _Upstream:
    """One request on a connection to an instance's sidecar, its answer's head read."""

    conn: h11.Connection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    response: h11.Response

    async def _event(self) -> object:
        return await _next_event(self.conn, self.reader)

    async def relay(self, down: _Downstream) -> bool:
        """The answer to the client as it comes; whether this connection may carry
        another request."""
        fields = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self.response.headers
            if k.decode("latin-1").lower() not in _HOP
        ]
        length = _header(self.response.headers, b"content-length")
        if length is not None:
            fields.append(("Content-Length", length))
        try:
            await down.send(h11.Response(status_code=self.response.status_code, headers=fields))
            while True:
                event = await self._event()
                if isinstance(event, h11.Data):
                    await down.send(h11.Data(data=bytes(event.data)))
                elif isinstance(event, h11.EndOfMessage):
                    await down.send(h11.EndOfMessage())
                    return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE
                else:  # closed mid-answer (or a close-delimited end, which h11 names so)
                    raise _Cut("the instance closed the connection mid-answer")
        except (OSError, h11.ProtocolError, _Cut):
            down.abort()
            self.writer.close()
            return False


class _Pool:
    """Kept-alive TLS connections to the instances' inbound sidecars, by port: a
    handshake per connection, not per request."""

    def __init__(self) -> None:
        self._idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def start(
        self,
        port: int,
        tls: ssl.SSLContext,
        head: h11.Request,
        fields: list[tuple[str, str]],
        body: bytes | None,
        down: _Downstream,
    ) -> _Upstream:
        """Send the request (`body`, or the client's as it comes when None) and read
        the answer's head. A small body goes again on a new connection when a kept one
        turns out closed."""
        if body is not None:
            idle = self._idle.setdefault(port, [])
            while idle:  # a kept connection the peer may have closed: one try each
                reader, writer = idle.pop()
                if reader.at_eof() or writer.is_closing():
                    writer.close()
                    continue
                try:
                    return await _send(reader, writer, head, fields, body, down)
                except (Closed, ConnectionError):  # dropped while kept: on a new one
                    writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        try:
            return await _send(reader, writer, head, fields, body, down)
        except BaseException:
            writer.close()
            raise

    def done(self, port: int, up: _Upstream, reusable: bool) -> None:
        if reusable:
            self._idle.setdefault(port, []).append((up.reader, up.writer))
        else:
            up.writer.close()

    def close(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


async def _send(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: h11.Request,
    fields: list[tuple[str, str]],
    body: bytes | None,
    down: _Downstream,
) -> _Upstream:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADERS)
    writer.write(conn.send(h11.Request(method=head.method, target=head.target, headers=fields)))
    if body is not None:
        if body:
            writer.write(conn.send(h11.Data(data=body)))
    else:
        async for chunk in down.body_chunks():
            writer.write(conn.send(h11.Data(data=chunk)))
            await writer.drain()
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_SIZE)
            if not data:
                raise Closed("the connection closed before an answer")
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            return _Upstream(conn, reader, writer, event)
        elif isinstance(event, h11.ConnectionClosed):
            raise Closed("the connection closed before an answer")
        # InformationalResponse (100 Continue, ...): the final answer follows


async def _first_bytes(reader: asyncio.StreamReader) -> bytes:
    """A connection's first bytes: enough to tell HTTP/2's preface (prior knowledge)
    from an HTTP/1.1 request, which differs from it within its first bytes."""
    data = b""
    while len(data) < len(activator_h2.PREFACE) and activator_h2.PREFACE.startswith(data):
        more = await reader.read(READ_SIZE)
        if not more:
            break
        data += more
    return data


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    """The next h11 event of `conn`, reading from `reader` as long as it needs data."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_SIZE))


def _framing(head: h11.Request) -> list[tuple[str, str]]:
    """How the forwarded request's body is framed: the client's Content-Length, else
    chunked when it sent a body in chunks."""
    length = _header(head.headers, b"content-length")
    if length is not None:
        return [("Content-Length", length)]
    encoding = _header(head.headers, b"transfer-encoding")
    if encoding is not None and "chunked" in encoding.lower():
        return [("Transfer-Encoding", "chunked")]
    return []


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def client_context(secrets: Secrets) -> ssl.SSLContext:
    """A TLS client context presenting `secrets`' certificate and trusting the mesh's
    roots. The key goes through an anonymous in-memory file (`memfd`), never to disk."""
    return workload_sds.client_context(
        secrets.certificate_chain, secrets.private_key, secrets.trust_bundle, "activator-identity"
    )
