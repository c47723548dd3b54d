"""Loopback checks under asyncio: readiness probes and Envoy admin calls, one request
per connection (`http_client`), so that no probe needs a thread and every one can be
cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from amimesh.agent.config import ProbeSpec
from amimesh.agent.http_client import fetch

LOOPBACK = "127.0.0.1"
_MAX_BODY = 1 << 20


async def request(
    port: int, path: str, *, method: str = "GET", timeout_s: float = 1.0, host: str = LOOPBACK
) -> tuple[int, str]:
    """(status, body) of one HTTP request to `host:port`. Raises OSError or TimeoutError."""
    resp = await fetch(
        f"http://{host}:{port}{path}", method=method, timeout_s=timeout_s, max_body=_MAX_BODY
    )
    return resp.status, resp.text()


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
