"""`ami intercept`: a process started from a terminal takes a workload's place, with its
identity, sidecar, policy and environment; a header keeps it personal; SIGINT (Ctrl-C)
puts everything back; a CLI killed outright loses its lease and the same happens."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from tests.e2e.test_runtime import AMI, Up, running, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SPIFFE_API = "spiffe://cluster.local/ns/default/sa/api"

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: api, labels: {app: api}}
spec:
  command: [python3, app.py, managed]
  workingDir: apps
  serviceAccount: api
  env: [{name: GREETING, value: hello}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  serviceAccount: client
  ports: [{name: http, port: 8000}]
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: stranger, labels: {app: stranger}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  serviceAccount: stranger
  ports: [{name: http, port: 8000}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
    - from:
        - source:
            principals:
              - cluster.local/ns/default/sa/client
              - cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: api}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: ["*"]
  gateways: [api]
  http:
    - route: [{destination: {host: api, port: {number: 8080}}}]
"""

APP = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WHO = sys.argv[1]

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "who": WHO,
            "xfcc": self.headers.get("x-forwarded-client-cert", ""),
            "env": {k: os.environ.get(k, "") for k in
                    ("PORT", "GREETING", "AMI_WORKLOAD", "AMI_SERVICE_ACCOUNT", "HTTP_PROXY")},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("intercept")
    site = root / "site"
    (site / "apps").mkdir(parents=True)
    (site / "mesh.yaml").write_text(MESH)
    (site / "apps" / "app.py").write_text(APP)
    with running(site, root / "state") as up:
        yield up


def gateway(up: Up, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(up.info().gateway_urls[0], headers=headers, timeout=30, trust_env=False)


def from_sidecar(up: Up, caller: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """As `caller`'s app sends it: through its sidecar's outbound listener."""
    agent = json.loads((up.state.instances / f"{caller}-0.default" / "agent.json").read_text())
    proxy = f"http://127.0.0.1:{agent['proxy']['outbound_port']}"
    with httpx.Client(proxy=proxy, timeout=30, trust_env=False) as c:
        return c.get("http://api:8080/", headers=headers)


def who(resp: httpx.Response) -> str:
    return str(resp.json()["who"]) if resp.status_code == 200 else str(resp.status_code)


def intercept(up: Up, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = up.state_root.parent / f"intercept-{len(args)}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *AMI,
                "intercept",
                "api",
                *args,
                "--mesh",
                str(up.state.path),
                "--",
                sys.executable,
                str(up.config_dir / "apps" / "app.py"),
                "intercept",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, log


def intercepts(up: Up) -> list[dict[str, Any]]:
    with up.client() as c:
        items: list[dict[str, Any]] = c.get("/api/v1/intercepts").json()["items"]
        return items


def all_back(up: Up) -> bool:
    rows = up.instances()
    gone = not any("intercept" in name for name in rows) and not intercepts(up)
    answers = {who(gateway(up, {"x-dev": "alice"})) for _ in range(5)}
    return gone and answers == {"managed"}


def test_a_header_intercept_takes_only_its_requests_as_the_workload(mesh: Up) -> None:
    proc, log = intercept(mesh, "--header", "x-dev=alice")
    try:
        until(
            lambda: who(gateway(mesh, {"x-dev": "alice"})) == "intercept",
            "the intercept answering",
            timeout=90,
        )
        # Through the gateway and from a sidecar: the header picks the intercept...
        assert who(from_sidecar(mesh, "client", {"x-dev": "alice"})) == "intercept"
        # ...and everyone else keeps reaching the managed instance.
        for _ in range(5):
            assert who(gateway(mesh)) == "managed"
            assert who(gateway(mesh, {"x-dev": "bob"})) == "managed"
            assert who(from_sidecar(mesh, "client")) == "managed"
        # The workload's AuthorizationPolicy applies to the intercept as to the workload.
        assert from_sidecar(mesh, "stranger", {"x-dev": "alice"}).status_code == 403
        assert from_sidecar(mesh, "stranger").status_code == 403
        # Its identity is the workload's: the certificate its sidecar serves (XFCC's
        # By=, set by the intercept's own Envoy from its certificate) and the one the
        # node agent wrote for it; the caller is seen as itself.
        seen = from_sidecar(mesh, "client", {"x-dev": "alice"}).json()
        assert f"By={SPIFFE_API}" in seen["xfcc"], seen
        assert "URI=spiffe://cluster.local/ns/default/sa/client" in seen["xfcc"], seen
        (item,) = intercepts(mesh)
        pem = (mesh.state.instances / item["instance"] / "cert.pem").read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE_API]
        # The workload's environment, with the intercept instance's own ports.
        env = seen["env"]
        assert env["GREETING"] == "hello" and env["AMI_WORKLOAD"] == "api"
        assert env["AMI_SERVICE_ACCOUNT"] == "api" and env["HTTP_PROXY"].startswith("http://")
        managed = mesh.instances()["api-0"]
        assert env["PORT"] and str(managed["pid"]) != ""
        # Ctrl-C: the CLI ends the intercept, and everything is as before.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 128 + signal.SIGINT, log.read_text()
        until(lambda: all_back(mesh), "everything back to the managed instance", timeout=60)
        assert mesh.instances()["api-0"]["pid"] == managed["pid"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_an_intercept_of_every_request_ends_when_its_cli_dies(mesh: Up) -> None:
    proc, log = intercept(mesh)
    try:
        until(lambda: who(gateway(mesh)) == "intercept", "the intercept answering", timeout=90)
        # No header: every request, from every caller.
        for _ in range(5):
            assert who(gateway(mesh)) == "intercept"
            assert who(from_sidecar(mesh, "client")) == "intercept"
        # The CLI dies outright: its command with it, and its lease runs out.
        proc.kill()
        proc.wait(10)
        until(lambda: all_back(mesh), "everything back after the lease ran out", timeout=90)
        assert who(gateway(mesh)) == "managed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        print(log.read_text())
