"""`ami up` / `ami logs` / `ami down` as a user runs them: real agents, Envoys and apps.

One mesh runs for the whole module (web → api ×2 behind an ingress gateway, and a job);
a second mesh runs beside it for one test. Every process is accounted for: the tests
end with no descendant of `ami up` and no Envoy of ours left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from amimesh.runtime import state, supervisor
from tests.e2e.harness import free_port

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

AMI = [sys.executable, "-m", "amimesh.cli.main"]
T = TypeVar("T")

API_APP = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ["AMI_INSTANCE"]

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else f"api {NAME}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print(f"{NAME} listening", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

WEB_APP = r"""
import os, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:  # through HTTP_PROXY: the sidecar routes by Host
            with urllib.request.urlopen("http://api:8080/", timeout=5) as resp:
                body = b"web -> " + resp.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

WORKLOADS = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: api, labels: {app: api}}
spec:
  command: [python, apps/api.py]
  replicas: 2
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 0.5}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec:
  command: [python, web.py]
  workingDir: apps
  ports: [{name: http, port: 8080}]
  readinessProbe: {httpGet: {path: /health}}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: job, labels: {app: job}}
spec:
  command: [python, -c, "print('job done')"]
  restartPolicy: Never
"""

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
"""

INGRESS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: ["*"]
  gateways: [web]
  http:
    - route: [{destination: {host: %s, port: {number: 8080}}}]
"""


def until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll `check` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class Up:
    """One `ami up` child process and how to reach its mesh."""

    config_dir: Path
    state_root: Path
    proc: subprocess.Popen[bytes]
    output: Path

    @property
    def state(self) -> state.StateDir:
        return state.for_config(self.config_dir, self.state_root)

    def info(self) -> state.MeshInfo:
        return self.state.read_info()

    def client(self) -> httpx.Client:
        token = self.state.read_token()
        return httpx.Client(
            base_url=self.info().api,
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
            timeout=5,
        )

    def proxy(self, instance: str) -> dict[str, Any]:
        """The proxy section of `instance`'s config as the node agent wrote it (its
        Envoy's admin and outbound ports among them)."""
        config = json.loads((self.state.instances / instance / "agent.json").read_text())
        proxy: dict[str, Any] = config["proxy"]
        return proxy

    def instances(self) -> dict[str, dict[str, Any]]:
        with self.client() as c:
            resp = c.get("/api/v1/status")
            resp.raise_for_status()
            return {i["instance"]: i for i in resp.json()["instances"]}

    def settled(self) -> dict[str, dict[str, Any]] | None:
        """Every instance ready (or done) and every proxy in sync with that."""
        rows = self.instances()
        if not rows or not all(r["ready"] or r["state"] == "completed" for r in rows.values()):
            return None
        with self.client() as c:
            return rows if c.get("/api/v1/proxies").json()["synced"] else None

    def family(self) -> list[psutil.Process]:
        """`ami up` and every process under it (agents, Envoys, apps)."""
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def text(self) -> str:
        return self.output.read_text()


def start_up(config_dir: Path, state_root: Path, *args: str) -> Up:
    output = config_dir.parent / f"{config_dir.name}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [*AMI, "up", str(config_dir), "--state-dir", str(state_root), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    up = Up(config_dir, state_root, proc, output)
    until(lambda: up.state.info_file.exists() or proc.poll() is not None, "mesh.json")
    assert proc.poll() is None, up.text()
    return up


