"""The broker's HTTP/1.1 server over real sockets: requests read whole, answered in
order, and bounded (what a hostile or broken client gets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvloop

from amimesh.eventing import http1_server
from amimesh.eventing.http1_server import MAX_HEAD_BYTES, MAX_HEADERS, Request, Response

LIMIT = 1000


class Echo:
    """A handler that says what it got; `/slow` answers after `/fast` is let go."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.release = asyncio.Event()
        self.slow = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        if request.path == "/boom":
            raise RuntimeError("a bug")
        if request.path == "/slow":
            self.slow.set()
            await self.release.wait()
        text = (
            f"{request.method} {request.path} {len(request.body)} {request.headers.get('x-a', '')}"
        )
        return Response(200, text, (("X-Path", request.path),))


@pytest.fixture
async def server() -> AsyncIterator[tuple[Echo, int]]:
    echo = Echo()
    srv = await http1_server.serve(echo, "127.0.0.1", 0, LIMIT)
    yield echo, srv.port
    await srv.close()


async def exchange(port: int, data: bytes, answers: int = 1) -> bytes:
    """Send `data`, read until `answers` answers came or the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    try:
        while got.count(b"HTTP/1.1 ") < answers or not _complete(got):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            got += chunk
    finally:
        writer.close()
    return got


def _complete(got: bytes) -> bool:
    """The last answer's body is all there."""
    head, sep, body = got.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    last = head.rsplit(b"HTTP/1.1 ", 1)[-1]
    for line in last.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def test_kept_alive_requests_answered_in_order(server: tuple[Echo, int]) -> None:
    echo, port = server
    # Pipelined: three requests in one write, one connection, three answers in order.
    data = post("/a", b"1", "X-A: one\r\n") + post("/b", b"22") + post("/c?q=1", b"")
    got = await exchange(port, data, answers=3)
    assert got.count(b"HTTP/1.1 200 OK") == 3
    assert got.index(b"POST /a 1 one") < got.index(b"POST /b 2") < got.index(b"POST /c 0")
    assert b"X-Path: /a" in got
    assert b"Connection: close" not in got


async def test_a_slow_answer_holds_the_later_ones_back(server: tuple[Echo, int]) -> None:
    echo, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/slow", b"") + post("/fast", b""))
    await asyncio.wait_for(echo.slow.wait(), 10)
    assert await _nothing_within(reader, 0.2)
    echo.release.set()
    got = b""
    while got.count(b"HTTP/1.1 200") < 2:
        got += await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert got.index(b"/slow") < got.index(b"/fast")


async def _nothing_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def test_stopping_answers_what_was_read_then_closes() -> None:
    echo = Echo()
    srv = await http1_server.serve(echo, "127.0.0.1", 0, LIMIT)
    port = srv.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/slow", b""))
    await asyncio.wait_for(echo.slow.wait(), 10)
    closing = asyncio.create_task(srv.close())
    await asyncio.sleep(0.1)
    echo.release.set()  # the request being handled finishes: answered, then closed
    got = await asyncio.wait_for(reader.read(), 10)
    assert got.startswith(b"HTTP/1.1 200 ") and b"POST /slow 0" in got
    assert await asyncio.wait_for(idle_reader.read(), 10) == b""  # an idle one: closed
    await asyncio.wait_for(closing, 10)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    idle_writer.close()


async def test_chunked_body_and_repeated_headers(server: tuple[Echo, int]) -> None:
    echo, port = server
    data = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    got = await exchange(port, data)
    assert b"POST /c 5 1, 2" in got
    assert echo.seen[0].body == b"abcde"


async def test_connection_close_is_honoured(server: tuple[Echo, int]) -> None:
    _, port = server
    got = await exchange(port, post("/a", b"", "Connection: close\r\n") + post("/b", b""), 2)
    assert got.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in got


async def test_a_body_over_the_limit_is_refused_unread(server: tuple[Echo, int]) -> None:
    echo, port = server
    # Its Content-Length alone: 413 before a byte of the body is sent.
    head = f"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode()
    got = await exchange(port, head)
    assert got.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in got
    # Chunked: refused once the chunks pass it.
    chunks = b"".join(b"%x\r\n%s\r\n" % (400, b"x" * 400) for _ in range(3))
    got = await exchange(
        port, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    assert got.startswith(b"HTTP/1.1 413 ")
    assert echo.seen == []


async def test_a_refusal_reaches_a_client_still_sending(server: tuple[Echo, int]) -> None:
    # Closing with the body still coming would reset the connection, and the client
    # could lose the 413 unread: the server reads on and drops it until the client
    # closes.
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = 2 << 20
    writer.write(f"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413 ")
    for _ in range(size // 65536):  # the client goes on sending: nothing is reset
        writer.write(b"x" * 65536)
        await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 10)
    assert rest.startswith(b"a body is at most")  # then the end of the stream
    writer.close()


async def test_heads_over_the_limits(server: tuple[Echo, int]) -> None:
    echo, port = server
    many = "".join(f"X-{i}: v\r\n" for i in range(MAX_HEADERS + 1))
    assert (await exchange(port, post("/a", b"", many))).startswith(b"HTTP/1.1 431 ")
    long = f"X-Long: {'v' * MAX_HEAD_BYTES}\r\n"
    assert (await exchange(port, post("/a", b"", long))).startswith(b"HTTP/1.1 431 ")
    assert echo.seen == []


async def test_garbage_gets_400_and_a_closed_connection(server: tuple[Echo, int]) -> None:
    echo, port = server
    got = await exchange(port, b"\x16\x03\x01 not http\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400 ")
    got = await exchange(port, post("/a", b"", "Content-Length: nope\r\n"))
    assert got.startswith(b"HTTP/1.1 400 ")
    # An answer already owed goes first; the bad request after it ends the connection.
    got = await exchange(port, post("/ok", b"") + b"BAD\x00\r\n\r\n", answers=2)
    assert got.index(b"HTTP/1.1 200") < got.index(b"HTTP/1.1 400")
    assert [r.path for r in echo.seen] == ["/ok"]


async def test_a_failing_handler_answers_500(server: tuple[Echo, int]) -> None:
    _, port = server
    got = await exchange(port, post("/boom", b"") + post("/a", b""), answers=2)
    assert got.startswith(b"HTTP/1.1 500 ")
    assert b"POST /a 0" in got  # the connection goes on


async def test_expect_100_continue(server: tuple[Echo, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"ok")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")


def test_encode() -> None:
    assert http1_server.encode(Response(202), close=False) == (
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    )
    got = http1_server.encode(Response(405, "only POST\n", (("Allow", "POST"),)), close=True)
    assert got.startswith(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n")
    assert got.endswith(b"Content-Length: 10\r\nConnection: close\r\n\r\nonly POST\n")


def test_served_on_uvloop() -> None:
    # The broker process runs on uvloop, whose transports are its own.
    async def run() -> bytes:
        echo = Echo()
        srv = await http1_server.serve(echo, "127.0.0.1", 0, LIMIT)
        try:
            port = srv.port
            return await exchange(port, post("/a", b"xy") + post("/b", b""), answers=2)
        finally:
            await srv.close()

    got = uvloop.run(run())
    assert got.index(b"POST /a 2") < got.index(b"POST /b 0")


async def test_a_request_not_whole_in_time_ends_its_connection(
    server: tuple[Echo, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    echo, port = server
    monkeypatch.setattr(http1_server, "READ_TIMEOUT_S", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")  # and no more
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing answered
    writer.close()
    assert echo.seen == []
    # The server goes on serving others.
    got = await exchange(port, post("/b", b"x"))
    assert b"POST /b 1" in got
