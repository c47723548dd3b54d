"""Knative Eventing on the mesh, end to end: `ami up` with a Broker runs a JetStream
server and the broker's workload; events sent from a workload through its sidecar
reach the broker, are stored, and are delivered through the mesh to each trigger's
subscriber: filtered, retried, dead-lettered with Knative's error extensions, replies
re-ingested; a `kill -9` of the broker process loses no event it answered 202."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from amimesh.runtime.node_config import read_pids
from tests.e2e.meshes import apply, from_yaml
from tests.e2e.test_kn_cli import ami, ok
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

BROKER_URL = "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"

# One app, several parts: MODE says which. Every event received is a JSON line in OUT.
APP = r"""
import json, os, sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, OUT = os.environ["MODE"], os.environ.get("OUT", "")
seen = {}

if MODE == "emitter":  # a ContainerSource: one event to K_SINK, through the sidecar
    import time
    overrides = json.loads(os.environ.get("K_CE_OVERRIDES", "{}")).get("extensions", {})
    headers = {"ce-id": "beat-" + os.environ["AMI_WORKLOAD"], "ce-source": "/emitter",
               "ce-type": "heartbeat",
               "ce-specversion": "1.0", "content-type": "application/json",
               **{"ce-" + k: v for k, v in overrides.items()}}
    while True:
        req = urllib.request.Request(os.environ["K_SINK"], data=b'{"beat": 1}',
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 202:
                    break
        except OSError:
            pass
        time.sleep(0.2)
    while True:
        time.sleep(3600)

def record(handler, body):
    row = {"headers": {k.lower(): v for k, v in handler.headers.items()},
           "body": body.decode("utf-8", "replace")}
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if MODE == "sender":  # relay to ?to=URL through the sidecar (HTTP_PROXY)
            to = self.path.split("to=", 1)[1]
            headers = {k: v for k, v in self.headers.items()
                       if k.lower().startswith("ce-") or k.lower() == "content-type"}
            req = urllib.request.Request(to, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status, text = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read()
            return self.answer(status, text)
        event_id = self.headers.get("ce-id", "")
        if MODE == "flaky" and self.headers.get("ce-type") == "flaky503":
            seen[event_id] = seen.get(event_id, 0) + 1
            if seen[event_id] <= 2:
                return self.answer(503, b"not yet")
        elif MODE == "flaky":
            seen[event_id] = seen.get(event_id, 0) + 1
            if seen[event_id] <= 2:  # 429: Knative retries it, the mesh does not
                return self.answer(429, b"not yet")
        if MODE == "broken":
            return self.answer(500, b"boom")
        if MODE == "filter":  # a Parallel's filter: the event back when it is big
            if self.headers.get("ce-size") != "big":
                return self.answer(202, b"")
            return self.reply_event(body, self.headers.get("ce-type", ""))
        if MODE == "step":  # a Sequence's step: the event back, its name on its path
            data = json.loads(body or b"{}")
            data["path"] = data.get("path", []) + [os.environ["STEP"]]
            return self.reply_event(json.dumps(data).encode(), self.headers.get("ce-type", ""))
        record(self, body)
        if MODE == "replier":
            self.send_response(200)
            self.send_header("ce-id", "reply-" + event_id[-40:])
            self.send_header("ce-source", "/replier")
            self.send_header("ce-type", os.environ.get("REPLY_TYPE", "answer"))
            self.send_header("ce-specversion", "1.0")
            self.send_header("Content-Type", "application/json")
            data = b'{"answer": 42}'
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(202, b"")

    def reply_event(self, body, type_):
        self.send_response(200)
        for name in ("ce-id", "ce-source", "ce-specversion", "ce-size"):
            if self.headers.get(name):
                self.send_header(name, self.headers[name])
        self.send_header("ce-type", type_)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def workload(name: str, mode: str, out: Path, reply_type: str = "answer", step: str = "") -> str:
    return f"""
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  command: [python, apps/app.py]
  env:
  - {{name: MODE, value: {mode}}}
  - {{name: OUT, value: "{out / (name + ".jsonl")}"}}
  - {{name: REPLY_TYPE, value: {reply_type}}}
  - {{name: STEP, value: "{step}"}}
  ports: [{{name: http, port: 8080}}]
  readinessProbe: {{tcpSocket: {{port: 8080}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"""


def trigger(name: str, subscriber: str, filters: str, delivery: str = "") -> str:
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}}}
spec:
  broker: default
  {filters}
  subscriber: {{ref: {{apiVersion: v1, kind: Service, name: {subscriber}}}}}
  {delivery}
