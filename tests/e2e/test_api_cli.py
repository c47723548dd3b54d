"""`ami apply/get/delete/status/analyze/proxy-status/proxy-config` as a user runs them:
real processes against a real control plane's HTTP API, and a real Envoy."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from amimesh.agent.bootstrap import bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.model.proxy import Proxy
from amimesh.runtime.state import MeshInfo, StateDir
from tests.e2e.backend import Backend
from tests.e2e.harness import free_port

pytestmark = pytest.mark.envoy

AMI = [sys.executable, "-m", "amimesh.cli.main"]
TESTDATA = Path(__file__).parents[1] / "unit" / "testdata" / "analyze"
ECHO_CLUSTER = "outbound|80||echo.default.svc.cluster.local"

APP = """
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-1}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - route: [{destination: {host: echo}}]
"""

BROKEN = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - route:
        - destination: {host: echo}
          weight: -5
"""

MISROUTED = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - route: [{destination: {host: echo, subset: v2}}]
"""


@dataclass
class Running:
    cp: ControlPlane
    state: StateDir
    workdir: Path

    def ami(self, *args: str, mesh: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--mesh", str(self.state.path)] if mesh else []
        env = {**os.environ, "AMI_STATE_DIR": str(self.workdir / "no-state"), "COLUMNS": "200"}
        return subprocess.run(
            [*AMI, *args, *extra], capture_output=True, text=True, timeout=30, env=env
        )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A control plane with its API on its own loop in a thread, and a state dir for it."""
    workdir = tmp_path_factory.mktemp("api-cli")
    token = secrets.token_urlsafe(24)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = ControlPlaneConfig(debounce_s=0.02, api_port=0, api_token=token)

    async def start() -> ControlPlane:
        cp = ControlPlane(config)
        await cp.start()
        return cp

    cp = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    state = StateDir(workdir / "state").create()
    state.write_token(token)
    state.write_info(
        MeshInfo(
            name="api-cli",
            config_dir=str(workdir),
            pid=os.getpid(),
            api=f"http://127.0.0.1:{cp.api_port}",
            xds_port=cp.xds_port,
        )
    )
    try:
        yield Running(cp, state, workdir)
    finally:
        asyncio.run_coroutine_threadsafe(cp.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend("echo-1").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def envoy(running: Running, tmp_path: Path) -> Iterator[Proxy]:
    """A real Envoy (a client sidecar) connected to the control plane by ADS."""
    proxy = Proxy(id="client.default", workload="client", outbound_port=free_port())
    admin = free_port()
    cfg = bootstrap(proxy, xds_host="127.0.0.1", xds_port=running.cp.xds_port, admin_port=admin)
    path = tmp_path / "client.json"
    path.write_text(json.dumps(cfg))
    process = EnvoyProcess(path, admin, tmp_path / "client.log")
    process.start()
    try:
        process.wait_ready()
        yield proxy
    finally:
        process.stop()


def rows(out: str, first: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.split()[:1] == [first]]


def test_apply_get_sync_proxy_config_and_delete(
    running: Running, backend: Backend, envoy: Proxy
) -> None:
    app = running.workdir / "app.yaml"
    app.write_text(APP % backend.port)
    applied = running.ami("apply", "-f", str(app))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "Service/default/echo applied (created)",
        "WorkloadEntry/default/echo-1 applied (created)",
        "VirtualService/default/echo applied (created)",
    ]

    got = running.ami("get", "vs")
    assert got.returncode == 0, got.stderr
    assert rows(got.stdout, "echo") == [["echo", "echo", "mesh", "1", "api"]]
    as_yaml = running.ami("get", "svc", "echo", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["spec"]["ports"] == [{"name": "http", "port": 80}]

    # The real Envoy gets the new cluster and acknowledges everything.
    deadline = time.monotonic() + 15
    while True:
        status = running.ami("proxy-status")
        assert status.returncode == 0, status.stderr
        found = rows(status.stdout, "client.default")
        if found and found[0][3:7] == ["SYNCED"] * 4:
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.2)

    clusters = running.ami("proxy-config", "client", "clusters")
    assert clusters.returncode == 0, clusters.stderr
    assert rows(clusters.stdout, ECHO_CLUSTER) == [[ECHO_CLUSTER, "EDS", "1", "active", ANY]]
    endpoints = running.ami("proxy-config", "client.def", "endpoints")
    assert [ECHO_CLUSTER, f"127.0.0.1:{backend.port}", "HEALTHY", "1", "-"] in rows(
        endpoints.stdout, ECHO_CLUSTER
    )
    listeners = running.ami("proxy-config", "client", "listeners", "-o", "json")
    assert json.loads(listeners.stdout)["dynamic_listeners"]
    routes = running.ami("proxy-config", "client", "routes")
    assert "echo.default.svc.cluster.local" in routes.stdout
    missing = running.ami("proxy-config", "nobody", "clusters")
    assert missing.returncode == 1
    assert 'no proxy "nobody" (connected proxies: client.default)' in missing.stderr

    overview = running.ami("status")
    assert overview.returncode == 0, overview.stderr
    assert overview.stdout.startswith("3 resources, 0 instances, 1 proxies, 0 config errors")
    assert running.ami("analyze").returncode == 0

    # A broken file: exit 1, the file and field in the error, nothing changed.
    broken = running.workdir / "broken.yaml"
    broken.write_text(BROKEN)
    before = running.cp.store.version
    bad = running.ami("apply", "-f", str(app), "-f", str(broken))
    assert bad.returncode == 1
    assert (
        f"error: {broken}: document 1 (line 8): VirtualService/default/echo: "
        "spec.http[0].route[0].weight: must be at least 0, got -5"
    ) in bad.stderr
    assert "nothing applied" in bad.stderr
    assert running.cp.store.version == before
    assert (
        running.ami("get", "dr").stderr.strip()
        == 'No DestinationRule resources found in namespace "default".'
    )

    # A route to an undefined subset: the running mesh's analysis reports it.
    misrouted = running.workdir / "misrouted.yaml"
    misrouted.write_text(MISROUTED)
    assert running.ami("apply", "-f", str(misrouted)).stdout.strip() == (
        "VirtualService/default/echo applied (configured)"
    )
    analysis = running.ami("analyze")
    assert analysis.returncode == 1
    assert "Error [AMI0102] VirtualService/default/echo " in analysis.stdout

    deleted = running.ami("delete", "vs", "echo")
    assert (deleted.returncode, deleted.stdout.strip()) == (
        0,
        "VirtualService/default/echo deleted",
    )
    gone = running.ami("get", "virtualservices", "echo")
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'error: VirtualService "echo" not found in namespace "default"'
    rest = running.ami("delete", "-f", str(app))
    assert rest.returncode == 1
    assert rest.stdout.splitlines() == [
        "Service/default/echo deleted",
        "WorkloadEntry/default/echo-1 deleted",
    ]
    assert "error: VirtualService/default/echo not found" in rest.stderr
    assert running.cp.store.resources() == []


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


def test_analyze_offline_reports_every_code(running: Running) -> None:
    result = running.ami("analyze", str(TESTDATA), mesh=False)
    assert result.returncode == 1, result.stderr
    codes = {
        line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith(("Error", "Warning", "Info"))
    }
    numbers = (101, 102, 103, 104, 105, 106, 107, 108, 201, 202, 203, 301, 302, 303, 401, 402, 501)
    numbers += (601, 701, 801)
    assert codes == {f"[AMI0{n}]" for n in numbers}
    assert result.stdout.splitlines()[-1] == "13 errors, 11 warnings, 26 info"
    as_json = running.ami("analyze", str(TESTDATA / "clean.yaml"), "-o", "json", mesh=False)
    assert (as_json.returncode, json.loads(as_json.stdout)) == (0, {"findings": [], "errors": []})


def test_no_running_mesh_is_exit_2(running: Running) -> None:
    for args in (["status"], ["get", "vs"], ["proxy-status"], ["analyze"]):
        result = running.ami(*args, mesh=False)
        assert result.returncode == 2, args
        assert result.stderr.startswith("error: no mesh is running"), result.stderr
    wrong = running.ami("get", "frobs")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith('error: unknown kind "frobs"; known kinds: ')