def kill_everything(up: Up, family: list[psutil.Process]) -> None:
    """The finalizer: whatever is still alive of a mesh is killed (its control plane,
    node agent and instances outlive `ami up` by design). `ami up` goes first: it
    restarts a control plane or node agent that dies, and one started again between two
    kills here would outlive the test."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(up.proc.pid, signal.SIGKILL)
    up.proc.kill()
    up.proc.wait(10)
    supervisor.kill_mesh(up.state)
    # Also whatever names the mesh's own state directory on its command line (other
    # meshes may share the state root): a mesh whose start failed half-way may have
    # recorded no pid yet. Looked for again until none is left.
    own = str(up.state.path)
    for _ in range(20):
        named = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(part == own or part.startswith(own + "/") for part in p.info["cmdline"] or ())
        ]
        for p in [*family, *up.family(), *named]:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        family = []
        if not named:
            return
        time.sleep(0.1)


@contextmanager
def running(
    config_dir: Path, state_root: Path, *args: str, ready: str | None = "every instance ready"
) -> Iterator[Up]:
    """`ami up` of `config_dir` with a free gateway port, once settled (`ready` names the
    wait in its timeout; None: no wait); everything of that mesh killed at the end."""
    up = start_up(config_dir, state_root, "--gateway-port", str(free_port()), *args)
    family: list[psutil.Process] = []
    try:
        if ready is not None:
            until(up.settled, ready)
        family = up.family()
        yield up
    finally:
        kill_everything(up, family)


def envoys_of(state_root: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(str(state_root) in part for part in cmd) and "envoy" in Path(cmd[0]).name:
            found.append(p)
    return found


def write_mesh(root: Path, *, upstream: str = "web") -> Path:
    (root / "mesh").mkdir(parents=True)
    (root / "apps").mkdir()
    (root / "tasks").mkdir()
    (root / "apps" / "api.py").write_text(API_APP)
    (root / "apps" / "web.py").write_text(WEB_APP)
    (root / "mesh" / "workloads.yaml").write_text(WORKLOADS)
    (root / "mesh" / "services.yaml").write_text(SERVICES)
    (root / "mesh" / "ingress.yaml").write_text(INGRESS % upstream)
    (root / "tasks" / "exercise.yaml").write_text("kind: [this is not config")
    return root


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("runtime")
    with running(write_mesh(base / "shop"), base / "state") as up:
        yield up


def get(url: str, proxy: str | None = None) -> str:
    with httpx.Client(proxy=proxy, trust_env=False, timeout=5) as c:
        resp = c.get(url)
        assert resp.status_code == 200, resp.text
        return resp.text


def test_up_reports_the_mesh(mesh: Up) -> None:
    info = mesh.info()
    assert info.pid == mesh.proc.pid
    assert Path(info.config_dir) == mesh.config_dir.resolve()
    assert len(info.gateway_urls) == 1
    assert stat.S_IMODE(mesh.state.token_file.stat().st_mode) == 0o600
    assert (mesh.state_root / state.CURRENT).resolve() == mesh.state.path.resolve()
    rows = mesh.instances()
    assert sorted(rows) == ["api-0", "api-1", "istio-ingressgateway-0", "job-0", "web-0"]
    assert rows["job-0"]["state"] == "completed"
    with mesh.client() as c:
        assert c.get("/api/v1/status").json()["config_errors"] == []  # tasks/ left out
    printed = until(lambda: "Try:" in mesh.text() and mesh.text(), "the summary")
    assert info.gateway_urls[0] in printed
    assert str(mesh.state.path) in printed
    assert "ami logs api -f" in printed  # a workload of the user's, not the gateway


def test_requests_cross_the_gateway_and_both_sidecars(mesh: Up) -> None:
    gateway = mesh.info().gateway_urls[0]
    answers = {get(gateway) for _ in range(12)}
    assert answers == {"web -> api api-0", "web -> api api-1"}
    # The web instance's own sidecar, as its app uses it (HTTP_PROXY).
    agent = json.loads((mesh.state.instances / "web-0.default" / "agent.json").read_text())
    outbound = f"http://127.0.0.1:{agent['proxy']['outbound_port']}"
    assert get("http://api:8080/", proxy=outbound).startswith("api api-")


def test_a_killed_app_is_restarted(mesh: Up) -> None:
    before = mesh.instances()["api-0"]
    assert before["restarts"] == 0
    os.kill(before["pid"], signal.SIGKILL)
    after = until(
        lambda: (r := mesh.instances()["api-0"])["restarts"] == 1 and r["ready"] and r,
        "api-0 restarted",
    )
    assert after["pid"] != before["pid"]
    gateway = mesh.info().gateway_urls[0]
    until(lambda: "web -> api api-0" in {get(gateway) for _ in range(6)}, "api-0 answering")
    assert "api-0 exited (code -9), restarting" in mesh.text()


def test_a_job_completes_and_its_sidecar_ends(mesh: Up) -> None:
    assert mesh.instances()["job-0"]["state"] == "completed"
    config = str(mesh.state.instances / "job-0.default")
    assert not [p for p in envoys_of(mesh.state_root) if config in " ".join(p.cmdline())]
    assert len(envoys_of(mesh.state_root)) == 4  # web, api ×2, gateway


def test_logs_of_a_workload_and_an_instance(mesh: Up) -> None:
    def logs(*args: str) -> str:
        done = subprocess.run(
            [*AMI, "logs", *args, "--state-dir", str(mesh.state_root)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert logs("job") == "job done\n"
    api = logs("api").splitlines()
    assert "api-0 | api-0 listening" in api and "api-1 | api-1 listening" in api
    assert logs("api-1") == "api-1 listening\n"
    assert logs("api-1.default", "--envoy") is not None
    missing = subprocess.run(
        [*AMI, "logs", "nope", "--state-dir", str(mesh.state_root)], capture_output=True
    )
    assert missing.returncode == 1


EXTRA = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: extra, labels: {app: extra}}
spec:
  command: [python, apps/api.py]
  replicas: %d
  ports: [{name: http, port: 8080}]
"""


