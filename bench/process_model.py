"""The process model's figures, for bench/runtime.py (each beside its baseline).

- `platform_private_mb_per_instance` at 1, 11 and 50 instances: the node agent's
  private memory divided by the instances it runs, plus one Envoy's private memory
  (mean of the sidecars'), from /proc/PID/smaps_rollup at idle. Printed beside its
  parts (`node_agent_private_mb`, `envoy_private_mb`).
- `instance_ready_added_ms_p50`, `_p99`: a running workload is scaled up by one
  replica through the API; the time until the node agent marks the new instance
  ready, minus the time the same app, started directly, takes to its first good
  response (measured in the same run, `app_alone_ready_ms_p50`).
- `controlplane_restart_failed_requests`, `controlplane_restart_resync_s`,
  `node_agent_restart_failed_requests`, `node_agent_restart_readopt_s`: requests
  through the gateway while the control plane (then the node agent) is killed with
  SIGKILL; resync: from the kill until every proxy is connected and in sync again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

AMI = [sys.executable, "-m", "amimesh.cli.main"]
APP = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]


def smaps_private_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        if name == "Private_Dirty:":
            return float(value) / 1024
    raise ValueError(pid)


def workloads(replicas: int, *, ports: bool) -> str:
    port = "\n  ports: [{name: http, port: 8080}]" if ports else ""
    command = (
        '[sh, -c, "exec python3 -m http.server $PORT --bind 127.0.0.1"]'
        if ports
        else "[sleep, '3600']"
    )
    return f"""
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: app, labels: {{app: app}}}}
spec:
  command: {command}
  replicas: {replicas}{port}
---
apiVersion: v1
kind: Service
metadata: {{name: app}}
spec:
  selector: {{app: app}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: app}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{{route: [{{destination: {{host: app, port: {{number: 8080}}}}}}]}}]
"""


class Mesh:
    """`ami up` on a directory written here, with its own state dir."""

    def __init__(self, work: Path, text: str, *args: str) -> None:
        self.config = work / "mesh"
        self.config.mkdir(parents=True)
        (self.config / "mesh.yaml").write_text(text)
        self.state_root = work / "state"
        self.env = os.environ | {"AMI_STATE_DIR": str(self.state_root)}
        self.proc = subprocess.Popen(
            [*AMI, "up", str(self.config), "--gateway-port", str(free_port()), *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.state = wait(lambda: next(iter(self.state_root.glob("*/mesh.json")), None), 60).parent
        self.token = (self.state / "api-token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.info()["api"],
            headers={"Authorization": f"Bearer {self.token}"},
            trust_env=False,
            timeout=10,
        )

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.state / "mesh.json").read_text()))

    def status(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads((self.state / "status.json").read_text())["instances"])
        except (OSError, ValueError, KeyError):
            return []

    def node_pid(self) -> int:
        """The node agent that wrote status.json."""
        try:
            return int(json.loads((self.state / "status.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return 0

    def all_ready(self) -> bool:
        rows = self.status()
        return bool(rows) and all(r["ready"] for r in rows)

    def synced(self, proxies: int) -> bool:
        try:
            body = self.http.get("/api/v1/proxies").json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(body["synced"]) and len(body["proxies"]) == proxies

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Any, timeout: float, poll: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("condition not met")


def memory(work: Path, counts: tuple[int, ...]) -> dict[int, dict[str, float]]:
    out = {}
    for n in counts:
        mesh = Mesh(work / f"mem{n}", workloads(n, ports=False))
        try:
            wait(mesh.all_ready, 180, 0.1)
            time.sleep(2)  # idle
            rows = [r for r in mesh.status() if r["kind"] == "sidecar"]
            node = smaps_private_mb(mesh.info()["node_pid"])
            envoy = statistics.mean(smaps_private_mb(r["envoy_pid"]) for r in rows)
            instances = len(mesh.status())  # the gateway is an instance too
            out[n] = {
                "platform_private_mb_per_instance": node / instances + envoy,
                "node_agent_private_mb": node,
                "envoy_private_mb": envoy,
                "instances": instances,
            }
        finally:
            mesh.close()
    return out


def app_alone_ms() -> float:
    """The app of the scale-up test, started by hand, to its first good response."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*APP, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(trust_env=False, timeout=1) as c:

            def ok() -> bool:
                try:
                    return c.get(f"http://127.0.0.1:{port}/").status_code == 200
                except httpx.HTTPError:
                    return False

            wait(ok, 30)
        return (time.perf_counter() - t0) * 1000
    finally:
        proc.kill()
        proc.wait()


