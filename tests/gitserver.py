"""A git server over HTTP for tests: git's own smart-HTTP backend (`git http-backend`,
the CGI program that web servers run for git) behind a small HTTP server on loopback.

    with serving(root) as base:        # ROOT/NAME.git is at BASE/NAME.git
        git clone BASE/shop.git

With `auth=(user, password)`, every request needs them (HTTP basic authentication),
as a private repository's server asks.
"""

from __future__ import annotations

import base64
import hmac
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _handler(root: Path, auth: tuple[str, str] | None) -> type[BaseHTTPRequestHandler]:
    wanted = "Basic " + base64.b64encode(":".join(auth).encode()).decode() if auth else ""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _backend(self) -> None:
            given = self.headers.get("Authorization", "")
            if wanted and not hmac.compare_digest(given.encode(), wanted.encode()):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": urllib.parse.unquote(url.path),
                "QUERY_STRING": url.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _backend

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(root: Path, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """Serve the bare repositories under `root`; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, auth))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
