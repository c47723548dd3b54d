"""An Argo CD Application under `ami up`: the mesh serves what a git repository holds,
through the gateway and real Envoys; a new commit changes routing; `ami app` reports
it Synced and Healthy; a broken commit leaves the last good routes serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.meshes import from_yaml, through_gateway
from tests.e2e.test_runtime import until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

APP = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else os.environ["COLOR"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

COLORS = "\n---\n".join(
    f"""\
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: {c}, labels: {{app: {c}}}}}
spec:
  command: [{sys.executable}, app.py]
  env: [{{name: COLOR, value: {c}}}]
  ports: [{{name: http, port: 8080}}]
  readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 0.5}}
---
apiVersion: v1
kind: Service
metadata: {{name: {c}}}
spec: {{selector: {{app: {c}}}, ports: [{{name: http, port: 8080}}]}}"""
    for c in ("blue", "green")
)


def route(to: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: front}}
spec:
  hosts: ["*"]
  gateways: [front]
  http: [{{route: [{{destination: {{host: {to}, port: {{number: 8080}}}}}}]}}]
"""


GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_an_application_serves_and_follows_its_repository(tmp_path: Path) -> None:
    repo = tmp_path / "manifests"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"deploy/colors.yaml": COLORS, "deploy/route.yaml": route("blue")}, "blue")
    application = f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: colors}}
spec:
  source: {{repoURL: "file://{repo}", path: deploy}}
  destination: {{namespace: default}}
  syncPolicy: {{automated: {{prune: true, selfHeal: true}}}}
"""
    mesh = GATEWAY + "---\n" + application
    with from_yaml(tmp_path, mesh, files={"app.py": APP}, ready=None) as up:
        # Generous deadlines: the mesh starts, then git, then two workloads, on a busy machine.
        until(
            lambda: through_gateway(up, "colors").text == "blue",
            "blue through the gateway",
            timeout=90,
        )

        second = commit(repo, {"deploy/route.yaml": route("green")}, "green")
        until(
            lambda: through_gateway(up, "colors").text == "green",
            "the new commit's route",
            timeout=60,
        )

        def app_status() -> dict[str, object] | None:
            with up.client() as c:
                item = c.get("/api/v1/gitops/applications/default/colors").json()
            st = item["status"]
            done = st["sync"]["revision"] == second and st["health"]["status"] == "Healthy"
            return st if done and st["sync"]["status"] == "Synced" else None

        st = until(app_status, "Synced and Healthy", timeout=60)
        assert [h["revision"] for h in st["history"]][-1] == second  # type: ignore[index]

        out = subprocess.run(
            [sys.executable, "-m", "amimesh.cli.main", "app", "list", "-o", "json"],
            env={**os.environ, "AMI_STATE_DIR": str(up.state_root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert json.loads(out)["items"][0]["status"]["sync"]["status"] == "Synced"

        bad = commit(repo, {"deploy/route.yaml": route("green").replace("hosts", "hostz")}, "x")

        def reported() -> str | None:
            with up.client() as c:
                item = c.get("/api/v1/gitops/applications/default/colors").json()
            conditions = item["status"].get("conditions") or []
            return conditions[0]["message"] if conditions else None

        message = until(reported, "the broken commit reported", timeout=60)
        assert f"{bad[:7]}:deploy/route.yaml" in message and "spec.hostz" in message
        assert through_gateway(up, "colors").text == "green"
