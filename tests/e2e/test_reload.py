"""Live reload (`ami up --reload`): a change to a Workload's files restarts its
instance beside the running one, and steady traffic through the gateway sees no failed
request; the new code answers afterwards."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_runtime import Up, running, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec:
  command: [python3, app.py]
  workingDir: apps/web
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 0.2}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata:
  name: pinned
  labels: {app: pinned}
  annotations: {ami.dev/reload: "false"}
spec:
  command: [python3, app.py]
  workingDir: apps/web
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: ["*"]
  gateways: [web]
  http:
    - route: [{destination: {host: web, port: {number: 8080}}}]
"""

APP = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = b"%s"

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Up]:
    site = tmp_path / "site"
    (site / "apps" / "web").mkdir(parents=True)
    (site / "mesh.yaml").write_text(MESH)
    (site / "apps" / "web" / "app.py").write_text(APP % "v1")
    with running(site, tmp_path / "state", "--reload") as up:
        yield up


def test_a_code_change_rolls_the_instance_without_a_failed_request(mesh: Up) -> None:
    gateway = mesh.info().gateway_urls[0]
    pinned_pid = mesh.instances()["pinned-0"]["pid"]
    answers: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.get(gateway)
                    answers[f"{r.status_code} {r.text}"] += 1
                except httpx.HTTPError as e:
                    answers[f"error {type(e).__name__}"] += 1

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        until(lambda: answers["200 v1"] >= 20, "requests flow before the change", timeout=60)
        # Editors' and Python's own files are no change...
        (mesh.config_dir / "apps" / "web" / "__pycache__").mkdir()
        (mesh.config_dir / "apps" / "web" / "__pycache__" / "app.pyc").write_bytes(b"x")
        (mesh.config_dir / "apps" / "web" / ".app.py.swp").write_bytes(b"x")
        # ...a change of the code is.
        (mesh.config_dir / "apps" / "web" / "app.py").write_text(APP % "v2")
        until(lambda: answers["200 v2"] >= 1, "the new code answers", timeout=120)
        sent = sum(answers.values())
        until(lambda: sum(answers.values()) >= sent + 30, "requests flow after the change")
        rows = until(lambda: _without(mesh.instances(), "web-0"), "the old one gone", timeout=60)
        sent = sum(answers.values())
        until(lambda: sum(answers.values()) >= sent + 30, "requests flow without it")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    failed = {k: n for k, n in answers.items() if k not in ("200 v1", "200 v2")}
    assert not failed, answers
    assert rows["web-0-r1"]["ready"], rows
    assert rows["web-0-r1"]["workload"] == "web"
    # The old instance left the endpoints: only the new code answers.
    with httpx.Client(trust_env=False, timeout=30) as c:
        assert {c.get(gateway).text for _ in range(10)} == {"v2"}
    # A Workload annotated `ami.dev/reload: "false"` is left alone.
    assert mesh.instances()["pinned-0"]["pid"] == pinned_pid


def _without(rows: dict[str, dict[str, Any]], instance: str) -> dict[str, dict[str, Any]] | None:
    return rows if instance not in rows else None


KNATIVE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: example.com/hello:latest
          command: [python3, app.py]
          workingDir: apps/hello
          readinessProbe: {httpGet: {path: /}}
"""


def _latest_ready(up: Up) -> str | None:
    with up.client() as c:
        items = c.get("/api/v1/resources", params={"kind": "ksvc", "name": "hello"}).json()
    status = items["items"][0].get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return str(status.get("latestReadyRevisionName")) if ready else None


def _through(up: Up, host: str) -> str:
    resp = httpx.get(up.info().gateway_urls[0], headers={"Host": host}, timeout=30, trust_env=False)
    return f"{resp.status_code} {resp.text}"


def test_a_knative_service_gets_a_new_revision_when_its_files_change(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "apps" / "hello").mkdir(parents=True)
    (site / "mesh.yaml").write_text(KNATIVE)
    code = site / "apps" / "hello" / "app.py"
    code.write_text(APP % "one")
    with running(site, tmp_path / "state", "--reload", ready=None) as up:
        until(lambda: _latest_ready(up) == "hello-00001", "the first revision ready", 90)
        host = "hello.default.example.com"
        until(lambda: _through(up, host) == "200 one", "the first revision answers", 60)
        (site / "apps" / "hello" / "app.py~").write_text("an editor's backup")
        code.write_text(APP % "two")
        until(lambda: _latest_ready(up) == "hello-00002", "a new revision ready", 90)
        until(
            lambda: _through(up, "hello.default.example.com") == "200 two",
            "the route on the new revision",
            60,
        )
        with up.client() as c:
            items = c.get("/api/v1/resources", params={"kind": "ksvc", "name": "hello"}).json()
        # One change, one revision (an editor's backup file is none).
        assert items["items"][0]["status"]["latestCreatedRevisionName"] == "hello-00002"