def scale_ups(work: Path, count: int) -> dict[str, float]:
    """Scale a running workload up one replica at a time: ms to ready, minus the app's."""
    mesh = Mesh(work / "scale", workloads(1, ports=True))
    added: list[float] = []
    alone: list[float] = []
    try:
        wait(mesh.all_ready, 120, 0.05)
        doc = workloads(1, ports=True).split("---")[0]
        for i in range(2, count + 2):
            alone.append(app_alone_ms())
            t0 = time.time()
            mesh.http.post("/api/v1/apply", content=doc.replace("replicas: 1", f"replicas: {i}"))
            name = f"app-{i - 1}"

            def ready_at(name: str = name) -> float | None:
                for r in mesh.status():
                    if r["instance"] == name and r["ready"]:
                        return float(r["since"])
                return None

            since = wait(ready_at, 60)
            added.append((since - t0) * 1000)
            time.sleep(0.3)
    finally:
        mesh.close()
    base = statistics.median(alone)
    diffs = sorted(a - base for a in added)
    return {
        "instance_ready_added_ms_p50": statistics.median(diffs),
        "instance_ready_added_ms_p99": diffs[min(len(diffs) - 1, int(len(diffs) * 0.99))],
        "instance_ready_ms_p50": statistics.median(added),
        "app_alone_ready_ms_p50": base,
    }


class Traffic(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ok = 0
        self.failed = 0
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as c:
            while not self.done.is_set():
                try:
                    self.ok += c.get(self.url).status_code == 200
                except httpx.HTTPError:
                    self.failed += 1
                time.sleep(0.005)


def restarts(work: Path) -> dict[str, float]:
    mesh = Mesh(work / "restart", workloads(2, ports=True))
    try:
        try:
            wait(mesh.all_ready, 120, 0.05)
        except TimeoutError:
            raise TimeoutError(f"not ready: {mesh.status()}") from None
        proxies = len(mesh.status())
        wait(lambda: mesh.synced(proxies), 60, 0.05)
        out: dict[str, float] = {}
        for who, figure in (("controlplane", "controlplane"), ("node", "node_agent")):
            traffic = Traffic(mesh.info()["gateway_urls"][0])
            traffic.start()
            wait(lambda t=traffic: t.ok > 20, 30)
            before = mesh.info()[f"{who}_pid"]
            t0 = time.monotonic()
            os.kill(before, signal.SIGKILL)
            wait(lambda b=before, w=who: mesh.info()[f"{w}_pid"] != b, 60, 0.01)
            if who == "controlplane":
                wait(lambda: mesh.synced(proxies), 60, 0.01)
                out["controlplane_restart_resync_s"] = time.monotonic() - t0
            else:
                # Every instance ready again as the new node agent reports it.
                wait(
                    lambda: mesh.node_pid() == mesh.info()["node_pid"] and mesh.all_ready(),
                    60,
                    0.01,
                )
                out["node_agent_restart_readopt_s"] = time.monotonic() - t0
            time.sleep(1)
            traffic.done.set()
            traffic.join()
            out[f"{figure}_restart_failed_requests"] = traffic.failed
            out[f"{figure}_restart_requests"] = traffic.ok + traffic.failed
        return out
    finally:
        mesh.close()