"""


def mesh_yaml(out: Path) -> str:
    parts = [
        """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
spec:
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.1S}
---
# A broker whose own servers are not there: it alone refuses events.
apiVersion: v1
kind: ConfigMap
metadata: {name: away-nats}
data: {servers: "nats://127.0.0.1:9"}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: away}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: away-nats}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sender}
spec:
  hosts: ["*"]
  gateways: [web]
  http: [{route: [{destination: {host: sender, port: {number: 80}}}]}]
""",
        *(
            workload(name, mode, out)
            for name, mode in [
                ("sender", "sender"),
                ("orders", "sink"),
                ("flaky", "flaky"),
                ("broken", "broken"),
                ("dls", "sink"),
                ("replier", "replier"),
                ("answers", "sink"),
                ("guarded", "sink"),
                ("pings", "sink"),
                ("beats", "sink"),
            ]
        ),
        workload("echo", "replier", out, reply_type="loop"),
        workload("step-a", "step", out, step="a"),
        workload("step-b", "step", out, step="b"),
        workload("flowsink", "sink", out),
        workload("bigfilter", "filter", out),
        workload("watch", "sink", out),
        """
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: configs}
spec:
  resources: [{apiVersion: v1, kind: ConfigMap}]
  sink: {ref: {apiVersion: v1, kind: Service, name: watch}}
""",
        """
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: seq}
spec:
  steps:
  - {ref: {apiVersion: v1, kind: Service, name: step-a}}
  - {ref: {apiVersion: v1, kind: Service, name: step-b}}
  reply: {ref: {apiVersion: v1, kind: Service, name: flowsink}}
---
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: par}
spec:
  branches:
  - filter: {ref: {apiVersion: v1, kind: Service, name: bigfilter}}
    subscriber: {ref: {apiVersion: v1, kind: Service, name: step-a}}
  - subscriber: {ref: {apiVersion: v1, kind: Service, name: step-b}}
  reply: {ref: {apiVersion: v1, kind: Service, name: flowsink}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-seq}
spec:
  broker: default
  filters: [{exact: {type: flow.seq}}]
  subscriber: {ref: {apiVersion: flows.knative.dev/v1, kind: Sequence, name: seq}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-par}
spec:
  broker: default
  filters: [{exact: {type: flow.par}}]
  subscriber: {ref: {apiVersion: flows.knative.dev/v1, kind: Parallel, name: par}}
""",
        """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: bound, labels: {app: bound}}
spec:
  command: [python, apps/app.py]
  env: [{name: MODE, value: emitter}]
