"""Knative's `containerConcurrency` and `timeoutSeconds` in the data plane, end to end,
through the gateway: with `containerConcurrency: 1` the app never has two requests at
once, requests beyond it wait in the sidecar and succeed, and beyond the queue (10 ×
containerConcurrency) get a 503; `timeoutSeconds` bounds the whole request (a 504
before the response started, cut off after), `idleTimeoutSeconds` the time without a
byte from the app, as Knative's queue-proxy enforces them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshes import from_yaml, through_gateway
from tests.e2e.test_knative_serving import ready_at
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# /work and /hold answer 500 when the app has two of them at once (the readiness
# probe, which reaches the app directly as kubelet's does, is not counted).
APP = """
import os, pathlib, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
in_flight = 0

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/quick":
            time.sleep(0.1)
        elif self.path == "/slow-start":
            time.sleep(3)
        elif self.path == "/slow-body":
            body = b"the whole body"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(2)
            self.wfile.write(body)
            return
        elif self.path != "/healthz":
            return self.limited()
        self.answer(200, b"done")

    def limited(self):
        global in_flight
        with lock:
            in_flight += 1
            alone = in_flight == 1
        try:
            if not alone:
                return self.answer(500, b"two requests at once")
            if self.path == "/work":
                time.sleep(0.2)
            else:  # /hold/FILE
                release = pathlib.Path(self.path.removeprefix("/hold/"))
                deadline = time.monotonic() + 30
                while not release.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            self.answer(200, b"done")
        finally:
            with lock:
                in_flight -= 1

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def ksvc(name: str, spec: str, annotations: str = "{}") -> str:
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata: {{annotations: {annotations}}}
    spec:
      {spec}
      containers:
        - image: example.com/limits:latest
          command: [python3, app.py]
          workingDir: apps
          readinessProbe: {{httpGet: {{path: /healthz}}}}
"""


MESH = (
    """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---"""
    # Target burst capacity 0: once an instance is ready the activator leaves the path
    # (Knative's rule), so the sidecar's own queue is what is tested here; one
    # instance at most, whatever the autoscaler would make of the load.
    + ksvc(
        "one-at-a-time",
        "containerConcurrency: 1",
        '{autoscaling.knative.dev/target-burst-capacity: "0", '
        'autoscaling.knative.dev/max-scale: "1"}',
    )
    + "---"
    + ksvc("quick", "timeoutSeconds: 1", '{autoscaling.knative.dev/target-burst-capacity: "0"}')
    + "---"
    + ksvc(
        "idle",
        "timeoutSeconds: 60\n      idleTimeoutSeconds: 1",
        '{autoscaling.knative.dev/target-burst-capacity: "0"}',
    )
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("knative-limits")
    with from_yaml(root, MESH, files={"apps/app.py": APP}) as up:
        until(lambda: ready_at(up, "one-at-a-time", "one-at-a-time-00001"), "Ready")
        until(lambda: ready_at(up, "quick", "quick-00001"), "Ready")
        until(lambda: ready_at(up, "idle", "idle-00001"), "Ready")
        yield up


def get(up: Up, host: str, path: str, client: httpx.Client | None = None) -> httpx.Response:
    return through_gateway(up, f"{host}.default.example.com", path, timeout=30, client=client)


def cluster_counters(up: Up, instance: str, cluster: str) -> Counter[str]:
    """The counters of one cluster of an instance's Envoy (its admin `/stats`)."""
    agent = json.loads((up.state.instances / instance / "agent.json").read_text())
    admin = f"http://127.0.0.1:{agent['proxy']['admin_port']}/stats"
    prefix = f"cluster.{cluster}."
    text = httpx.get(admin, params={"filter": "^cluster"}, trust_env=False).text
    out: Counter[str] = Counter()
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith(prefix) and value.isdigit():
            out[name.removeprefix(prefix)] = int(value)
    return out


