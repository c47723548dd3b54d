"""Loopback checks under asyncio: readiness probes and Envoy admin calls.

A tiny HTTP/1.1 client (one request per connection), so that no probe needs a thread
and every one can be cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from amimesh.agent.config import ProbeSpec

LOOPBACK = "127.0.0.1"
_MAX_BODY = 1 << 20


async def request(
    port: int, path: str, *, method: str = "GET", timeout_s: float = 1.0, host: str = LOOPBACK
) -> tuple[int, str]:
    """(status, body) of one HTTP request to `host:port`. Raises OSError or TimeoutError."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "User-Agent: ami-agent\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii"))
            await writer.drain()
            raw = await reader.read(_MAX_BODY)
            while chunk := await reader.read(_MAX_BODY):
                raw += chunk
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP response: {status_line[:80]!r}")
    headers, _, body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        body = _dechunk(body)
    return int(parts[1]), body.decode("utf-8", "replace")


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


async def tcp_accepts(port: int, timeout_s: float, host: str = LOOPBACK) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check(spec: ProbeSpec) -> bool:
    """One probe: an HTTP GET answered 200-399, or a TCP connection accepted."""
    return not await failure(spec)


async def failure(spec: ProbeSpec) -> str:
    """One probe: "" when it passes (an HTTP GET answered 200-399, or a TCP connection
    accepted), else why not, as `ami status` shows it."""
    where = f"{LOOPBACK}:{spec.port}"
    try:
        if spec.kind == "tcp":
            async with asyncio.timeout(spec.timeout_s):
                _reader, writer = await asyncio.open_connection(LOOPBACK, spec.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return ""
        status, _ = await request(spec.port, spec.path, timeout_s=spec.timeout_s)
    except TimeoutError:
        return f"no answer on {where} in {spec.timeout_s:g}s"
    except ConnectionRefusedError:
        return f"connection refused on {where}"
    except OSError as e:
        return f"{where}: {e.strerror or e}"
    if 200 <= status < 400:
        return ""
    return f"HTTP {status} from GET {spec.path} on {where}"