---
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: bound}
spec:
  subject: {apiVersion: apps/v1, kind: Deployment, selector: {matchLabels: {app: bound}}}
  ceOverrides: {extensions: {team: bound}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
""",
        trigger("bound", "beats", "filters: [{exact: {team: bound}}]"),
        trigger("orders", "orders", "filter: {attributes: {type: order.placed, region: ''}}"),
        trigger("flaky", "flaky", "filters: [{prefix: {type: flaky}}]"),
        trigger(
            "broken",
            "broken",
            "filters: [{exact: {type: broken}}]",
            "delivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT0.1S, deadLetterSink: "
            "{ref: {apiVersion: v1, kind: Service, name: dls}}}",
        ),
        trigger("ask", "replier", "filters: [{exact: {type: ask}}]"),
        trigger("answers", "answers", "filters: [{exact: {type: answer}}]"),
        trigger("loop", "echo", "filters: [{exact: {type: loop}}]"),
        trigger("beats", "beats", "filters: [{cesql: \"type = 'heartbeat' AND team = 'shop'\"}]"),
        """
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heart}
spec:
  template:
    spec:
      containers:
      - image: heart
        command: [python, apps/app.py]
        env: [{name: MODE, value: emitter}]
  ceOverrides: {extensions: {team: shop}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
""",
        f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-autoscaler, namespace: knative-serving}}
data: {{allow-zero-initial-scale: "true"}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: lazy}}
spec:
  template:
    metadata:
      annotations: {{autoscaling.knative.dev/initial-scale: "0"}}
    spec:
      containers:
      - image: lazy
        command: [python, apps/app.py]
        env: [{{name: MODE, value: sink}}, {{name: OUT, value: "{out / "lazy.jsonl"}"}}]
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: lazy}}
spec:
  broker: default
  filters: [{{exact: {{type: lazy}}}}]
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: lazy}}}}
""",
        """
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: beat}
spec:
  schedule: "* * * * * *"
  contentType: application/json
  data: '{"beat": true}'
  ceOverrides: {extensions: {team: shop}}
  sink: {ref: {apiVersion: v1, kind: Service, name: pings}}
""",
        trigger(
            "guarded",
            "guarded",
            "filters: [{prefix: {type: guarded}}]",
            "delivery: {retry: 1, backoffDelay: PT0.1S, deadLetterSink: "
            "{ref: {apiVersion: v1, kind: Service, name: dls}}}",
        ),
    ]
    return "\n---\n".join(parts)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path]]:
    root = tmp_path_factory.mktemp("eventing")
    out = root / "out"
    out.mkdir()
    with from_yaml(root, mesh_yaml(out), files={"apps/app.py": APP}, ready=None) as up:
        # Two dozen instances: on a busy machine they take longer than one wait's default.
        until(up.settled, "every instance ready", timeout=120)
        yield up, out


def send(
    up: Up, headers: dict[str, str], body: bytes = b"", to: str = BROKER_URL
) -> httpx.Response:
    """POST from the `sender` workload: through its sidecar, into the mesh."""
    url = up.info().gateway_urls[0] + f"/send?to={to}"
    return httpx.post(url, headers=headers, content=body, timeout=20, trust_env=False)


def binary(event_id: str, type_: str, **ext: str) -> dict[str, str]:
    return {
        "ce-id": event_id,
        "ce-source": "/tests",
        "ce-type": type_,
        "ce-specversion": "1.0",
        "content-type": "application/json",
        **{f"ce-{k}": v for k, v in ext.items()},
    }


def received(out: Path, name: str) -> list[dict[str, Any]]:
    path = out / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ids(out: Path, name: str) -> set[str]:
    return {r["headers"].get("ce-id", "") for r in received(out, name)}


BROKER_ID = "spiffe://cluster.local/ns/knative-eventing/sa/mt-broker-ingress"


def broker_sidecar_requests_to(up: Up, host: str) -> int:
    """Requests the broker's own sidecar sent to `host`'s cluster so far (its admin
    API's stats)."""
    homes = [h for h in up.state.instances.iterdir() if h.name.startswith("broker-ingress")]
    total = 0
    for home in homes:
        admin = json.loads((home / "agent.json").read_text())["proxy"]["admin_port"]
        stats = httpx.get(
            f"http://127.0.0.1:{admin}/stats?filter=upstream_rq_total", trust_env=False
        ).text
        for line in stats.splitlines():
            name, _, value = line.partition(": ")
            if name == f"cluster.outbound|80||{host}.upstream_rq_total":
                total += int(value)
    return total


