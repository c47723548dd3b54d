"""The EventListener's process: bounded bodies (with a length or chunked), what it
hands to the control plane, and its answers when the control plane cannot be reached.
Real HTTP servers on loopback, one for the listener and one standing in for the
control plane's sink."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from amimesh.pipelines import listener


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def control_plane(seen: list[tuple[str, str, dict[str, Any]]]) -> ThreadingHTTPServer:
    class Sink(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["Authorization"], json.loads(body)))
            answer = json.dumps({"eventListener": "ci", "eventID": "e"}).encode()
            self.send_response(202)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return ThreadingHTTPServer(("127.0.0.1", 0), Sink)


def test_the_listener_hands_over_each_webhook() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(control_plane(seen)) as api:
        with serving(listener.Listener("ci", "default", api, "tok").server(0)) as url:
            with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
                assert client.get("/live").status_code == 200
                assert client.get("/ready").status_code == 200
                assert client.get("/").status_code == 405
                assert client.put("/hook", content=b"{}").status_code == 405
                resp = client.post(
                    "/hook?x=1", content=b'{"a": 1}', headers={"X-GitHub-Event": "push"}
                )
                assert resp.status_code == 202
                assert resp.json() == {"eventListener": "ci", "eventID": "e"}
                too_big = client.post("/", content=b"x" * (listener.MAX_BODY + 1))
                assert too_big.status_code == 413

                def chunks(total: int) -> Iterator[bytes]:
                    for _ in range(total // 65536):
                        yield b"y" * 65536

                chunked_big = client.post("/", content=chunks(listener.MAX_BODY + 65536))
                assert chunked_big.status_code == 413
                chunked = client.post("/c", content=iter([b'{"b":', b" 2}"]))
                assert chunked.status_code == 202
    [(path, auth, payload), (_, _, second)] = seen
    assert path == "/api/v1/triggers/sink/default/ci"
    assert auth == "Bearer tok"
    assert base64.b64decode(payload["body"]) == b'{"a": 1}'
    assert payload["headers"]["X-GitHub-Event"] == ["push"]
    assert payload["url"] == "/hook?x=1"
    assert base64.b64decode(second["body"]) == b'{"b": 2}'


def test_a_bad_length_is_refused() -> None:
    with serving(listener.Listener("ci", "default", "http://127.0.0.1:9", "tok").server(0)) as url:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", "nope")
        conn.endheaders()
        assert conn.getresponse().status == 400
        conn.close()


def test_without_a_control_plane_the_listener_says_so() -> None:
    with serving(listener.Listener("ci", "default", "http://127.0.0.1:9", "tok").server(0)) as url:
        resp = httpx.post(url, content=json.dumps({}).encode(), trust_env=False, timeout=10)
    assert resp.status_code == 503
    assert "unreachable" in resp.json()["errorMessage"]
