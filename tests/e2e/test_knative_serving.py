"""Knative Services on the mesh, end to end: a Service becomes Ready with its URL, answers
through the gateway by `Host: NAME.NS.DOMAIN` and inside the mesh by
`NAME.NS.svc.cluster.local`; a template change makes a new revision that takes the
traffic once ready; a split with tags sends each share to its revision and each tag to
its own; `cluster-local` keeps a service off the gateway."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.meshes import apply, from_yaml, through_gateway
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

APP = """
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if os.environ.get("SLOW"):
            time.sleep(float(os.environ["SLOW"]))
        body = json.dumps({
            "service": os.environ.get("K_SERVICE"),
            "configuration": os.environ.get("K_CONFIGURATION"),
            "revision": os.environ.get("K_REVISION"),
            "target": os.environ.get("TARGET"),
            "port": os.environ.get("PORT"),
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


def ksvc(
    name: str,
    target: str,
    *,
    labels: str = "{}",
    traffic: str = "",
    annotations: str = "{}",
    slow: str = "",
) -> str:
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default, labels: {labels}}}
spec:
  template:
    metadata: {{annotations: {annotations}}}
    spec:
      containers:
        - image: example.com/hello:latest
          command: [python3, app.py]
          workingDir: apps
          env: [{{name: TARGET, value: {target}}}, {{name: SLOW, value: "{slow}"}}]
          readinessProbe: {{httpGet: {{path: /}}}}
{traffic}"""


# One request in flight per instance is the target (70%: 0.7); at most 3 instances;
# a 6 s stable window (panic: 10% of it).
BUSY = (
    '{autoscaling.knative.dev/target: "1", autoscaling.knative.dev/window: 6s, '
    'autoscaling.knative.dev/min-scale: "1", autoscaling.knative.dev/max-scale: "3"}'
)


MESH = (
    """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data:
  scale-to-zero-grace-period: 6s
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  ports: [{name: http, port: 8000}]
---"""
    + ksvc("hello", "one")
    + "---"
    + ksvc("private", "inside", labels="{networking.knative.dev/visibility: cluster-local}")
    + "---"
    + ksvc("busy", "load", annotations=BUSY, slow="0.4")
    + "---"
    + ksvc("sleepy", "awake", annotations="{autoscaling.knative.dev/window: 6s}", slow="0.2")
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with from_yaml(tmp_path_factory.mktemp("knative"), MESH, files={"apps/app.py": APP}) as up:
        yield up


def kservice(up: Up, name: str) -> dict[str, Any]:
    with up.client() as c:
        items = c.get("/api/v1/resources", params={"kind": "ksvc", "name": name}).json()["items"]
    (item,) = items
    return dict(item)


def condition(item: dict[str, Any], kind: str) -> str:
    for c in item.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return "missing"


def in_mesh(up: Up, url: str) -> httpx.Response:
    """As the `client` workload's app sends it: through its sidecar, as HTTP proxy."""
    agent = json.loads((up.state.instances / "client-0.default" / "agent.json").read_text())
    proxy = f"http://127.0.0.1:{agent['proxy']['outbound_port']}"
    with httpx.Client(proxy=proxy, timeout=10, trust_env=False) as c:
        return c.get(url)


def ready_at(up: Up, name: str, revision: str) -> bool:
    item = kservice(up, name)
    status = item.get("status", {})
    return condition(item, "Ready") == "True" and status.get("latestReadyRevisionName") == revision