def test_requests_beyond_container_concurrency_wait_and_succeed(mesh: Up) -> None:
    instance, cluster = "one-at-a-time-00001-0.default", "inbound|8080||"
    before = cluster_counters(mesh, instance, cluster)
    seen: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + 3

    def client() -> None:
        with httpx.Client(timeout=30, trust_env=False) as c:
            while time.monotonic() < stop:
                code = get(mesh, "one-at-a-time", "/work", c).status_code
                with lock:
                    seen[code] += 1

    with ThreadPoolExecutor(5) as pool:
        for f in [pool.submit(client) for _ in range(5)]:
            f.result()
    # Never two at once at the app (a 500), never refused (a 503): all waited their turn.
    assert set(seen) == {200}, seen
    assert seen[200] >= 5, seen
    # They waited in the sidecar's queue, and none was refused there and then retried
    # by the gateway (its retries would hide a refusal from the clients).
    counters = cluster_counters(mesh, instance, cluster)
    counters.subtract(before)
    assert counters["upstream_rq_total"] == seen[200], counters
    assert counters["upstream_rq_pending_total"] > 0, counters
    assert counters["upstream_rq_pending_overflow"] == 0, counters
    assert counters["upstream_rq_active_overflow"] == 0, counters


def test_beyond_the_queue_a_503(mesh: Up, tmp_path: Path) -> None:
    # The app holds every request until the file appears: 1 in flight and 10 waiting
    # fill the sidecar (10 × containerConcurrency queued), so 3 of 14 are refused.
    release = tmp_path / "release"
    with ThreadPoolExecutor(14) as pool:
        futures = [pool.submit(get, mesh, "one-at-a-time", f"/hold/{release}") for _ in range(14)]

        def three_answered() -> list[httpx.Response] | None:
            answered = [f.result() for f in futures if f.done()]
            return answered if len(answered) >= 3 else None

        refused = until(three_answered, "three requests answered")
        release.write_text("")
        answers = [f.result() for f in futures]
    assert len(refused) == 3 and all(r.status_code == 503 for r in refused), refused
    assert all(r.headers.get("x-envoy-overloaded") == "true" for r in refused)
    assert Counter(r.status_code for r in answers) == {200: 11, 503: 3}


def cut_off(up: Up, host: str, path: str) -> bool:
    """Whether the response to `path` started (headers came) and its body was cut."""
    url = up.info().gateway_urls[0] + path
    headers = {"Host": f"{host}.default.example.com"}
    with httpx.stream("GET", url, headers=headers, timeout=30, trust_env=False) as resp:
        assert resp.status_code == 200
        try:
            resp.read()
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return True
        return False


def test_timeout_seconds_bounds_the_whole_request(mesh: Up) -> None:
    quick = get(mesh, "quick", "/quick")
    assert quick.status_code == 200 and quick.text == "done"
    gateway = "istio-ingressgateway-0.istio-system"
    cluster = "outbound|80||quick-00001.default.svc.cluster.local"
    before = cluster_counters(mesh, gateway, cluster)
    slow_start = get(mesh, "quick", "/slow-start")
    assert slow_start.status_code == 504, slow_start.text
    # Answered once: a timed-out request is not sent again.
    counters = cluster_counters(mesh, gateway, cluster)
    counters.subtract(before)
    assert counters["upstream_rq_retry"] == 0, counters
    # Headers at once, the body 2 s later: past the 1 s, the response is cut off.
    assert cut_off(mesh, "quick", "/slow-body")


def test_idle_timeout_seconds_bounds_the_time_without_a_byte(mesh: Up) -> None:
    assert get(mesh, "idle", "/quick").text == "done"
    # 3 s before the headers, 2 s between headers and body: both past the 1 s idle.
    slow_start = get(mesh, "idle", "/slow-start")
    assert slow_start.status_code == 504, slow_start.text
    assert cut_off(mesh, "idle", "/slow-body")
