"""The YAML body of `POST /api/v1/apply` and `/delete`, read within the loader's limits.

A body larger than `MAX_BYTES` is refused by its Content-Length, or, when it has none,
as soon as more than that has arrived: the rest is never kept. The parse runs in a
worker thread, so that a large but legal body does not hold up the xDS server, which
shares the control plane's event loop.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from amimesh.resources import ConfigError, ParseResult, parse_bytes
from amimesh.resources.yaml_limits import MAX_BYTES, TOO_BIG


async def parse_body(request: web.Request, source: str) -> ParseResult:
    """The resources in the request's body (UTF-8 YAML, whatever charset it claims)."""
    too_big = ParseResult(errors=[ConfigError(source, message=TOO_BIG)])
    if (request.content_length or 0) > MAX_BYTES:
        return too_big
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_BYTES:
            return too_big
    return await asyncio.to_thread(parse_bytes, bytes(body), source)
