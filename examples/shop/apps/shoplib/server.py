"""The HTTP shell every shop service runs in: routes, one log line a request, SIGTERM.

A service is a list of `Route`s, each a method, a path pattern and a handler taking a
`Request` and returning a `Response`. The server listens on 127.0.0.1:$PORT (the port
the runtime gives the app; its sidecar owns the service port) and stops cleanly on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from shoplib.propagate import forwarded


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Message
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def json(self) -> Any:
        """The body as JSON; `ValueError` if it is not."""
        return json.loads(self.body or b"null")

    def cookies(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in self.header("cookie").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name and name not in out:
                out[name] = urllib.parse.unquote(value)
        return out

    def propagated(self) -> dict[str, str]:
        """The trace and user headers to copy onto calls made for this request."""
        return forwarded(self.headers.items())


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Sequence[tuple[str, str]] = ()


def text(body: str, status: int = 200) -> Response:
    return Response(status, body.encode(), "text/plain; charset=utf-8")


def html(body: str, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status, body.encode(), "text/html; charset=utf-8", headers)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode() + b"\n", "application/json")


def redirect(location: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(303, b"", "text/plain; charset=utf-8", [("Location", location), *headers])


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # a regex over the path, with named groups as parameters
    handler: Handler

    def match(self, path: str) -> re.Match[str] | None:
        return re.fullmatch(self.pattern, path)


def health(_: Request) -> Response:
    return text("ok\n")


def dispatch(routes: Sequence[Route], request: Request) -> Response:
    """The response of the first route matching the request's path and method."""
    allowed: list[str] = []
    for route in routes:
        found = route.match(request.path)
        if found is None:
            continue
        if route.method != request.method:
            allowed.append(route.method)
            continue
        bound = Request(
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            found.groupdict(),
        )
        return route.handler(bound)
    if allowed:
        return Response(405, b"method not allowed\n", headers=[("Allow", ", ".join(allowed))])
    return text("not found\n", 404)


def log(service: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    sys.stdout.write(f"{stamp} {service} {message}\n")
    sys.stdout.flush()


def _handler_class(service: str, routes: Sequence[Route]) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"shop-{service}"

        def _serve(self) -> None:
            started = time.monotonic()
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            query = dict(urllib.parse.parse_qsl(url.query))
            request = Request(self.command, url.path or "/", query, self.headers, body)
            try:
                response = dispatch(routes, request)
            except Exception:
                traceback.print_exc()
                response = text("internal error\n", 500)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            elapsed = (time.monotonic() - started) * 1000
            request_id = self.headers.get("x-request-id", "-")
            host = self.headers.get("host", "-")
            log(
                service,
                f'"{self.command} {self.path}" {response.status} {elapsed:.1f}ms '
                f"host={host} x-request-id={request_id}",
            )

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # `_serve` logs one line per request itself

    return _Handler


def listen_port(env: Mapping[str, str] | None = None) -> int:
    """The port to listen on: $PORT, as the runtime sets it."""
    value = (os.environ if env is None else env).get("PORT")
    if not value:
        raise SystemExit("PORT is not set: the runtime gives each app its port in $PORT")
    return int(value)


def on_stop_signals(stop: Callable[[], None]) -> None:
    """Call `stop` from a fresh thread on SIGTERM or SIGINT (a handler must not block)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=stop, name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def serve(service: str, routes: Sequence[Route], *, host: str = "127.0.0.1") -> None:
    """Serve `routes` on host:$PORT until SIGTERM/SIGINT, then return."""
    port = listen_port()
    server = ThreadingHTTPServer((host, port), _handler_class(service, routes))
    on_stop_signals(server.shutdown)
    log(service, f"listening on http://{host}:{port}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        log(service, "stopped")
