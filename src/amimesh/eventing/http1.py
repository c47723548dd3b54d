"""The broker's HTTP client for deliveries: `POST` over kept-alive HTTP/1.1
connections, through the proxy the environment names (the broker's sidecar), with a
bounded answer.

Plain `http://` goes over a small pool of connections of its own (a delivery is a
request line, a few headers and a body; a general client's machinery per request
cost the broker more than the rest of a delivery); anything else (`https://`) goes
through aiohttp. A request on a kept-alive connection that the other end had closed
meanwhile (no byte of an answer) is sent once more on a new one: delivery is at
least once anyway.

A request can instead go straight to a given address over TLS (`Via`: a subscriber's
inbound sidecar, with the broker's own certificate); a connection that cannot be made
there raises `NotConnected`, so that the caller can take another way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Client:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
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
        try:
            async with asyncio.timeout(timeout_s):
                try:
                    conn, reused = await self._take(address)
                except (OSError, ssl.SSLError) as e:
                    if via is None:
                        raise
                    raise NotConnected(str(e) or type(e).__name__) from None
                try:
                    try:
                        answer, keep = await _exchange(conn, request, limit)
                    except _Closed:
                        if not reused:
                            raise
                        conn.close()
                        conn, _ = await self._connect(address)
                        answer, keep = await _exchange(conn, request, limit)
                except BaseException:
                    conn.close()
                    raise
        except (
            OSError,
            TimeoutError,
            ValueError,
            _Closed,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as e:
            raise NoAnswer(str(e) or type(e).__name__) from None
        if keep:
            self._give(address, conn)
        else:
            conn.close()
        return answer

    async def _take(self, address: Address) -> tuple[_Conn, bool]:
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        return await self._connect(address)

    async def _connect(self, address: Address) -> tuple[_Conn, bool]:
        host, port, context, peers = address
        reader, writer = await asyncio.open_connection(
            host, port, limit=MAX_HEAD_BYTES, ssl=context
        )
        if context is not None and not peers & _uris(writer.get_extra_info("peercert")):
            writer.close()
            raise ssl.SSLError(f"{host}:{port} is none of {sorted(peers)}")
        return _Conn(reader, writer), False

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
                with contextlib.suppress(Exception):
                    await conn.writer.wait_closed()
        self._idle.clear()

    async def _aiohttp(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        proxy: str | None,
        timeout_s: float,
        limit: int,
    ) -> Answer:
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


async def _exchange(conn: _Conn, request: bytes, limit: int) -> tuple[Answer, bool]:
    """Send `request`; the answer, and whether the connection can be kept."""
    conn.writer.write(request)
    await conn.writer.drain()
    reader = conn.reader
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise _Closed() from None
            raise
        version, _, rest = line.decode("latin-1").partition(" ")
        status = int(rest[:3])
        headers = await _headers(reader)
        if not 100 <= status < 200:
            break
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        return Answer(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _chunked(reader, limit)
        return Answer(status, headers, body), keep and body is not None
    length = headers.get("content-length")
    if length is None:  # the body ends with the connection
        data = await _read_to_end(reader, limit)
        return Answer(status, headers, data if len(data) <= limit else None), False
    n = int(length)
    if n > limit:
        return Answer(status, headers, None), False
    return Answer(status, headers, await reader.readexactly(n)), keep


async def get(host: str, port: int, path: str, *, limit: int, timeout_s: float) -> Answer:
    """One GET on a connection of its own, closed after (a sidecar's admin API). Raises
    OSError when nothing answered, TimeoutError after `timeout_s`."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        conn = _Conn(reader, writer)
        try:
            answer, _ = await _exchange(conn, request.encode(), limit)
        except (_Closed, asyncio.IncompleteReadError) as e:
            raise ConnectionError(f"{host}:{port} answered nothing whole") from e
        finally:
            conn.close()
    return answer


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size += len(line)
        if size > MAX_HEAD_BYTES:
            raise ValueError("the answer's head is too large")
        if line == b"\r\n":
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    """What `reader` gives until it ends, or the first `limit + 1` bytes of it (more
    than `limit`: too much, for the caller to refuse)."""
    data = await reader.read(limit + 1)
    while data and len(data) <= limit:
        more = await reader.read(limit + 1 - len(data))
        if not more:
            break
        data += more
    return data


async def _chunked(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > limit:
            return None
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    body = bytearray()
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            return None
