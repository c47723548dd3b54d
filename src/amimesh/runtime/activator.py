"""The activator: where a Knative revision's requests wait while it has no ready
instance (scaled to zero, or starting), in the node agent.

    activator = Activator(port, identity, instances, activate)
    await activator.start()          # 127.0.0.1:port, HTTP/1.1
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

Bodies are read whole (bounded by `MAX_BODY`) before they are forwarded: streaming
requests and responses are not proxied. Connections to the instances are kept alive
(a TLS handshake per connection, not per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import h11

from amimesh.agent.http_client import Closed, exchange
from amimesh.agent.sds import Secrets

log = logging.getLogger(__name__)

REVISION_HEADER = "knative-serving-revision"
NAMESPACE_HEADER = "knative-serving-namespace"
QUEUE_DEPTH = 10_000
MAX_BODY = 32 * 1024 * 1024
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

    def use_identity(self, secrets: Secrets) -> None:
        """The activator's certificate (and each renewal): its TLS client context
        (connections made with the last one are dropped)."""
        self._tls = client_context(secrets)
        self._pool.close()

    def changed(self) -> None:
        """Instances changed: waiting requests look again."""
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- one connection: HTTP/1.1 requests in turn ---------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                head, body = request
                status, fields, payload = await self._handle(head, body)
                _send(writer, conn, status, fields, payload)
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, _TooLarge) as e:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.ProtocolError, ConnectionError):
                    code = 413 if isinstance(e, _TooLarge) else 400
                    _send(writer, conn, code, [], f"{e}\n".encode())
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handle(
        self, head: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        given = {k.lower(): v for k, v in headers}
        revision, ns = given.get(REVISION_HEADER, ""), given.get(NAMESPACE_HEADER, "")
        if not revision or not ns:
            return 400, [], b"activator: no Knative-Serving-Revision and -Namespace\n"
        key = (ns, revision)
        if self._waiting.get(key, 0) >= QUEUE_DEPTH:
            return 503, [], b"activator: queue full\n"
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            target = await asyncio.wait_for(self._target(key), self._timeout_s)
        except TimeoutError:
            return 504, [], f"activator: {ns}/{revision} did not become ready\n".encode()
        finally:
            self._waiting[key] -= 1
        try:
            return await self._forward(target, head, headers, body)
        finally:
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
        self, target: Target, head: h11.Request, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        fields = [(k, v) for k, v in headers if k.lower() not in _HOP]
        assert self._tls is not None
        try:
            status, out, payload = await asyncio.wait_for(
                self._pool.exchange(target.port, self._tls, head, fields, body), self._timeout_s
            )
        except (OSError, TimeoutError) as e:
            return 502, [], f"activator: {target.instance}: {e or type(e).__name__}\n".encode()
        self.forwarded += 1
        return status, [(k, v) for k, v in out if k.lower() not in _HOP], payload


class _Pool:
    """Kept-alive TLS connections to the instances' inbound sidecars, by port: a
    handshake per connection, not per request."""

    def __init__(self) -> None:
        self._idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def exchange(
        self,
        port: int,
        tls: ssl.SSLContext,
        head: h11.Request,
        fields: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        idle = self._idle.setdefault(port, [])
        while idle:  # a kept connection the peer may have closed: one try each
            reader, writer = idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._send(port, reader, writer, head, fields, body)
            except (Closed, ConnectionError):  # dropped while kept: on a new one
                writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        return await self._send(port, reader, writer, head, fields, body)

    async def _send(
        self,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: h11.Request,
        fields: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        resp, reusable = await exchange(
            reader, writer, head.method, head.target, fields, body, max_body=MAX_BODY
        )
        if reusable:
            self._idle.setdefault(port, []).append((reader, writer))
        else:
            writer.close()
        return resp.status, list(resp.fields), resp.body

    def close(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


class _TooLarge(Exception):
    pass


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    """The next request and its whole body; None when the client is done."""
    head: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise _TooLarge(f"body over {MAX_BODY} bytes")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _send(
    writer: asyncio.StreamWriter,
    conn: h11.Connection,
    status: int,
    fields: Iterable[tuple[str, str]],
    body: bytes,
) -> None:
    headers = [*fields, ("Content-Length", str(len(body)))]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
    if body:
        writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))


def client_context(secrets: Secrets) -> ssl.SSLContext:
    """A TLS client context presenting `secrets`' certificate and trusting the mesh's
    roots. The key goes through an anonymous in-memory file (`memfd`), never to disk."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # peers are SPIFFE IDs, not host names
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=secrets.trust_bundle)
    fd = os.memfd_create("activator-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, (secrets.certificate_chain + "\n" + secrets.private_key).encode())
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context
