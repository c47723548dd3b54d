"""A mesh that starts with no Gateway gets its ingress gateway when the first one is
applied (or the first Knative route comes): the node agent starts it then, and it
serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshes import apply, from_yaml
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: files, labels: {app: files}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  ports: [{name: http, port: 8000}]
  readinessProbe: {httpGet: {path: /}}
---
apiVersion: v1
kind: Service
metadata: {name: files}
spec:
  selector: {app: files}
  ports: [{name: http, port: 8000}]
"""

INGRESS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: late}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: files}
spec:
  hosts: ["*"]
  gateways: [late]
  http: [{route: [{destination: {host: files, port: {number: 8000}}}]}]
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Up]:
    with from_yaml(tmp_path, MESH, ready="files ready") as up:
        yield up


def gateway_urls(up: Up) -> list[str]:
    return list(json.loads((up.state.path / "status.json").read_text())["gateway_urls"])


def test_the_first_gateway_applied_starts_the_ingress_gateway(mesh: Up) -> None:
    assert "istio-ingressgateway-0" not in mesh.instances()
    assert gateway_urls(mesh) == []
    apply(mesh, INGRESS, source="late.yaml")
    (url,) = until(lambda: gateway_urls(mesh), "the gateway's URL")
    until(lambda: mesh.instances()["istio-ingressgateway-0"]["ready"], "the gateway ready")

    def served() -> bool:
        r = httpx.get(url, timeout=5, trust_env=False)
        return r.status_code == 200 and "Directory listing" in r.text

    until(served, "files through the new gateway")
