"""GitOps under `ami up`: a commit until the gateway answers with it (one JSON line per
figure).

    .venv/bin/python bench/gitops.py [--quick]

Every round changes one route's response header (`x-round`, a VirtualService's
`headers.response.set`) in front of the same workload, and times the change until a
request through the gateway carries it (the gateway polled every 2 ms). The mesh runs
with Ami's defaults (`--gitops-poll` 3 s: the poll interval is printed beside each
figure).

- `commit_to_serving_ms_p50`, `_p99`: `git commit` of the route's file in a local
  repository an Application (automated sync) reads, until it answers. Ami's defaults:
  the repository's refs are watched, so the commit needs no webhook and no poll.
- `webhook_commit_to_serving_ms_p50`, `_p99`: the same, in a repository whose refs are
  not watched (its `.git` is a file: `git init --separate-git-dir`), with GitHub's
  push webhook posted to the control plane's `/api/webhook` right after the commit.
- `poll_commit_to_serving_ms_p50`, `_p99`: that repository again, with no webhook:
  the next poll brings it in (what every repository got before the watch).
- Baselines in the same run: `file_to_serving_ms_p50`, `_p99` (the same
  VirtualService change written into a file of `ami up`'s watched directory) and
  `apply_to_serving_ms_p50`, `_p99` (`ami apply`'s API call).

`reload_to_serving_ms_p50` (live reload) is not measured: live reload is not built.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from common import pct

sys.path.insert(0, str(Path(__file__).parent))
from process_model import Mesh, wait  # noqa: E402

POLL_S = 3.0  # `ami up`'s default --gitops-poll
APP = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "gitops", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def route(name: str, mark: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}.bench]
  gateways: [front]
  http:
  - route: [{{destination: {{host: web, port: {{number: 8080}}}}}}]
    headers: {{response: {{set: {{x-round: "{mark}"}}}}}}
"""


def application(name: str, repo: Path) -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}}}
spec:
  source: {{repoURL: "file://{repo}", path: deploy}}
  destination: {{namespace: default}}
  syncPolicy: {{automated: {{prune: true}}}}
"""


def mesh_yaml(watched: Path, hooked: Path, mark: str = "0") -> str:
    return "---\n".join(
        [
            f"""\
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: web, labels: {{app: web}}}}
spec:
  command: [{sys.executable}, {watched.parent / "app.py"}]
  ports: [{{name: http, port: 8080}}]
""",
            """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 8080}]}
""",
            """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
""",
            application("watched", watched),
            application("hooked", hooked),
            route("file", mark),
        ]
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(path: Path, name: str, *, separate: Path | None = None) -> None:
    path.mkdir(parents=True)
    if separate is None:
        git(path, "init", "-q", "-b", "main")
    else:  # `.git` is a file naming the git directory: the refs watch leaves it alone
        git(path, "init", "-q", "-b", "main", f"--separate-git-dir={separate}")
    (path / "deploy").mkdir()
    (path / "deploy" / "route.yaml").write_text(route(name, "0"))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")


class Probe:
    """The gateway's answer for a host, polled until it carries a round's mark."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.http = httpx.Client(trust_env=False, timeout=10)

    def mark(self, host: str) -> str | None:
        try:
            resp = self.http.get(self.gateway, headers={"Host": f"{host}.bench"})
        except httpx.HTTPError:
            return None
        return resp.headers.get("x-round") if resp.status_code == 200 else None

    def is_marked(self, host: str, mark: str) -> bool:
        return self.mark(host) == mark

    def timed(self, host: str, mark: str, change: Callable[[], None]) -> float:
        """Milliseconds from the start of `change()` until `host` answers with `mark`."""
        t0 = time.perf_counter()
        change()
        wait(functools.partial(self.is_marked, host, mark), 60, 0.002)
        return (time.perf_counter() - t0) * 1000


def commit_route(repo: Path, name: str, mark: str) -> Callable[[], None]:
    (repo / "deploy" / "route.yaml").write_text(route(name, mark))
    git(repo, "add", "-A")
    return lambda: git(repo, "commit", "-q", "-m", f"round {mark}")


def run(work: Path, rounds: int, poll_rounds: int, keep: bool = False) -> None:
    watched, hooked = work / "repos" / "watched", work / "repos" / "hooked"
    make_repo(watched, "watched")
    make_repo(hooked, "hooked", separate=work / "repos" / "hooked.git")
    (work / "repos" / "app.py").write_text(APP)
    mesh = Mesh(work, mesh_yaml(watched, hooked))
    figures: dict[str, list[float]] = {}
    try:
        probe = Probe(mesh.info()["gateway_urls"][0])
        for host in ("watched", "hooked", "file"):
            try:
                wait(functools.partial(probe.is_marked, host, "0"), 120, 0.1)
            except TimeoutError:
                raise SystemExit(f"{host}.bench never answered: {mesh.state}") from None
        push_url = mesh.info()["api"].rstrip("/") + "/api/webhook"
        push = json.dumps(
            {"ref": "refs/heads/main", "repository": {"clone_url": f"file://{hooked}"}}
        ).encode()

        def webhook(commit: Callable[[], None]) -> Callable[[], None]:
            def both() -> None:
                commit()
                resp = mesh.http.post(push_url, content=push, headers={"X-GitHub-Event": "push"})
                if resp.status_code != 200 or resp.json()["refreshed"] != ["default/hooked"]:
                    raise SystemExit(f"webhook: {resp.status_code} {resp.text}")

            return both

        def apply(mark: str) -> Callable[[], None]:
            def post() -> None:
                resp = mesh.http.post("/api/v1/apply", content=route("applied", mark))
                if resp.status_code != 200:
                    raise SystemExit(f"apply: {resp.status_code} {resp.text}")

            return post

        def write(mark: str) -> Callable[[], None]:
            return lambda: (mesh.config / "mesh.yaml").write_text(mesh_yaml(watched, hooked, mark))

        for i in range(1, rounds + 1):
            mark = str(i)
            for figure, host, change in (
                ("commit_to_serving_ms", "watched", commit_route(watched, "watched", mark)),
                (
                    "webhook_commit_to_serving_ms",
                    "hooked",
                    webhook(commit_route(hooked, "hooked", mark)),
                ),
                ("file_to_serving_ms", "file", write(mark)),
                ("apply_to_serving_ms", "applied", apply(mark)),
            ):
                # A change comes at any moment, not in step with the watch's ticks.
                time.sleep(random.uniform(0, 0.25))
                figures.setdefault(figure, []).append(probe.timed(host, mark, change))
        for i in range(rounds + 1, rounds + 1 + poll_rounds):
            mark = str(i)
            change = commit_route(hooked, "hooked", mark)
            time.sleep(random.uniform(0, POLL_S))  # ... nor with the polls
            figures.setdefault("poll_commit_to_serving_ms", []).append(
                probe.timed("hooked", mark, change)
            )
    finally:
        if not keep:
            mesh.close()
    for figure, values in figures.items():
        extra = {"rounds": len(values), "gitops_poll_s": POLL_S}
        emit(f"{figure}_p50", statistics.median(values), "ms", **extra)
        emit(f"{figure}_p99", pct(values, 0.99), "ms", **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (well under 2 minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ami-bench-gitops-") as work:
        run(Path(work), 8 if args.quick else 40, 4 if args.quick else 15)


if __name__ == "__main__":
    main()
