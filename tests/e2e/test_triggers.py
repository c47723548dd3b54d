"""Tekton Triggers under `ami up`: an EventListener is a mesh service (`el-NAME`, its
listener process behind a sidecar, routed by the gateway). A correctly signed GitHub
push through the gateway starts a PipelineRun with params from the body, run by the
node agent to success; a wrong signature, a wrong event type and a CEL filter that
does not match start nothing, and the answer says why."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_runtime import AMI, Up, running, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SECRET = "s3cr3t-webhook-token"

MESH = f"""
apiVersion: v1
kind: Secret
metadata: {{name: github-webhook}}
stringData: {{token: {SECRET}}}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {{name: build}}
spec:
  params: [{{name: revision}}, {{name: repo}}]
  results: [{{name: built, value: "$(tasks.build.results.built)"}}]
  tasks:
  - name: build
    params:
    - {{name: revision, value: "$(params.revision)"}}
    - {{name: repo, value: "$(params.repo)"}}
    taskSpec:
      params: [{{name: revision}}, {{name: repo}}]
      results: [{{name: built}}]
      steps:
      - name: build
        image: alpine
        script: |
          printf '%s@%s' "$(params.repo)" "$(params.revision)" > $(results.built.path)
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerBinding
metadata: {{name: push}}
spec:
  params:
  - {{name: revision, value: $(body.head_commit.id)}}
  - {{name: repo, value: $(body.repository.name)}}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerTemplate
metadata: {{name: build}}
spec:
  params: [{{name: revision}}, {{name: repo, default: unknown}}]
  resourcetemplates:
  - apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {{generateName: build-}}
    spec:
      pipelineRef: {{name: build}}
      params:
      - {{name: revision, value: $(tt.params.revision)}}
      - {{name: repo, value: $(tt.params.repo)}}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {{name: github}}
spec:
  serviceAccountName: tekton-triggers
  triggers:
  - name: push-to-main
    interceptors:
    - ref: {{name: github}}
      params:
      - name: secretRef
        value: {{secretName: github-webhook, secretKey: token}}
      - name: eventTypes
        value: [push]
    - ref: {{name: cel}}
      params:
      - name: filter
        value: body.ref == 'refs/heads/main'
    bindings: [{{ref: push}}]
    template: {{ref: build}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: hooks}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8080, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: hooks}}
spec:
  hosts: ["*"]
  gateways: [hooks]
  http:
  - route: [{{destination: {{host: el-github, port: {{number: 8080}}}}}}]
"""


def push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "head_commit": {"id": "0123abcd"},
            "repository": {"name": "shop", "url": "https://example.com/shop"},
        }
    ).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(up: Up, body: bytes, headers: dict[str, str]) -> httpx.Response:
    gateway = up.info().gateway_urls[0]
    with httpx.Client(trust_env=False, timeout=10) as c:
        return c.post(
            gateway, content=body, headers={"Content-Type": "application/json", **headers}
        )


def pipelineruns(up: Up) -> list[dict[str, Any]]:
    with up.client() as c:
        resp = c.get("/api/v1/resources", params={"kind": "PipelineRun"})
        resp.raise_for_status()
        return list(resp.json()["items"])


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("triggers")
    (base / "ci" / "mesh").mkdir(parents=True)
    (base / "ci" / "mesh" / "ci.yaml").write_text(MESH)
    with running(base / "ci", base / "state") as up:
        yield up


def test_a_signed_push_starts_a_pipelinerun_that_succeeds(mesh: Up) -> None:
    body = push()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body)}

    def accepted() -> httpx.Response | None:
        resp = send(mesh, body, headers)
        return resp if resp.status_code == 202 else None

    resp = until(accepted, "the listener through the gateway")
    answer = resp.json()
    assert answer["eventListener"] == "github" and answer["namespace"] == "default"
    assert answer["eventListenerUID"] and answer["eventID"]
    assert "errorMessage" not in answer
    runs = [r for r in pipelineruns(mesh) if r["metadata"]["name"].startswith("build-")]
    assert len(runs) == 1
    run = runs[0]
    labels = run["metadata"]["labels"]
    assert labels["triggers.tekton.dev/eventlistener"] == "github"
    assert labels["triggers.tekton.dev/triggers-eventid"] == answer["eventID"]
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert params == {"revision": "0123abcd", "repo": "shop"}

    def done() -> dict[str, Any] | None:
        with mesh.client() as c:
            items = c.get(
                "/api/v1/pipelines/runs",
                params={"kind": "PipelineRun", "name": run["metadata"]["name"]},
            ).json()["items"]
        conds = items[0]["status"].get("conditions", []) if items else []
        return items[0] if conds and conds[0].get("status") in ("True", "False") else None

    status = until(done, "the PipelineRun to finish", timeout=45)["status"]
    assert status["conditions"][0]["reason"] == "Succeeded", status
    assert status["results"] == [{"name": "built", "value": "shop@0123abcd"}]

    # `ami eventlistener list` shows it, available, with its URL.
    listed = subprocess.run(
        [*AMI, "eventlistener", "list", "--mesh", str(mesh.state.path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    assert "http://el-github.default.svc.cluster.local:8080" in listed.stdout
    assert "True" in listed.stdout
    described = subprocess.run(
        [*AMI, "eventlistener", "describe", "github", "--mesh", str(mesh.state.path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert described.returncode == 0, described.stderr
    row = next(line for line in described.stdout.splitlines() if "push-to-main" in line)
    words = row.split()
    assert words[words.index("push-to-main") + 1 :] == [
        "push",
        "(TriggerBinding)",
        "build",
        "github,",
        "cel",
    ]


@pytest.mark.parametrize(
    ("body", "headers", "why"),
    [
        (
            push(),
            {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(push(), "wrong")},
            "payload signature check failed",
        ),
        (push(), {"X-GitHub-Event": "push"}, "no X-Hub-Signature-256 header set"),
        (
            push(),
            {"X-GitHub-Event": "issues", "X-Hub-Signature-256": sign(push())},
            "event type issues is not allowed",
        ),
        (
            push("refs/heads/dev"),
            {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(push("refs/heads/dev"))},
            "did not return true",
        ),
    ],
    ids=["wrong-signature", "no-signature", "wrong-event-type", "cel-filter"],
)
def test_a_refused_webhook_starts_nothing(
    mesh: Up, body: bytes, headers: dict[str, str], why: str
) -> None:
    until(lambda: mesh.settled(), "the mesh settled")
    before = {r["metadata"]["name"] for r in pipelineruns(mesh)}
    resp = send(mesh, body, headers)
    assert resp.status_code == 202, resp.text
    assert why in resp.json()["errorMessage"]
    # Triggers run before the listener answers: whatever they made is in the store now.
    assert {r["metadata"]["name"] for r in pipelineruns(mesh)} == before


def test_the_listener_secret_is_never_shown(mesh: Up) -> None:
    with mesh.client() as c:
        items = c.get("/api/v1/resources", params={"kind": "secret"}).json()["items"]
    assert items[0]["stringData"] == {"token": "<redacted>"}
    assert SECRET not in json.dumps(items)
    logs = "".join(p.read_text(errors="replace") for p in Path(mesh.state.path).rglob("*.log"))
    assert SECRET not in logs
