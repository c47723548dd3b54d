"""The `ami` command as a user runs it: real processes, real Envoy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amimesh.agent.bootstrap import bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.model.proxy import Proxy
from tests.e2e.backend import Backend
from tests.e2e.harness import free_port

AMI = [sys.executable, "-m", "amimesh.cli.main"]

GOOD = """
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-1}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{uri: {prefix: /hello}}]
      directResponse: {status: 200, body: {string: "hello from the mesh"}}
    - route: [{destination: {host: echo}}]
"""

BROKEN = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [echo]
  http:
    - route:
        - destination: {host: echo}
          weight: -5
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AMI, *args], capture_output=True, text=True, timeout=60)


def test_validate_reports_file_resource_and_field(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD % 8080)
    ok = run("validate", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "3 resource(s) valid" in ok.stdout

    (tmp_path / "broken.yaml").write_text(BROKEN)
    bad = run("validate", str(tmp_path))
    assert bad.returncode == 1
    assert (
        f"{tmp_path / 'broken.yaml'}: document 0 (line 2): VirtualService/default/broken: "
        "spec.http[0].route[0].weight: must be at least 0, got -5"
    ) in bad.stderr.replace("\n", "")
    assert run("validate", str(tmp_path / "missing")).returncode == 2


@pytest.fixture
def controlplane(tmp_path: Path) -> Iterator[tuple[int, Path, Backend]]:
    backend = Backend("echo-1").start()
    config = tmp_path / "config"
    config.mkdir()
    (config / "echo.yaml").write_text(GOOD % backend.port)
    port = free_port()
    proc = subprocess.Popen(
        [*AMI, "controlplane", "--config", str(config), "--xds-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "xDS on 127.0.0.1:" in proc.stdout.readline()
        yield port, config, backend
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
        backend.stop()
    assert proc.returncode == 0, err


def test_controlplane_serves_a_real_envoy(
    controlplane: tuple[int, Path, Backend], tmp_path: Path
) -> None:
    xds_port, _config, backend = controlplane
    proxy = Proxy(id="client.default", workload="client", outbound_port=free_port())
    admin = free_port()
    path = tmp_path / "client.json"
    path.write_text(
        json.dumps(bootstrap(proxy, xds_host="127.0.0.1", xds_port=xds_port, admin_port=admin))
    )
    envoy = EnvoyProcess(path, admin, tmp_path / "client.log")
    envoy.start()
    try:
        envoy.wait_ready()
        with httpx.Client(proxy=f"http://127.0.0.1:{proxy.outbound_port}", trust_env=False) as c:
            hello = c.get("http://echo/hello")
            assert (hello.status_code, hello.text) == (200, "hello from the mesh")
            routed = c.get("http://echo.default.svc.cluster.local/x")
            assert routed.status_code == 200
            assert json.loads(routed.text)["backend"] == "echo-1"
        assert backend.count() == 1
    finally:
        envoy.stop()