def test_workload_changes_are_applied_live(mesh: Up) -> None:
    path = mesh.config_dir / "mesh" / "extra.yaml"
    path.write_text(EXTRA % 2)
    try:
        rows = until(
            lambda: (
                (r := mesh.instances()).get("extra-1", {}).get("ready")
                and r.get("extra-0", {}).get("ready")
                and r
            ),
            "two extra replicas",
        )
        path.write_text(EXTRA % 1)  # scaling down keeps replica 0 as it is
        until(lambda: "extra-1" not in mesh.instances(), "extra-1 gone")
        assert mesh.instances()["extra-0"]["pid"] == rows["extra-0"]["pid"]
    finally:
        path.unlink()
    until(lambda: "extra-0" not in mesh.instances(), "extra-0 gone")
    until(lambda: "extra-0 stopped" in mesh.text(), "extra-0 stopped")
    assert "extra-1 stopped" in mesh.text()
    assert len(envoys_of(mesh.state_root)) == 4


def test_a_second_mesh_runs_beside_the_first(mesh: Up, tmp_path: Path) -> None:
    other = start_up(write_mesh(tmp_path / "other", upstream="api"), mesh.state_root)
    family: list[psutil.Process] = []
    try:
        until(other.settled, "the second mesh ready")
        family = other.family()
        assert other.state.path != mesh.state.path
        assert other.info().gateway_urls != mesh.info().gateway_urls
        assert get(other.info().gateway_urls[0]).startswith("api api-")
        assert get(mesh.info().gateway_urls[0]).startswith("web -> api")
        down = subprocess.run(
            [*AMI, "down", other.state.path.name, "--state-dir", str(mesh.state_root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert down.returncode == 0, down.stderr
        assert other.proc.wait(10) == 0
        assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not other.state.info_file.exists()
        assert get(mesh.info().gateway_urls[0]).startswith("web -> api")  # untouched
    finally:
        kill_everything(other, family)


def test_down_leaves_no_process_behind(mesh: Up) -> None:
    family = mesh.family()
    assert len(family) == 10  # ami up, its control plane and node agent, 4 Envoys, 3 apps
    down = subprocess.run(
        [*AMI, "down", "--state-dir", str(mesh.state_root), str(mesh.config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert mesh.proc.wait(10) == 0
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert envoys_of(mesh.state_root) == []
    assert not mesh.state.info_file.exists()
    assert "Stopped." in mesh.text()
