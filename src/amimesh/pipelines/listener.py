"""An EventListener's process (`python -m amimesh.pipelines.listener`): an HTTP server
on loopback at `$PORT`, behind its sidecar, that hands each webhook to the control
plane and answers with what it says (202 and Tekton's JSON body).

It reads `AMI_EVENTLISTENER`, `AMI_EVENTLISTENER_NAMESPACE`, `AMI_CONTROLPLANE` and
`AMI_EVENTLISTENER_TOKEN_FILE` (the listener's own token, which the control plane
wrote). A body over 4 MiB is refused (413) before anything reads it as JSON, whether
it comes with a length or chunked. `GET /live` and `/ready` answer 200.

The standard library's threaded HTTP server and client are all it uses: an instance
of this starts with every `ami up` that has an EventListener, and what it does (one
request in, one request out) needs nothing that costs more to import.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("amimesh.eventlistener")

MAX_BODY = 4 * 1024 * 1024
TIMEOUT_S = 30.0
# A chunk-size line longer than this is not HTTP.
MAX_CHUNK_LINE = 1024
# After a 413 the rest of the body is read and dropped (at most this much, for at
# most LINGER_S) before the connection closes, so that the client, still sending,
# reads the answer instead of a reset.
LINGER_BYTES = 2 * MAX_BODY
LINGER_S = 2.0


class TooLarge(Exception):
    pass


class BadRequest(Exception):
    pass


class Listener:
    def __init__(self, name: str, namespace: str, api: str, token: str) -> None:
        self.name = name
        self.namespace = namespace
        url = urllib.parse.urlsplit(api.rstrip("/"))
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"AMI_CONTROLPLANE: not an http:// address: {api!r}")
        self._host, self._port = url.hostname, url.port or 80
        self.sink = f"{url.path}/api/v1/triggers/sink/{namespace}/{name}"
        self._auth = f"Bearer {token}"

    def handover(
        self, headers: list[tuple[str, str]], body: bytes, target: str
    ) -> tuple[int, dict[str, Any]]:
        """Hand one webhook to the control plane: its status and JSON answer."""
        grouped: dict[str, list[str]] = {}
        for k, v in headers:
            grouped.setdefault(k, []).append(v)
        payload = json.dumps(
            {"headers": grouped, "body": base64.b64encode(body).decode(), "url": target}
        ).encode()
        conn = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S)
        try:
            conn.request(
                "POST",
                self.sink,
                body=payload,
                headers={"Authorization": self._auth, "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            answer = resp.read(MAX_BODY + 1)
            status = resp.status
        except (OSError, http.client.HTTPException) as err:
            log.warning("control plane unreachable: %s", err)
            return 503, {
                "eventListener": self.name,
                "namespace": self.namespace,
                "errorMessage": "the control plane is unreachable",
            }
        finally:
            conn.close()
        try:
            data = json.loads(answer)
        except ValueError:
            data = {"errorMessage": "the control plane answered no JSON"}
        if status >= 300 and status != 404:
            log.warning("control plane answered %d", status)
        return status, data

    def server(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        listener = self

        class Handler(_Handler):
            pass

        Handler.listener = listener
        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    listener: Listener

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # no access log: the sidecar keeps one

    def _json(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] in ("/live", "/ready"):
            self._json(200, {"status": "ok"})
        else:
            self._refuse_method()

    def _refuse_method(self) -> None:
        self.close_connection = True
        self._json(405, {"errorMessage": "send events with POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse_method  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        try:
            body = self._body()
        except TooLarge:
            self.close_connection = True
            self._json(413, {"errorMessage": "event too large"})
            self._linger()
            return
        except BadRequest as err:
            self.close_connection = True
            self._json(400, {"errorMessage": str(err)})
            return
        status, data = self.listener.handover(list(self.headers.items()), body, self.path)
        self._json(status, data)

    def _linger(self) -> None:
        self.wfile.flush()
        self.connection.settimeout(LINGER_S)
        left = LINGER_BYTES
        try:
            while left > 0:
                got = self.rfile.read1(min(left, 65536))
                if not got:
                    break
                left -= len(got)
        except OSError:
            pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length < 0:
            raise BadRequest("bad Content-Length")
        if length > MAX_BODY:
            raise TooLarge
        return self.rfile.read(length)


def _read_chunked(rfile: Any) -> bytes:
    """A chunked body, refused once it passes MAX_BODY."""
    out = bytearray()
    while True:
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
            raise BadRequest("bad chunk")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size < 0:
            raise BadRequest("bad chunk size")
        if size == 0:
            while rfile.readline(MAX_CHUNK_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        if len(out) + size > MAX_BODY:
            raise TooLarge
        out += rfile.read(size)
        rfile.readline(MAX_CHUNK_LINE + 1)  # the chunk's CRLF


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = os.environ
    try:
        token = Path(env["AMI_EVENTLISTENER_TOKEN_FILE"]).read_text().strip()
        listener = Listener(
            env["AMI_EVENTLISTENER"],
            env.get("AMI_EVENTLISTENER_NAMESPACE", "default"),
            env["AMI_CONTROLPLANE"],
            token,
        )
        port = int(env["PORT"])
        server = listener.server(port)
    except (KeyError, OSError, ValueError) as err:
        log.error("cannot start: %s", err)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("eventlistener %s/%s on 127.0.0.1:%d", listener.namespace, listener.name, port)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