def test_a_service_is_ready_with_its_url_and_answers(mesh: Up) -> None:
    until(lambda: ready_at(mesh, "hello", "hello-00001"), "hello Ready")
    status = kservice(mesh, "hello")["status"]
    assert status["url"] == "http://hello.default.example.com"
    assert status["address"]["url"] == "http://hello.default.svc.cluster.local"
    assert status["latestCreatedRevisionName"] == "hello-00001"
    assert status["traffic"] == [
        {"revisionName": "hello-00001", "percent": 100, "latestRevision": True}
    ]
    resp = through_gateway(mesh, "hello.default.example.com")
    assert resp.status_code == 200, resp.text
    seen = resp.json()
    assert seen["service"] == "hello" and seen["configuration"] == "hello"
    assert seen["revision"] == "hello-00001" and seen["target"] == "one"
    assert seen["port"] and seen["port"] != "8080"  # the port Ami gave it: $PORT
    assert "x-forwarded-for" in seen["headers"]
    assert seen["headers"]["x-forwarded-proto"] == "http"
    inside = in_mesh(mesh, "http://hello.default.svc.cluster.local/")
    assert inside.status_code == 200 and inside.json()["revision"] == "hello-00001"
    # The revision is a workload like any other, labelled as Knative labels its pods.
    row = mesh.instances()["hello-00001-0"]
    assert row["ready"] and row["workload"] == "hello-00001"


def test_cluster_local_is_reachable_in_the_mesh_only(mesh: Up) -> None:
    until(lambda: ready_at(mesh, "private", "private-00001"), "private Ready")
    assert kservice(mesh, "private")["status"]["url"] == "http://private.default.svc.cluster.local"
    assert through_gateway(mesh, "private.default.example.com").status_code == 404
    inside = in_mesh(mesh, "http://private.default.svc.cluster.local/")
    assert inside.status_code == 200 and inside.json()["target"] == "inside"


class Load:
    """Requests through the gateway, one after another, until stopped: every status."""

    def __init__(self, up: Up, host: str) -> None:
        self.up, self.host = up, host
        self.statuses: list[int] = []
        self.errors: list[str] = []  # what a request that got no answer ran into
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.statuses.append(through_gateway(self.up, self.host).status_code)
            except httpx.HTTPError as e:
                self.statuses.append(0)
                self.errors.append(repr(e))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_new_template_makes_a_revision_then_a_split_with_tags(mesh: Up) -> None:
    until(lambda: ready_at(mesh, "hello", "hello-00001"), "hello Ready")
    with Load(mesh, "hello.default.example.com") as load:  # no change fails a request
        apply(mesh, ksvc("hello", "two"))
        until(lambda: ready_at(mesh, "hello", "hello-00002"), "hello-00002 ready")
        until(lambda: len(load.statuses) > 20, "requests during the change")
    assert set(load.statuses) == {200}, (Counter(load.statuses), load.errors)
    # The latest ready revision takes the traffic; a template unchanged makes none.
    until(
        lambda: (
            through_gateway(mesh, "hello.default.example.com").json()["revision"] == "hello-00002"
        ),
        "traffic on hello-00002",
    )
    apply(mesh, ksvc("hello", "two", labels="{team: a}"))  # metadata only: no revision
    assert kservice(mesh, "hello")["status"]["latestCreatedRevisionName"] == "hello-00002"
    split = """  traffic:
    - {revisionName: hello-00001, percent: 50, tag: first}
    - {latestRevision: true, percent: 50, tag: latest}
"""
    with Load(mesh, "hello.default.example.com") as load:
        apply(mesh, ksvc("hello", "two", traffic=split))
        until(lambda: len(load.statuses) > 50, "requests during the split")
    assert set(load.statuses) == {200}, Counter(load.statuses)

    def both() -> Counter[str]:
        got = Counter(
            through_gateway(mesh, "hello.default.example.com").json()["revision"] for _ in range(40)
        )
        return got if len(got) == 2 else Counter()

    until(both, "both revisions answering")
    counts = Counter(
        through_gateway(mesh, "hello.default.example.com").json()["revision"] for _ in range(400)
    )
    # 50/50 over 400: the standard deviation is 10; 5 of them either way.
    assert abs(counts["hello-00001"] - 200) <= 50, counts
    status = kservice(mesh, "hello")["status"]
    assert {t.get("tag"): t["url"] for t in status["traffic"]} == {
        "first": "http://first-hello.default.example.com",
        "latest": "http://latest-hello.default.example.com",
    }
    for _ in range(10):
        tagged = through_gateway(mesh, "first-hello.default.example.com")
        assert tagged.json()["revision"] == "hello-00001"
    inside = in_mesh(mesh, "http://latest-hello.default.svc.cluster.local/")
    assert inside.json()["revision"] == "hello-00002"
    # A policy that selects one revision's label applies to that revision only.
    deny = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-first, namespace: default}