def test_deliveries_go_straight_to_the_subscribers_sidecar_over_mutual_tls(
    mesh: tuple[Up, Path],
) -> None:
    """A subscriber on the mesh's default route gets its deliveries from the broker
    itself, over mutual TLS as the broker's identity: its sidecar names the broker's
    SPIFFE ID to the app and in its metrics, and the broker's own sidecar sends it
    nothing."""
    up, out = mesh
    host = "orders.default.svc.cluster.local"
    # Until the broker knows its way straight to the subscriber (its identity, the
    # subscriber's endpoints and their identities, read from its sidecar every second),
    # deliveries go through its sidecar: wait until one goes straight.
    probes = itertools.count()

    def went_straight() -> bool:
        before = broker_sidecar_requests_to(up, host)
        probe = f"d-0-{next(probes)}"
        assert send(up, binary(probe, "order.placed", region="x")).status_code == 202
        until(lambda: probe in ids(out, "orders"), f"{probe} delivered")
        return broker_sidecar_requests_to(up, host) == before

    until(went_straight, "a delivery straight to the subscriber's sidecar", timeout=60)
    before = broker_sidecar_requests_to(up, host)
    for i in range(1, 6):
        assert send(up, binary(f"d-{i}", "order.placed", region="x")).status_code == 202
    until(lambda: {f"d-{i}" for i in range(1, 6)} <= ids(out, "orders"), "d-1..5 delivered")
    assert broker_sidecar_requests_to(up, host) == before
    (row,) = [r for r in received(out, "orders") if r["headers"]["ce-id"] == "d-3"]
    # The subscriber's sidecar took the broker's certificate (and only it says so).
    assert f"URI={BROKER_ID}" in row["headers"]["x-forwarded-client-cert"]
    assert "ce-knativebrokerttl" not in row["headers"]

    def counted() -> bool:
        with up.client() as api:
            text = api.get("/metrics").text
        return any(
            s.name == "istio_requests_total"
            and s.labels.get("reporter") == "destination"
            and s.labels.get("destination_workload") == "orders"
            and s.labels.get("source_principal") == BROKER_ID
            and s.labels.get("source_workload") == "broker-ingress"
            and s.labels.get("connection_security_policy") == "mutual_tls"
            and s.value > 0
            for family in text_string_to_metric_families(text)
            for s in family.samples
        )

    until(counted, "the subscriber's sidecar counted the broker's deliveries", timeout=60)


def test_binary_and_structured_events_reach_a_filtered_trigger(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    r = send(up, binary("b-1", "order.placed", region="eu"), b'{"order": 1}')
    assert r.status_code == 202, r.text
    structured = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "/tests",
        "type": "order.placed",
        "region": "us",
        "datacontenttype": "application/json",
        "data": {"order": 2},
    }
    r = send(
        up,
        {"content-type": "application/cloudevents+json"},
        json.dumps(structured).encode(),
    )
    assert r.status_code == 202, r.text
    # Filtered out: no region, an empty region, another type.
    for i, headers in enumerate(
        [
            binary("x-1", "order.placed"),
            binary("x-2", "order.placed", region=""),
            binary("x-3", "order.cancelled", region="eu"),
        ]
    ):
        assert send(up, headers, b"{}").status_code == 202, i
    until(lambda: {"b-1", "s-1"} <= ids(out, "orders"), "both events at orders")
    rows = {r["headers"]["ce-id"]: r for r in received(out, "orders")}
    assert json.loads(rows["b-1"]["body"]) == {"order": 1}
    assert rows["b-1"]["headers"]["ce-region"] == "eu"
    assert rows["b-1"]["headers"]["prefer"] == "reply"
    # The broker's TTL stays inside the broker.
    assert "ce-knativebrokerttl" not in rows["b-1"]["headers"]
    # Delivered through the mesh: the subscriber's sidecar passed on the caller's identity.
    xfcc = rows["b-1"]["headers"].get("x-forwarded-client-cert", "")
    assert "ns/knative-eventing/sa/mt-broker-ingress" in xfcc, rows["b-1"]["headers"]
    assert ids(out, "orders").isdisjoint({"x-1", "x-2", "x-3"})


