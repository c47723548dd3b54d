"""Bodies stream through the activator, both ways: a Knative Service that starts at zero
(its traffic through the node agent's activator) answers a response written in two
parts, the second only once the client has read the first, and takes a request body
sent in chunks of unknown total length, through the gateway."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_knative_serving import ready_at
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

APP = r"""
import hashlib, json, os, pathlib, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if not self.path.startswith("/stream/"):
            return self.answer(b"ok")
        release = pathlib.Path("/" + self.path.removeprefix("/stream/"))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.chunk(b"first\n")
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.chunk(b"second\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            framing = "chunked"
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            framing = "length"
        digest = hashlib.sha256(body).hexdigest()
        self.answer(json.dumps({"size": len(body), "sha256": digest, "framing": framing}).encode())

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

MESH = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data:
  allow-zero-initial-scale: "true"
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: stream, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        # The activator stays in the path whatever the load (Knative's -1).
        autoscaling.knative.dev/target-burst-capacity: "-1"
    spec:
      containers:
        - image: example.com/stream:latest
          command: [python3, app.py]
          workingDir: apps
          readinessProbe: {httpGet: {path: /}}
"""
HOST = "stream.default.example.com"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("activator-streaming")
    with from_yaml(root, MESH, files={"apps/app.py": APP}) as up:
        until(lambda: ready_at(up, "stream", "stream-00001"), "stream Ready")
        yield up


def through_activator(up: Up) -> bool:
    with up.client() as c:
        rows: list[dict[str, Any]] = c.get("/api/v1/serving/revisions").json()["revisions"]
    return any(r["revision"] == "stream-00001" and r["activator"] for r in rows)


def test_a_response_arrives_as_it_is_written(mesh: Up, tmp_path: Path) -> None:
    until(lambda: through_activator(mesh), "the activator in the path")
    release = tmp_path / "release"
    url = mesh.info().gateway_urls[0] + f"/stream{release}"
    received = b""
    with httpx.stream("GET", url, headers={"Host": HOST}, timeout=90, trust_env=False) as resp:
        assert resp.status_code == 200
        parts = resp.iter_raw()
        while b"first\n" not in received:  # the app waits for `release` to go on
            received += next(parts)
        assert received == b"first\n"
        release.touch()
        for part in parts:
            received += part
    assert received == b"first\nsecond\n"


def test_a_request_body_streams_to_the_app(mesh: Up) -> None:
    until(lambda: through_activator(mesh), "the activator in the path")
    url = mesh.info().gateway_urls[0] + "/echo"
    block = bytes(range(256)) * 256  # 64 KiB
    whole = block * 16

    def chunks() -> Iterator[bytes]:
        for _ in range(16):
            yield block

    with httpx.Client(timeout=90, trust_env=False) as client:
        streamed = client.post(url, headers={"Host": HOST}, content=chunks())
        sized = client.post(url, headers={"Host": HOST}, content=b"small body")
    assert streamed.status_code == 200, streamed.text
    assert json.loads(streamed.text) == {
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "framing": "chunked",
    }
    assert json.loads(sized.text)["size"] == len(b"small body")
    assert json.loads(sized.text)["framing"] == "length"
    assert through_activator(mesh)
