"""The broker's HTTP client for deliveries: `POST` over kept-alive HTTP/1.1
connections, through the proxy the environment names (the broker's sidecar), with a
bounded answer.

Plain `http://` goes over a small pool of connections of its own (a delivery is a
request line, a few headers and a body; a general client's machinery per request
cost the broker more than the rest of a delivery); anything else (`https://`) goes
through aiohttp, imported and given a session only when such a request comes. A
request on a kept-alive connection that the other end had closed meanwhile (no byte
of an answer) is sent once more on a new one: delivery is at least once anyway.

A request can instead go straight to a given address over TLS (`Via`: a subscriber's
inbound sidecar, with the broker's own certificate); a connection that cannot be made
there raises `NotConnected`, so that the caller can take another way.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    import aiohttp

MAX_IDLE = 128  # kept-alive connections per address
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes | None  # None: over the limit


class NoAnswer(Exception):
    """The request got no (complete) answer: refused, reset, timed out, garbled."""


class NotConnected(NoAnswer):
    """No connection to the `Via` could be made (refused, or no TLS handshake): the
    request was not sent."""


@dataclass(frozen=True)
class Via:
    """Where a request goes instead of its URL's host or the proxy: an address, over
    TLS with `context`, to a peer whose certificate names one of `peers` (URI SANs:
    SPIFFE IDs)."""

    host: str
    port: int
    context: ssl.SSLContext
    peers: frozenset[str] = frozenset()


Address = tuple[str, int, ssl.SSLContext | None, frozenset[str]]


@functools.cache
def _environment_proxies() -> dict[str, str]:
    return urllib.request.getproxies_environment()


@functools.lru_cache(maxsize=256)
def proxy_for(url: str) -> str | None:
    """The proxy `HTTP_PROXY` (and `NO_PROXY`) name for `url`, the environment read
    once (aiohttp's `trust_env` reads it, and the netrc file, in a worker thread on
    every request)."""
    proxies = _environment_proxies()
    parts = urllib.parse.urlsplit(url)
    proxy = proxies.get(parts.scheme)
    if proxy is None or _bypassed(parts.hostname or "", proxies.get("no", "")):
        return None
    return proxy


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether `NO_PROXY` (`*`, or names and domains: `example.com` and `.example.com`
    both take its subdomains) names `host`."""
    for entry in (e.strip().lower().lstrip(".") for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


class _Conn(asyncio.Protocol):
    """A kept-alive connection: one request at a time, its answer parsed as it comes
    (httptools' parser) and handed over whole, or with no body once over the limit."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None
        self._limit = 0
        self._begin()

    def _begin(self) -> None:
        self._got = 0  # bytes of the current answer so far
        self._headers: dict[str, str] = {}
        self._head = 0
        self._body: list[bytes] = []
        self._size = 0
        self._in_body = False

    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def exchange(self, request: bytes, limit: int) -> asyncio.Future[tuple[Answer, bool]]:
        """Send `request`: the answer, and whether the connection can be kept."""
        waiter = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            waiter.set_exception(_Closed())
            return waiter
        self._waiter, self._limit = waiter, limit
        self._begin()
        self.transport.write(request)
        return waiter

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but are the same kind.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if self._got == 0:  # not a byte of an answer: the request may go again
            waiter.set_exception(_Closed())
        elif (
            self._in_body
            and "content-length" not in self._headers
            and ("chunked" not in self._headers.get("transfer-encoding", "").lower())
        ):  # a body that ends with the connection
            waiter.set_result((self._answer(), False))
        else:
            waiter.set_exception(ConnectionError("the answer was cut short"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a kept connection is not to be trusted
            self.close()
            return
        self._got += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ValueError("the answer switches protocols"))
        except httptools.HttpParserError as e:
            cause = e.__context__ if isinstance(e.__context__, ValueError) else e
            self._fail(ValueError(f"not an HTTP/1.1 answer: {cause}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value)
        if self._head > MAX_HEAD_BYTES:
            raise ValueError("the answer's head is too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        self._in_body = True
        length = self._headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limit:
            self._over()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._over()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._begin()
            self._got = 1
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._answer(), self._parser.should_keep_alive()))

    def _answer(self, over: bool = False) -> Answer:
        body = None if over else b"".join(self._body)
        return Answer(self._parser.get_status_code(), self._headers, body)

    def _over(self) -> None:
        """The body passes the limit: the answer without it, and the connection goes."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._answer(over=True), False))
        self.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()


class Client:
    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        """`session`: for what goes through aiohttp (else one of its own, made when
        first needed and closed with the client)."""
        self.session = session
        self._own_session = session is None
        self._idle: dict[Address, list[_Conn]] = {}
        # Contexts given up (a certificate renewed): their connections are not kept.
        self._forgotten: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float,
        limit: int,
        via: Via | None = None,
    ) -> Answer:
        """`POST` and read the answer (its body None when over `limit` bytes): to the
        proxy the environment names for `url`, or straight to `via`."""
        parts = urllib.parse.urlsplit(url)
        proxy = proxy_for(url) if via is None else None
        if parts.scheme != "http" or (proxy is not None and not proxy.startswith("http://")):
            return await self._aiohttp(url, headers, body, proxy, timeout_s, limit)
        address: Address
        if via is not None:
            address = (via.host, via.port, via.context, via.peers)
        else:
            hop = urllib.parse.urlsplit(proxy) if proxy is not None else parts
            address = (hop.hostname or "", hop.port or 80, None, frozenset())
        target = (
            url
            if proxy is not None
            else (parts.path or "/") + ("?" + parts.query if parts.query else "")
        )
        head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if any(c in line for line in head for c in "\r\n\0"):  # no header of its own
            raise NoAnswer("a line break in the request's head")
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            try:
                conn, reused = await self._take(address, timeout_s)
            except (OSError, ssl.SSLError, TimeoutError) as e:
                if via is None:
                    raise
                raise NotConnected(str(e) or type(e).__name__) from None
            try:
                try:
                    answer, keep = await _within(conn.exchange(request, limit), deadline)
                except _Closed:
                    if not reused:
                        raise
                    conn.close()
                    conn, _ = await self._connect(address, deadline - loop.time())
                    answer, keep = await _within(conn.exchange(request, limit), deadline)
            except BaseException:
                conn.close()
                raise
        except (OSError, TimeoutError, ValueError, _Closed) as e:
            raise NoAnswer(str(e) or type(e).__name__) from None
        if keep:
            self._give(address, conn)
        else:
            conn.close()
        return answer

    async def _take(self, address: Address, timeout_s: float) -> tuple[_Conn, bool]:
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        return await self._connect(address, timeout_s)

    async def _connect(self, address: Address, timeout_s: float) -> tuple[_Conn, bool]:
        host, port, context, peers = address
        async with asyncio.timeout(max(0.0, timeout_s)):
            transport, conn = await asyncio.get_running_loop().create_connection(
                _Conn, host, port, ssl=context
            )
        if context is not None and not peers & _uris(transport.get_extra_info("peercert")):
            transport.close()
            raise ssl.SSLError(f"{host}:{port} is none of {sorted(peers)}")
        return conn, False

    def _give(self, address: Address, conn: _Conn) -> None:
        if address[2] is not None and address[2] in self._forgotten:
            conn.close()
            return
        idle = self._idle.setdefault(address, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    def forget(self, context: ssl.SSLContext) -> None:
        """Close the kept connections made with `context` (a certificate renewed), and
        those in use once they are done."""
        self._forgotten.add(context)
        for address in [a for a in self._idle if a[2] is context]:
            for conn in self._idle.pop(address):
                conn.close()

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
        await asyncio.sleep(0)  # the transports close on the loop's next turn

    async def _aiohttp(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        proxy: str | None,
        timeout_s: float,
        limit: int,
    ) -> Answer:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession()
        try:
            async with self.session.post(
                url,
                data=body,
                headers=dict(headers),
                proxy=proxy,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                read = await _read_bounded(resp.content, limit)
                return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, read)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise NoAnswer(str(e) or type(e).__name__) from None


def _uris(cert: object) -> frozenset[str]:
    """The URI SANs of a peer certificate as `ssl` gives it (None: no certificate)."""
    if not isinstance(cert, dict):
        return frozenset()
    return frozenset(v for k, v in cert.get("subjectAltName", ()) if k == "URI")


class _Closed(Exception):
    """The other end closed the connection before any byte of an answer."""


async def _within(
    waiter: asyncio.Future[tuple[Answer, bool]], deadline: float
) -> tuple[Answer, bool]:
    """The answer `waiter` brings, or TimeoutError at `deadline` (a timer, not a task)."""
    loop = asyncio.get_running_loop()
    if waiter.done():
        return waiter.result()
    timer = loop.call_at(deadline, _expire, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[tuple[Answer, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer in time"))


async def get(host: str, port: int, path: str, *, limit: int, timeout_s: float) -> Answer:
    """One GET on a connection of its own, closed after (a sidecar's admin API). Raises
    OSError when nothing answered, TimeoutError after `timeout_s`."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with asyncio.timeout(timeout_s):
        _, conn = await loop.create_connection(_Conn, host, port)
    try:
        answer, _ = await _within(conn.exchange(request.encode(), limit), deadline)
    except _Closed as e:
        raise ConnectionError(f"{host}:{port} answered nothing whole") from e
    finally:
        conn.close()
    return answer


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    body = bytearray()
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            return None
