"""`$(VAR)` in a Workload's args reaches the app expanded, as in a Kubernetes container:
`python3 -m http.server $(PORT)` listens on the port Ami gave it and serves through
the mesh."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_runtime import Up, get

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: files, labels: {app: files}}
spec:
  command: [python3, -m, http.server]
  args: ["$(PORT)", --bind, "$(BIND)", --directory, "$(SITE)"]
  env:
    - {name: BIND, value: 127.0.0.1}
    - {name: SITE, value: "$(BIND_DIR)"}
    - {name: BIND_DIR, value: ignored-it-comes-later}
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 0.2}
---
apiVersion: v1
kind: Service
metadata: {name: files}
spec:
  selector: {app: files}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: files}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: files}
spec:
  hosts: ["*"]
  gateways: [files]
  http:
    - route: [{destination: {host: files, port: {number: 8080}}}]
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Up]:
    # SITE expands to the literal "$(BIND_DIR)" (defined after it), a directory name.
    served = {"$(BIND_DIR)/index.html": "served through the mesh"}
    with from_yaml(tmp_path, MESH, files=served, ready="the files instance ready") as up:
        yield up


def test_args_reach_the_app_expanded(mesh: Up) -> None:
    agent = json.loads((mesh.state.instances / "files-0.default" / "agent.json").read_text())
    port = agent["proxy"]["inbound"][0]["app_port"]
    assert agent["app"]["command"][3] == "$(PORT)"  # kept as written; the agent expands it
    row = mesh.instances()["files-0"]
    assert row["ready"]
    argv = psutil.Process(row["pid"]).cmdline()
    assert argv[-5:] == [str(port), "--bind", "127.0.0.1", "--directory", "$(BIND_DIR)"]
    gateway = mesh.info().gateway_urls[0]
    assert get(gateway) == "served through the mesh"
