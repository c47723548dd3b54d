"""Knative Serving's black-box conformance tests, re-expressed with a small Python app
in place of Knative's Go test images (docs/knative-serving.md lists each conformance
test and where Ami runs it, or why it does not apply to processes):

- runtime: the environment (`PORT`, `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`),
  `workingDir`, `command`/`args` with `$(VAR)` expanded, the headers the runtime
  contract asks for (`TestMustHaveHeadersSet`, `TestShouldHaveHeadersSet`) and a
  readiness probe that holds a revision back until it answers;
- api: a revision named by the template (`TestServiceBYOName`), metadata updates that
  make no new revision (`TestServiceUpdateMetadata`-style), and a container with
  nothing to run reported on the revision (`TestContainerErrorMsg`'s role)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.meshes import apply, from_yaml
from tests.e2e.test_knative_serving import condition, kservice, ready_at
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

APP = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz" and not os.path.exists("ready-flag"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({
            "env": {k: v for k, v in os.environ.items() if k == "PORT" or k.startswith("K_")},
            "cwd": os.getcwd(),
            "argv": sys.argv[1:],
            "host": self.headers.get("Host"),
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def service(name: str, *, template_name: str = "", labels: str = "{}") -> str:
    named = f"name: {template_name}, " if template_name else ""
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default, labels: {labels}}}
spec:
  template:
    metadata: {{{named}annotations: {{autoscaling.knative.dev/min-scale: "1"}}}}
    spec:
      containers:
        - image: example.com/runtime:latest
          command: [python3]
          args: [app.py, "$(GREETING)", "$$(GREETING)"]
          workingDir: apps
          env: [{{name: GREETING, value: hello}}]
          readinessProbe: {{httpGet: {{path: /healthz}}, periodSeconds: 1}}
"""


MESH = (
    """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---"""
    + service("runtime")
    + "---"
    + service("byo", template_name="byo-first")
    + """---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: imageonly, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: example.com/nothing-mapped:latest
"""
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("knative-conformance")
    files = {"apps/app.py": APP}
    with from_yaml(root, MESH, files=files, ready=None) as up:
        yield up


def runtime_info(up: Up, host: str, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    """What the app saw of a request through the gateway (None until it answers)."""
    url = up.info().gateway_urls[0] + "/"
    extra = {"Host": host, **(headers or {})}
    resp = httpx.get(url, headers=extra, timeout=10, trust_env=False)
    return dict(json.loads(resp.text)) if resp.status_code == 200 else None


def probe_passes(up: Up) -> None:
    """The app's readiness probe answers from now on; every revision Ready."""
    (up.config_dir / "apps" / "ready-flag").touch()
    until(lambda: ready_at(up, "runtime", "runtime-00001"), "runtime Ready", 90)
    until(lambda: ready_at(up, "byo", "byo-first"), "byo Ready", 90)


def revisions_of(up: Up, service_name: str) -> list[str]:
    with up.client() as c:
        items = c.get("/api/v1/resources", params={"kind": "rev"}).json()["items"]
    return sorted(
        i["metadata"]["name"]
        for i in items
        if i["metadata"].get("labels", {}).get("serving.knative.dev/service") == service_name
    )


def test_a_readiness_probe_holds_the_revision_back_until_it_answers(mesh: Up) -> None:
    # The app answers its probe 503 until `ready-flag` exists in its working directory.
    if not (mesh.config_dir / "apps" / "ready-flag").exists():
        until(lambda: condition(kservice(mesh, "runtime"), "Ready") != "missing", "a status")
        assert condition(kservice(mesh, "runtime"), "Ready") != "True"
    probe_passes(mesh)


def test_the_runtime_contract_env_working_dir_and_args(mesh: Up) -> None:
    probe_passes(mesh)
    info = until(lambda: runtime_info(mesh, "runtime.default.example.com"), "an answer")
    env = info["env"]
    assert env["K_SERVICE"] == "runtime"
    assert env["K_CONFIGURATION"] == "runtime"
    assert env["K_REVISION"] == "runtime-00001"
    assert env["PORT"].isdigit()
    assert info["cwd"].endswith("/apps")
    assert info["argv"] == ["hello", "$(GREETING)"]


def test_the_headers_the_runtime_contract_asks_for(mesh: Up) -> None:
    probe_passes(mesh)
    info = until(
        lambda: runtime_info(mesh, "runtime.default.example.com", {"this-was-user-set": "a value"}),
        "an answer",
    )
    headers = info["headers"]
    assert info["host"]  # MUST: a host
    assert headers["this-was-user-set"] == "a value"  # SHOULD: user headers as they are
    assert re.fullmatch(r"https?", headers["x-forwarded-proto"])
    for address in headers["x-forwarded-for"].split(","):
        ipaddress.ip_address(address.strip())
    assert "for=" in headers["forwarded"].lower()
    # Trace context: Knative's test reads B3's headers; the mesh's tracer propagates
    # W3C's `traceparent` (a 128-bit trace id, a 64-bit span id), the same two ids.
    if "x-b3-traceid" in headers:
        assert re.fullmatch(r"[0-9a-f]{16}", headers["x-b3-spanid"])
        assert re.fullmatch(r"[0-9a-f]{16}|[0-9a-f]{32}", headers["x-b3-traceid"])
    else:
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", headers["traceparent"])


def test_a_revision_named_by_its_template(mesh: Up) -> None:
    probe_passes(mesh)
    assert revisions_of(mesh, "byo") == ["byo-first"]
    info = until(lambda: runtime_info(mesh, "byo.default.example.com"), "an answer")
    assert info["env"]["K_REVISION"] == "byo-first"


def test_metadata_updates_make_no_revision(mesh: Up) -> None:
    probe_passes(mesh)
    before = revisions_of(mesh, "runtime")
    apply(mesh, service("runtime", labels="{team: conformance}"))
    until(
        lambda: (
            kservice(mesh, "runtime")["metadata"].get("labels", {}).get("team") == "conformance"
        ),
        "the label applied",
    )
    assert revisions_of(mesh, "runtime") == before
    assert ready_at(mesh, "runtime", "runtime-00001")


def test_an_image_with_nothing_to_run_says_so_on_the_revision(mesh: Up) -> None:
    def reason() -> str:
        for c in kservice(mesh, "imageonly").get("status", {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "False":
                return f"{c.get('reason', '')}: {c.get('message', '')}"
        return ""

    text = until(reason, "imageonly not Ready with a reason")
    assert "ImageNotRunnable" in text or "image" in text.lower(), text
