"""The broker's delivery client against real sockets: answers framed every way
HTTP/1.1 allows, kept-alive connections, a kept one the server closed, bounds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from amimesh.eventing import http1


@dataclass
class Server:
    """A raw HTTP/1.1 server: each request's head and body kept, answered by `answer`."""

    answer: Callable[[int], bytes]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    close_after: int = 0  # close each connection after this many answers (0: never)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.answer(len(self.requests)))
                await writer.drain()
                served += 1
                if self.close_after and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def client() -> AsyncIterator[http1.Client]:
    async with aiohttp.ClientSession() as session:
        c = http1.Client(session)
        yield c
        await c.close()


async def serve(server: Server) -> asyncio.Server:
    s = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = s.sockets[0].getsockname()[1]
    return s


async def post(client: http1.Client, server: Server, limit: int = 1024) -> http1.Answer:
    return await client.post(
        f"http://127.0.0.1:{server.port}/sub?x=1",
        {"ce-id": "1"},
        b"hello",
        timeout_s=5,
        limit=limit,
    )


async def test_a_content_length_answer_on_a_kept_connection(client: http1.Client) -> None:
    server = Server(lambda n: b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok")
    async with await serve(server):
        first = await post(client, server)
        second = await post(client, server)
    assert (first.status, first.body, first.headers["x-a"]) == (202, b"ok", "b")
    assert second.body == b"ok"
    assert server.connections == 1
    head = server.requests[0]
    assert head.startswith(b"POST /sub?x=1 HTTP/1.1\r\n")
    assert b"\r\nce-id: 1\r\n" in head and b"\r\nContent-Length: 5\r\n" in head
    assert head.endswith(b"\r\n\r\nhello")


async def test_a_chunked_answer_and_an_interim_one(client: http1.Client) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n"
    )
    server = Server(lambda n: answer)
    async with await serve(server):
        got = await post(client, server)
        again = await post(client, server)
    assert (got.status, got.body, again.body) == (200, b"abcde", b"abcde")
    assert server.connections == 1


async def test_an_answer_ended_by_the_connection(client: http1.Client) -> None:
    server = Server(
        lambda n: b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nbroken", close_after=1
    )
    async with await serve(server):
        got = await post(client, server)
        await post(client, server)
    assert (got.status, got.body) == (500, b"broken")
    assert server.connections == 2


async def test_a_kept_connection_the_server_closed_is_replaced(client: http1.Client) -> None:
    # The server closes after each answer without saying so: the second request
    # finds the kept connection closed and goes again on a new one.
    server = Server(lambda n: b"HTTP/1.1 202 OK\r\nContent-Length: 0\r\n\r\n", close_after=1)
    async with await serve(server):
        await post(client, server)
        await asyncio.sleep(0.05)  # the close reaches the client (or not: both are fine)
        got = await post(client, server)
    assert got.status == 202
    assert len(server.requests) == 2


async def test_an_answer_over_the_limit_has_no_body(client: http1.Client) -> None:
    big = b"x" * 2000
    server = Server(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + big)
    async with await serve(server):
        got = await post(client, server, limit=1000)
    assert (got.status, got.body) == (200, None)


async def test_no_answer(client: http1.Client) -> None:
    s = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = s.sockets[0].getsockname()[1]
    s.close()
    await s.wait_closed()
    with pytest.raises(http1.NoAnswer):
        await client.post(f"http://127.0.0.1:{port}/", {}, b"", timeout_s=5, limit=10)
    silent = Server(lambda n: b"")  # takes the request, never answers
    async with await serve(silent):
        with pytest.raises(http1.NoAnswer):
            await client.post(f"http://127.0.0.1:{silent.port}/", {}, b"", timeout_s=0.3, limit=9)


async def test_through_a_proxy_the_target_is_the_absolute_url(
    client: http1.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(lambda n: b"HTTP/1.1 202 OK\r\nContent-Length: 0\r\n\r\n")
    async with await serve(server):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("NO_PROXY", "localhost")
        http1._environment_proxies.cache_clear()
        http1.proxy_for.cache_clear()
        try:
            got = await client.post(
                "http://sink.default.svc.cluster.local/a", {}, b"", timeout_s=5, limit=9
            )
        finally:
            http1._environment_proxies.cache_clear()
            http1.proxy_for.cache_clear()
    assert got.status == 202
    head = server.requests[0]
    assert head.startswith(b"POST http://sink.default.svc.cluster.local/a HTTP/1.1\r\n")
    assert b"\r\nHost: sink.default.svc.cluster.local\r\n" in head


async def test_a_line_break_in_a_header_is_never_sent(client: http1.Client) -> None:
    server = Server(lambda n: b"HTTP/1.1 202 OK\r\nContent-Length: 0\r\n\r\n")
    async with await serve(server):
        with pytest.raises(http1.NoAnswer):
            await client.post(
                f"http://127.0.0.1:{server.port}/",
                {"ce-x": "a\r\nInjected: 1"},
                b"",
                timeout_s=5,
                limit=9,
            )
    assert server.requests == []


async def test_https_goes_through_a_session_of_its_own_made_when_needed() -> None:
    """What is not plain HTTP goes through aiohttp: the client makes its session at
    the first such request (the broker does not import aiohttp to start) and closes
    it with itself."""
    c = http1.Client()
    assert c.session is None
    server = Server(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    async with await serve(server):
        assert (await post(c, server)).status == 200  # plain HTTP: no session
        assert c.session is None
        with pytest.raises(http1.NoAnswer):  # no TLS there
            await c.post(f"https://127.0.0.1:{server.port}/", {}, b"", timeout_s=0.5, limit=9)
    session = c.session
    assert isinstance(session, aiohttp.ClientSession)
    await c.close()
    assert session.closed and c.session is None


def test_the_broker_process_starts_without_aiohttp_or_resource_models() -> None:
    code = (
        "import sys; import amimesh.eventing.broker_main; "
        "print(sorted(m for m in ('aiohttp', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