def test_cli_sends_events_and_shows_brokers_and_triggers(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    sent = ok(
        up,
        "event",
        "send",
        "--to",
        "default",
        "-t",
        "order.placed",
        "-s",
        "/cli",
        "-i",
        "cli-1",
        "-f",
        "item=book",
        "-f",
        "count=2",
        "-e",
        "region=eu",
    )
    assert "Event 'cli-1' sent (202)" in sent
    rows = until(
        lambda: [r for r in received(out, "orders") if r["headers"].get("ce-id") == "cli-1"],
        "the CLI's event",
    )
    assert json.loads(rows[0]["body"]) == {"item": "book", "count": 2}
    listing = ok(up, "broker", "list")
    assert "default" in listing and BROKER_URL in listing and "True" in listing
    triggers = ok(up, "trigger", "list")
    for name in ("orders", "flaky", "broken", "ask", "answers"):
        assert name in triggers
    described = ok(up, "trigger", "describe", "broken")
    assert "DeadLetter: Service:dls" in described
    assert "http://broken.default.svc.cluster.local" in described
    triggers = (
        "answers, ask, beats, bound, broken, flaky, guarded, lazy, loop, orders, to-par, to-seq"
    )
    assert f"Triggers:   {triggers}" in ok(up, "broker", "describe", "default")


def test_a_knative_service_at_zero_is_woken_and_gets_the_event(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert not [r for r in up.instances().values() if r["workload"] == "lazy-00001"]
    assert send(up, binary("z-1", "lazy"), b'{"wake": true}').status_code == 202
    rows = until(lambda: received(out, "lazy"), "the event at the woken service", timeout=60)
    assert rows[0]["headers"]["ce-id"] == "z-1"
    assert [r for r in up.instances().values() if r["workload"] == "lazy-00001"]


def test_a_ping_source_fires_on_its_schedule(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    # A seconds field (Ami's extension of Knative's five): a tick every second.
    rows = until(
        lambda: received(out, "pings")[:2] if len(received(out, "pings")) >= 2 else None,
        "two ticks",
    )
    for row in rows:
        headers = row["headers"]
        assert headers["ce-type"] == "dev.knative.sources.ping"
        assert headers["ce-source"] == "/apis/v1/namespaces/default/pingsources/beat"
        assert headers["ce-team"] == "shop"
        assert json.loads(row["body"]) == {"beat": True}
        # From the broker process, through the mesh.
        assert "sa/mt-broker-ingress" in headers.get("x-forwarded-client-cert", "")
    assert rows[0]["headers"]["ce-id"] != rows[1]["headers"]["ce-id"]


def test_the_ttl_ends_a_reply_loop(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    # Each reply is another `loop` event: the broker's TTL ends it. Sent with a TTL of
    # 20, the event enters with 19 (the ingress takes one off), so 19 deliveries.
    headers = binary("loop-1", "loop", knativebrokerttl="20")
    assert send(up, headers, b"{}").status_code == 202
    log = up.state.logs / "broker-ingress-0.knative-eventing.log"
    until(lambda: "dropped: TTL spent" in log.read_text(), "the loop's end", timeout=60)
    assert len(received(out, "echo")) == 19


def test_a_container_source_sends_to_its_sink(mesh: tuple[Up, Path]) -> None:
    _, out = mesh
    rows = until(
        lambda: [r for r in received(out, "beats") if r["headers"].get("ce-team") == "shop"],
        "the container source's event",
    )
    headers = rows[0]["headers"]
    assert headers["ce-id"] == "beat-containersource-heart"
    assert headers["ce-type"] == "heartbeat" and headers["ce-team"] == "shop"


def test_a_sink_binding_gives_its_subject_k_sink(mesh: tuple[Up, Path]) -> None:
    _, out = mesh
    rows = until(
        lambda: [r for r in received(out, "beats") if r["headers"].get("ce-team") == "bound"],
        "the bound workload's event",
    )
    assert rows[0]["headers"]["ce-id"] == "beat-bound"


def test_cli_creates_and_deletes_a_trigger(mesh: tuple[Up, Path]) -> None:
    up, _ = mesh
    # On a broker nobody defines: it says so, and the running broker is left alone.
    out = ok(
        up,
        "trigger",
        "create",
        "late",
        "--broker",
        "nope",
        "--filter",
        "type=x",
        "-s",
        "svc:orders",
    )
    assert "Trigger 'late' successfully created in namespace 'default'." in out
    assert "already exists" in ami(up, "trigger", "create", "late", "-b", "nope", "-s", "x").stderr

    def not_ready() -> str | None:
        text = ok(up, "trigger", "describe", "late")
        return text if "BrokerDoesNotExist" in text else None

    described = until(not_ready, "the trigger's status")
    assert 'no Broker "nope"' in described
    assert "Trigger 'late' deleted" in ok(up, "trigger", "delete", "late")
    assert ami(up, "trigger", "describe", "late").returncode == 1


def flow_paths(out: Path, event_id: str) -> list[list[str]]:
    rows = [r for r in received(out, "flowsink") if r["headers"].get("ce-id") == event_id]
    return sorted(json.loads(r["body"])["path"] for r in rows)


def test_a_sequence_routes_an_event_through_its_steps(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert send(up, binary("seq-1", "flow.seq"), b'{"path": []}').status_code == 202
    assert until(lambda: flow_paths(out, "seq-1"), "the sequence's reply") == [["a", "b"]]


def test_a_parallel_routes_an_event_to_the_branches_that_take_it(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    for size in ("big", "small"):
        headers = binary(f"par-{size}", "flow.par", size=size)
        assert send(up, headers, b'{"path": []}').status_code == 202
    # Big passes the first branch's filter and goes to both; small to the second only.
    until(lambda: len(flow_paths(out, "par-big")) == 2, "both branches' replies")
    assert flow_paths(out, "par-big") == [["a"], ["b"]]
    assert until(lambda: flow_paths(out, "par-small"), "the second branch's reply") == [["b"]]


def test_an_api_server_source_reports_an_apply(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    apply(up, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: '1'}\n")
    rows = until(lambda: received(out, "watch"), "the ApiServerSource's event")
    headers = rows[0]["headers"]
    assert headers["ce-type"] == "dev.knative.apiserver.ref.add"
    assert headers["ce-subject"] == "/api/v1/namespaces/default/configmaps/watched"
    assert json.loads(rows[0]["body"]) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "watched",
        "namespace": "default",
    }


def test_a_broker_whose_servers_are_away_refuses_alone(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    away = BROKER_URL.removesuffix("/default") + "/away"
    r = send(up, binary("away-1", "order.placed", region="x"), to=away)
    assert r.status_code == 503, r.text
    assert send(up, binary("here-1", "order.placed", region="x")).status_code == 202
    until(lambda: "here-1" in ids(out, "orders"), "the other broker's event delivered")


def test_invalid_events_are_refused_with_a_reason(mesh: tuple[Up, Path]) -> None:
    up, _ = mesh
    missing = binary("m-1", "order.placed")
    del missing["ce-source"]
    r = send(up, missing, b"{}")
    assert r.status_code == 400 and "source" in r.text, r.text
    r = send(up, {"content-type": "application/cloudevents+json"}, b'{"id": "1"}')
    assert r.status_code == 400 and "missing required attribute" in r.text, r.text
    r = send(up, binary("v-1", "t") | {"ce-specversion": "2.0"}, b"{}")
    assert r.status_code == 400 and "specversion" in r.text, r.text
    r = send(up, {"content-type": "text/plain"}, b"hello")
    assert r.status_code == 400 and "not a CloudEvent" in r.text, r.text
    r = send(up, binary("big", "t"), b"x" * (1024 * 1024 + 10))
    assert r.status_code == 413, r.text
    r = send(
        up, binary("b", "t"), b"{}", to=BROKER_URL.replace("/default/default", "/default/nope")
    )
    assert r.status_code == 404, r.text


def test_a_batch_is_accepted(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    batch = [
        {
            "specversion": "1.0",
            "id": f"batch-{i}",
            "source": "/t",
            "type": "order.placed",
            "region": "eu",
        }
        for i in range(3)
    ]
    r = send(up, {"content-type": "application/cloudevents-batch+json"}, json.dumps(batch).encode())
    assert r.status_code == 202, r.text
    until(lambda: {"batch-0", "batch-1", "batch-2"} <= ids(out, "orders"), "the batch delivered")


def test_a_failing_subscriber_gets_the_event_after_retries(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert send(up, binary("f-1", "flaky.one"), b"{}").status_code == 202
    until(lambda: "f-1" in ids(out, "flaky"), "the event after two 503s")


def test_a_broken_subscriber_sends_to_the_dead_letter_sink(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert send(up, binary("d-1", "broken"), b'{"x": 1}').status_code == 202
    rows = until(
        lambda: [r for r in received(out, "dls") if r["headers"].get("ce-id") == "d-1"],
        "the dead letter",
    )
    headers = rows[0]["headers"]
    assert headers["ce-knativeerrordest"] == "http://broken.default.svc.cluster.local"
    assert headers["ce-knativeerrorcode"] == "500"
    assert headers["ce-knativeerrordata"] == "Ym9vbQ=="  # base64 of "boom"
    assert json.loads(rows[0]["body"]) == {"x": 1}


def test_a_reply_reaches_a_second_trigger(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert send(up, binary("q-1", "ask"), b"{}").status_code == 202
    rows = until(
        lambda: [r for r in received(out, "answers") if r["headers"].get("ce-id") == "reply-q-1"],
        "the reply at the second trigger",
    )
    assert rows[0]["headers"]["ce-source"] == "/replier"
    assert json.loads(rows[0]["body"]) == {"answer": 42}


def test_ami_events_shows_where_each_event_went(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    assert send(up, binary("h-1", "broken"), b"{}").status_code == 202
    until(lambda: "h-1" in ids(out, "dls"), "h-1 dead-lettered")
    assert send(up, binary("h-2", "flaky.two"), b"{}").status_code == 202
    until(lambda: "h-2" in ids(out, "flaky"), "h-2 delivered")

    def rows() -> dict[str, Any]:
        found = json.loads(ok(up, "events", "default", "--last", "10000", "-o", "json"))
        by_id = {r["id"]: r for r in found}
        wanted = ("h-1", "h-2")
        return by_id if all(by_id.get(i, {}).get("deliveries") for i in wanted) else {}

    by_id = until(rows, "both in the history")
    (broken,) = by_id["h-1"]["deliveries"]
    assert broken == {"trigger": "broken", "attempts": 3, "status": 500, "outcome": "dead-lettered"}
    (flaky,) = by_id["h-2"]["deliveries"]
    assert flaky == {"trigger": "flaky", "attempts": 3, "status": 202, "outcome": "delivered"}
    table = ok(up, "events", "default")
    assert "h-2" in table and "delivered after 3 attempts (202)" in table


def test_the_mesh_retries_a_503_within_an_attempt(mesh: tuple[Up, Path]) -> None:
    """The broker's sidecar keeps the mesh's default retries (a 503 twice more, as
    Istio's): each of Knative's attempts can be up to three requests."""
    up, out = mesh
    assert send(up, binary("m503-1", "flaky503"), b"{}").status_code == 202
    until(lambda: "m503-1" in ids(out, "flaky"), "m503-1 delivered")
    found = json.loads(ok(up, "events", "default", "--last", "10000", "-o", "json"))
    (row,) = [r for r in found if r["id"] == "m503-1"]
    assert row["deliveries"] == [
        {"trigger": "flaky", "attempts": 1, "status": 202, "outcome": "delivered"}
    ]


POLICY = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: guarded}
spec:
  selector: {matchLabels: {app: guarded}}
  action: %s
  rules:
  - from: [{source: {principals: [cluster.local/ns/knative-eventing/sa/mt-broker-ingress]}}]
"""


def test_an_authorization_policy_governs_deliveries(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    sent: list[str] = []

    def settle() -> str:
        """Send one event to the guarded trigger: where it ended up."""
        event_id = f"g-{len(sent)}"
        sent.append(event_id)
        assert send(up, binary(event_id, "guarded")).status_code == 202

        def where() -> str | None:
            if event_id in ids(out, "guarded"):
                return "delivered"
            return "dead-lettered" if event_id in ids(out, "dls") else None

        return until(where, f"{event_id} delivered or dead-lettered")

    # Until each sidecar has the policy an event may still pass: send until one does not.
    apply(up, POLICY % "DENY", "guarded-policy.yaml")
    until(lambda: settle() == "dead-lettered", "a delivery denied by the policy")
    letter = next(r for r in received(out, "dls") if r["headers"]["ce-id"] == sent[-1])
    assert letter["headers"]["ce-knativeerrorcode"] == "403", letter["headers"]
    assert letter["headers"]["ce-knativeerrordest"] == "http://guarded.default.svc.cluster.local"
    # Allowing the broker's identity (and no one else) restores its deliveries.
    apply(up, POLICY % "ALLOW", "guarded-policy.yaml")
    until(lambda: settle() == "delivered", "a delivery allowed again")


# Events of one durability run (`AMI_DURABILITY_EVENTS`; the size, 2000, is
# `bench/eventing.py --durability`'s): about half answered 202 before the kill, half
# after, by PRODUCERS senders at once.
DURABILITY_EVENTS = int(os.environ.get("AMI_DURABILITY_EVENTS", "40"))
PRODUCERS = 4


def produce_across(up: Up, prefix: str, kill: Callable[[], None], events: int) -> list[str]:
    """Events sent by several producers through the `sender`'s sidecar; `kill` once
    half of `events` are answered 202, then as many more. The ids answered 202."""
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    url = up.info().gateway_urls[0] + f"/send?to={BROKER_URL}"

    def produce(k: int) -> None:
        with httpx.Client(trust_env=False, timeout=20) as c:
            i = k
            while not stop.is_set() and i < 20 * events:
                event_id = f"{prefix}-{i}"
                i += PRODUCERS
                try:
                    r = c.post(url, headers=binary(event_id, "order.placed", region="x"))
                except httpx.HTTPError:
                    continue
                if r.status_code == 202:
                    with lock:
                        accepted.append(event_id)

    producers = [threading.Thread(target=produce, args=(k,)) for k in range(PRODUCERS)]
    for t in producers:
        t.start()
    try:
        half = max(1, events // 2)
        until(lambda: len(accepted) >= half, "events accepted before the kill", timeout=300)
        kill()
        count = len(accepted)
        until(lambda: len(accepted) >= count + half, "events accepted after it", timeout=300)
    finally:
        stop.set()
        for t in producers:
            t.join(60)
    with lock:
        return list(accepted)


def test_kill_9_of_the_broker_loses_no_accepted_event(mesh: tuple[Up, Path]) -> None:
    up, out = mesh

    def kill() -> None:
        pid = broker_pid(up)
        os.kill(pid, signal.SIGKILL)
        # The node agent starts it again; events go on being accepted after it.
        until(lambda: broker_pid(up) != pid, "the broker started again", timeout=60)

    accepted = produce_across(up, "k", kill, DURABILITY_EVENTS)
    assert accepted
    all_delivered(out, accepted)


def all_delivered(out: Path, accepted: list[str]) -> None:
    try:
        wait = max(60.0, len(accepted) / 20)  # a large run's backlog takes its time
        until(lambda: set(accepted) <= ids(out, "orders"), "every accepted event", timeout=wait)
    except AssertionError:
        missing = sorted(set(accepted) - ids(out, "orders"))
        raise AssertionError(
            f"{len(missing)} accepted event(s) never delivered: {missing}"
        ) from None


def broker_pid(up: Up) -> int:
    homes = [h for h in up.state.instances.iterdir() if h.name.startswith("broker-ingress")]
    assert homes, list(up.state.instances.iterdir())
    pid = int(read_pids(homes[0]).get("app_pid", 0))
    assert pid > 0
    os.kill(pid, 0)  # alive
    return pid


def test_kill_9_of_the_jetstream_server_loses_no_accepted_event(mesh: tuple[Up, Path]) -> None:
    up, out = mesh
    home = up.state.path / "nats"
    assert (home / "credentials").stat().st_mode & 0o077 == 0
    assert 'listen: "127.0.0.1:' in (home / "nats.conf").read_text()

    def kill() -> None:
        info = json.loads(up.state.info_file.read_text())
        os.kill(int(info["nats_pid"]), signal.SIGKILL)

    accepted = produce_across(up, "n", kill, DURABILITY_EVENTS)
    all_delivered(out, accepted)
