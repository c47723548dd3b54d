"""`ami analyze PATH` offline sees what the control plane derives from the files (an
EventListener's Service, a Knative route), so a route to one is not a finding, while
a route to a host nobody makes still is."""

from pathlib import Path

from amimesh.cli.cmd_analyze import analyze_paths

MESH = """
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {name: ci}
spec:
  triggers: []
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers: [{image: example.com/hello, command: [python3, app.py]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: [front.example.com]
  gateways: [front]
  http:
  - match: [{uri: {prefix: /hooks}}]
    route: [{destination: {host: el-ci}}]
  - match: [{uri: {prefix: /hello}}]
    route: [{destination: {host: hello}}]
  - route: [{destination: {host: nowhere}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def test_derived_hosts_are_known_and_unknown_ones_still_reported(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(MESH)
    findings, errors = analyze_paths([tmp_path])
    assert errors == []
    unknown = [f["message"] for f in findings if f["code"] == "AMI0101"]
    assert len(unknown) == 1 and '"nowhere"' in unknown[0], findings
    assert all(f["source"] == str(tmp_path / "mesh.yaml") for f in findings), findings
