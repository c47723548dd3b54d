"""Variables from ConfigMaps and Secrets (`valueFrom`), under the real `ami up`: the
app gets the values (taken as they are, no `$(VAR)` expanded in them), the API shows
the references and never a Secret's value, a Knative Service's revision reads them
too, and a Workload whose key is missing does not run until the key is applied, with
`ami analyze` saying why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshes import apply, from_yaml
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# Writes the variables it was given to a file named after its instance, then serves.
APP = """
import json, os, sys
from http.server import HTTPServer, SimpleHTTPRequestHandler
names = ["TOKEN", "MODE", "EXTRA", "PLAIN"]
seen = {n: os.environ.get(n) for n in names}
with open(os.path.join(sys.argv[1], os.environ["AMI_INSTANCE"] + ".json"), "w") as f:
    json.dump(seen, f)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), SimpleHTTPRequestHandler).serve_forever()
"""

SECRET_VALUE = "s3cr$(PORT)et"

MESH = f"""
apiVersion: v1
kind: Secret
metadata: {{name: api}}
stringData: {{token: "{SECRET_VALUE}"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast}}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: api, labels: {{app: api}}}}
spec:
  command: [python3, app.py, OUT]
  env:
  - {{name: PLAIN, value: "$(MODE)-plain"}}
  - name: TOKEN
    valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
  - name: MODE
    valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}
  - name: EXTRA
    valueFrom: {{configMapKeyRef: {{name: settings, key: extra, optional: true}}}}
  ports: [{{name: http, port: 8080}}]
  readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 0.2}}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: waits, labels: {{app: waits}}}}
spec:
  command: [python3, app.py, OUT]
  env:
  - name: TOKEN
    valueFrom: {{secretKeyRef: {{name: later, key: token}}}}
  ports: [{{name: http, port: 8080}}]
  readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 0.2}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello}}
spec:
  template:
    spec:
      containers:
      - image: example.com/hello
        command: [python3, app.py, OUT]
        env:
        - name: TOKEN
          valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path]]:
    root = tmp_path_factory.mktemp("env-from")
    out = root / "out"
    out.mkdir()
    text = MESH.replace("OUT", str(out))
    with from_yaml(root, text, files={"app.py": APP}, ready=None) as up:
        yield up, out


def seen(out: Path, instance: str) -> dict[str, str | None]:
    path = out / f"{instance}.json"
    found: dict[str, str | None] = until(
        lambda: json.loads(path.read_text()) if path.exists() else None,
        f"{instance} started",
        timeout=120,
    )
    return found


def test_the_app_gets_the_values_as_they_are(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert seen(out, "api-0") == {
        "TOKEN": SECRET_VALUE,  # not expanded
        "MODE": "fast",
        "EXTRA": None,  # optional, not there: left out
        "PLAIN": "$(MODE)-plain",  # MODE comes later in the list: kept as written
    }
    assert seen(out, "hello-00001-0")["TOKEN"] == SECRET_VALUE


def test_the_api_shows_the_references_never_the_secret(mesh: tuple[Up, Path]) -> None:
    up, _ = mesh
    with up.client() as c:
        listed = c.get("/api/v1/resources", params={"kind": "Workload"})
    assert listed.status_code == 200
    assert SECRET_VALUE not in listed.text
    (api,) = [r for r in listed.json()["items"] if r["metadata"]["name"] == "api"]
    token = next(e for e in api["spec"]["env"] if e["name"] == "TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "api", "key": "token"}
    assert not token.get("value")


def test_a_missing_key_keeps_the_workload_from_running_until_it_is_there(
    mesh: tuple[Up, Path],
) -> None:
    up, out = mesh
    seen(out, "api-0")  # the mesh runs
    assert "waits-0" not in up.instances()
    with up.client() as c:
        findings = c.get("/api/v1/analyze").json()["findings"]
    (finding,) = [f for f in findings if f["code"] == "AMI0801"]
    assert finding["resource"] == "Workload/default/waits"
    assert finding["field"] == "spec.env[0].valueFrom.secretKeyRef"
    assert 'no Secret "later"' in finding["message"]
    apply(up, 'apiVersion: v1\nkind: Secret\nmetadata: {name: later}\nstringData: {token: "t"}\n')
    assert seen(out, "waits-0")["TOKEN"] == "t"
