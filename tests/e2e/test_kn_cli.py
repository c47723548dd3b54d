"""`ami service|revision|route` as a user runs them, in kn's words, against a real mesh
(`ami up`, its node agent, Envoys and the gateway): create a Knative Service with
`--cmd`, see it Ready at its URL, update it with `--env` for a second revision, split
its traffic with `--traffic` and `--tag`, list its revisions, delete one, delete the
Service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshes import from_yaml, through_gateway
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

AMI = [sys.executable, "-m", "amimesh.cli.main"]

APP = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('TARGET')} {os.environ.get('K_REVISION')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

# The node agent starts the ingress gateway with the ports the config's Gateways have
# when it starts; this mesh has no Knative route yet, so a Gateway of its own opens
# port 80 for the Knative ingress gateway that the first route brings.
MESH = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: ["*"]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path]]:
    root = tmp_path_factory.mktemp("kn-cli")
    app = root / "app.py"
    app.write_text(APP)
    with from_yaml(root, MESH, ready=None) as up:  # nothing to wait for: no instance yet
        yield up, app


def ami(up: Up, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*AMI, *args, "--mesh", str(up.state.path)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def ok(up: Up, *args: str) -> str:
    done = ami(up, *args)
    assert done.returncode == 0, f"ami {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def answer(up: Up, host: str) -> str:
    """What the gateway answers for `host` (it starts with the first route)."""
    if not up.info().gateway_urls:
        return "no gateway yet"
    resp = through_gateway(up, host)
    return resp.text if resp.status_code == 200 else f"HTTP {resp.status_code}"


def rows(text: str) -> dict[str, list[str]]:
    """A table's rows by their first cell."""
    return {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}


def test_a_service_in_kn_s_words(mesh: tuple[Up, Path]) -> None:
    up, app = mesh
    out = ok(
        up,
        "service",
        "create",
        "hello",
        "--image",
        "example.com/hello",
        "--cmd",
        "python3",
        "--arg",
        "-u",  # a value with a dash, as kn takes it
        "--arg",
        str(app),
        "--arg",
        "$(PORT)",
        "--env",
        "TARGET=one",
        "--wait-timeout",
        "60",
    )
    assert "Ready to serve." in out
    assert out.endswith(
        "Service 'hello' created to latest revision 'hello-00001' is available at URL:\n"
        "http://hello.default.example.com\n"
    )
    listed = rows(ok(up, "service", "list"))
    assert listed["hello"][:3] == ["hello", "http://hello.default.example.com", "hello-00001"]
    assert listed["hello"][4:] == ["3", "OK", "/", "3", "True"]  # after the AGE
    until(lambda: answer(up, "hello.default.example.com") == "one hello-00001", "hello answers")

    # A new template: a second revision, which takes the traffic once ready.
    out = ok(up, "service", "update", "hello", "--env", "TARGET=two", "--wait-timeout", "60")
    assert "updated to latest revision 'hello-00002'" in out
    until(lambda: answer(up, "hello.default.example.com") == "two hello-00002", "hello-00002")

    # Half and half, the first revision tagged: its own host name.
    ok(
        up,
        "service",
        "update",
        "hello",
        "--traffic",
        "hello-00001=50",
        "--traffic",
        "@latest=50",
        "--tag",
        "hello-00001=old",
    )
    until(lambda: answer(up, "old-hello.default.example.com") == "one hello-00001", "the tag")

    def both() -> Counter[str]:
        seen = Counter(answer(up, "hello.default.example.com") for _ in range(40))
        return seen if set(seen) == {"one hello-00001", "two hello-00002"} else Counter()

    until(both, "both revisions answering")
    revisions = rows(ok(up, "revision", "list", "-s", "hello"))
    assert revisions["hello-00002"][:4] == ["hello-00002", "hello", "50%", "2"]  # no tag
    assert revisions["hello-00001"][:5] == ["hello-00001", "hello", "50%", "old", "1"]
    described = ok(up, "service", "describe", "hello")
    assert "@latest (hello-00002) [2]" in described and "hello-00001 #old [1]" in described
    assert rows(ok(up, "route", "list"))["hello"][1:] == [
        "http://hello.default.example.com",
        "True",
    ]

    # A revision a route needs is not deleted; an unknown Service is named.
    refused = ami(up, "revision", "delete", "hello-00001")
    assert refused.returncode == 1
    assert "referenced by the traffic of route hello" in refused.stderr
    unknown = ami(up, "service", "update", "nope", "--env", "A=b")
    assert unknown.returncode == 1
    assert 'Knative Service "nope" not found in namespace "default"' in unknown.stderr
    bad = ami(up, "service", "update", "hello", "--traffic", "hello-00001=70")
    assert bad.returncode == 2 and "add up to 70%" in bad.stderr

    # Once its traffic and tag are gone, it is.
    ok(up, "service", "update", "hello", "--untag", "old", "--traffic", "@latest=100")
    out = ok(up, "revision", "delete", "hello-00001")
    assert out == "Revision 'hello-00001' deleted in namespace 'default'.\n"
    assert list(rows(ok(up, "revision", "list"))) == ["hello-00002"]

    # Deleted: the Service, its revisions, and what ran them.
    out = ok(up, "service", "delete", "hello")
    assert "Service 'hello' successfully deleted in namespace 'default'." in out
    assert "No services found." in ami(up, "service", "list").stderr
    assert "No revisions found." in ami(up, "revision", "list").stderr
    until(
        lambda: not any(i.startswith("hello-") for i in up.instances()),
        "hello's instances gone",
    )
    until(lambda: answer(up, "hello.default.example.com") == "HTTP 404", "hello's route gone")
