"""A small HTTP backend for tests: echoes what it received and misbehaves on request.

Request headers steer it:
- `x-echo-status: N`: answer with status N.
- `x-echo-delay: S`: sleep S seconds before answering.
- `x-echo-fail-first: N` with `x-echo-key: K`: the first N requests with key K get 503.
The backend records every request it served, so tests assert on what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Backend:
    name: str
    status: int = 200  # default status; set to 500 to make this backend fail
    requests: list[Received] = field(default_factory=list)
    _keys: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> Backend:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without this, Nagle's
            # algorithm and delayed ACKs add ~40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = Received(self.command, self.path, headers, body)
                with backend._lock:
                    backend.requests.append(rec)
                    status = backend.status
                    key = headers.get("x-echo-key")
                    if key is not None:
                        backend._keys[key] += 1
                        if backend._keys[key] <= int(headers.get("x-echo-fail-first", "0")):
                            status = 503
                if "x-echo-status" in headers:
                    status = int(headers["x-echo-status"])
                if "x-echo-delay" in headers:
                    time.sleep(float(headers["x-echo-delay"]))
                payload = json.dumps(
                    {
                        "backend": backend.name,
                        "method": self.command,
                        "path": self.path,
                        "host": headers.get("host", ""),
                        "headers": headers,
                    }
                ).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-backend", backend.name)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._keys.clear()