spec:
  selector: {matchLabels: {serving.knative.dev/revision: hello-00001}}
  action: DENY
  rules: [{}]
"""
    apply(mesh, deny)
    try:
        until(
            lambda: through_gateway(mesh, "first-hello.default.example.com").status_code == 403,
            "hello-00001 denied",
        )
        assert through_gateway(mesh, "latest-hello.default.example.com").status_code == 200
    finally:
        with mesh.client() as c:
            c.delete("/api/v1/resources/AuthorizationPolicy/default/no-first")


def busy_instances(up: Up) -> list[dict[str, Any]]:
    return [
        r
        for r in up.instances().values()
        if r["workload"] == "busy-00001" and r["state"] not in ("exited", "completed")
    ]


def autoscaler_gauges(up: Up, revision: str) -> dict[str, float]:
    """Knative's autoscaler gauges of `revision` on the control plane's `/metrics`."""
    with up.client() as c:
        text = c.get("/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith("autoscaler_") and sample.labels["revision_name"] == revision
    }


def test_instances_follow_the_load_within_min_and_max_scale(mesh: Up) -> None:
    until(lambda: ready_at(mesh, "busy", "busy-00001"), "busy Ready")
    assert len(busy_instances(mesh)) == 1  # min-scale, and nothing to do
    stop = threading.Event()
    seen: list[int] = []

    def load() -> None:
        with httpx.Client(timeout=30, trust_env=False) as c:
            url = mesh.info().gateway_urls[0]
            while not stop.is_set():
                r = c.get(url, headers={"Host": "busy.default.example.com"})
                seen.append(r.status_code)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        # Four requests in flight against a target of 0.7 each: 6 wanted, 3 at most.
        until(
            lambda: len([r for r in busy_instances(mesh) if r["ready"]]) == 3,
            "three busy instances",
            timeout=60,
        )
        # What the autoscaler decided, as Knative's metrics and the API show it: more
        # wanted than max-scale allows, three asked for.
        gauges = autoscaler_gauges(mesh, "busy-00001")
        assert gauges["autoscaler_desired_pods"] >= 3, gauges
        assert gauges["autoscaler_requested_pods"] == 3, gauges
        with mesh.client() as c:
            rows = c.get("/api/v1/serving/revisions").json()["revisions"]
        (busy,) = [r for r in rows if r["revision"] == "busy-00001"]
        assert busy["service"] == "busy" and busy["requested"] == 3
        assert busy["observed_stable"] > 0
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert seen and set(seen) == {200}
    assert len(busy_instances(mesh)) == 3  # max-scale holds
    # No load: a stable window later, back to min-scale.
    until(lambda: len(busy_instances(mesh)) == 1, "back to one busy instance", timeout=90)


def test_scale_to_zero_and_back_with_no_failed_request(mesh: Up) -> None:
    until(lambda: ready_at(mesh, "sleepy", "sleepy-00001"), "sleepy Ready")

    def instances() -> list[dict[str, Any]]:
        return [r for r in mesh.instances().values() if r["workload"] == "sleepy-00001"]

    # Idle: a stable window (6 s) at one, the grace period (6 s), then none.
    until(lambda: not instances(), "sleepy scaled to zero", timeout=90)
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if "sleepy-00001" in " ".join(p.info["cmdline"] or ())
    ]
    # From zero: every request waits at the activator, none fails.
    results: list[tuple[int, str]] = []

    def one() -> None:
        r = through_gateway(mesh, "sleepy.default.example.com")
        results.append((r.status_code, r.json().get("revision", "") if r.is_success else r.text))

    clients = [threading.Thread(target=one) for _ in range(20)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(60)
    assert results == [(200, "sleepy-00001")] * 20
    assert instances()
