"""One HTTP/1.1 request per connection, under asyncio, on h11: the node agent's client
for readiness probes, Envoy's admin and the control plane's API.

    resp = await fetch("http://127.0.0.1:40075/api/v1/node/config?since=3",
                       headers={"Authorization": "Bearer …"}, timeout_s=40)
    resp.status, resp.json()

Every request can be cancelled at once (no thread), and its answer is bounded
(`max_body`): a larger one is an error, never the process's memory. h11 does the
protocol (framing, chunked bodies, keep-alive rules); this module only moves bytes. It
loads no TLS context unless a URL asks for https.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h11

MAX_BODY = 1 << 20
READ_SIZE = 1 << 16
USER_AGENT = "ami-node"


class HttpError(OSError):
    """Not an HTTP answer, or one larger than allowed."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names; the last of repeated ones
    body: bytes
    fields: tuple[tuple[str, str], ...] = ()  # every header as sent, in order

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON. Raises ValueError."""
        return json.loads(self.body)


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes = b"",
    json_body: Any = None,
    timeout_s: float = 10.0,
    max_body: int = MAX_BODY,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """One request to `url` (http or https). Raises OSError (HttpError among them:
    not HTTP, or an answer over `max_body`) or TimeoutError after `timeout_s`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    if json_body is not None:
        body = json.dumps(json_body).encode()
        pairs = [("Content-Type", "application/json"), *pairs]
    context = (tls or ssl.create_default_context()) if secure else None
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
        try:
            given = {k.lower() for k, _ in pairs}
            ours = (("Host", parts.netloc), ("User-Agent", USER_AGENT))
            fields = [(k, v) for k, v in ours if k.lower() not in given]
            fields += [*pairs, ("Connection", "close")]
            resp, _reusable = await exchange(
                reader, writer, method, target, fields, body, max_body=max_body
            )
            return resp
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


class Closed(HttpError):
    """The peer closed the connection before it began to answer (a kept-alive
    connection it had dropped: the request may be sent again on a new one)."""


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str | bytes,
    target: str | bytes,
    fields: Sequence[tuple[str, str]],
    body: bytes,
    *,
    max_body: int = MAX_BODY,
) -> tuple[Response, bool]:
    """One request on an open connection (`fields` are its headers, Host first;
    Content-Length is added), and its answer, bounded by `max_body`; second, whether
    the connection may carry another request. Raises HttpError (Closed among them),
    OSError."""
    conn = h11.Connection(h11.CLIENT)
    headers = [*fields, ("Content-Length", str(len(body)))]
    started = False
    try:
        writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        response: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(READ_SIZE)
                if not data and not started:
                    raise Closed("the connection closed before an answer")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                response, started = event, True
                declared = _header(event, b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_body:
                    raise HttpError(f"answer of {int(declared)} bytes, over {max_body}")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    raise HttpError(f"answer over {max_body} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except h11.ProtocolError as e:
        raise HttpError(f"not an HTTP answer: {e}") from None
    if response is None:
        raise Closed("the connection closed before an answer")
    pairs = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers)
    resp = Response(response.status_code, {k.lower(): v for k, v in pairs}, b"".join(chunks), pairs)
    return resp, conn.our_state is h11.DONE and conn.their_state is h11.DONE


def _header(event: h11.Response, name: bytes) -> str | None:
    for key, value in event.headers:
        if key == name:
            return value.decode("latin-1")
    return None
