"""A liveness probe under the real `ami up`: an app that stops answering it is stopped
and started again (a new process), as the kubelet restarts a container, while one
that answers is left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# Answers /live twice, then 500 for ever (until it is restarted); /ready always.
APP = """
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
seen = 0
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global seen
        if self.path == "/live":
            seen += 1
        status = 500 if self.path == "/live" and seen > 2 else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: flaky, labels: {app: flaky}}
spec:
  command: [python3, app.py]
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 0.2}
  livenessProbe: {httpGet: {path: /live, port: http}, periodSeconds: 0.2, failureThreshold: 2}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: steady, labels: {app: steady}}
spec:
  command: [python3, app.py]
  ports: [{name: http, port: 8080}]
  livenessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 0.2}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("liveness")
    with from_yaml(root, MESH, files={"app.py": APP}) as up:
        yield up


def test_an_app_failing_its_liveness_probe_is_restarted(mesh: Up) -> None:
    first = mesh.instances()["flaky-0"]["pid"]

    def restarted() -> dict[str, object] | None:
        row = mesh.instances()["flaky-0"]
        return row if row["restarts"] >= 1 and row["pid"] not in (None, first) else None

    row = until(restarted, "flaky-0 restarted by its liveness probe", timeout=60)
    assert row["pid"] != first
    log = (mesh.state.logs / "node.log").read_text()
    assert "flaky-0.default: liveness probe failed: HTTP 500" in log
    # The one that answers is never restarted.
    assert mesh.instances()["steady-0"]["restarts"] == 0
