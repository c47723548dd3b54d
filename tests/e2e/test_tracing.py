"""Distributed tracing through real Envoys.

- The shop under the real `ami up`: with a Telemetry sampling 100%, one page through the
  gateway (frontend → reviews v2 → ratings) is one trace with a span for every hop,
  parents in the trace and one root, shown by `ami traces` and `ami trace`, with the
  OpenTelemetry and the Zipkin provider; at 0%, a request records nothing.
- A harness mesh forwarding to a test OTLP receiver: it gets the same spans.
- The Zipkin provider: a request that carries only B3 headers joins that trace.

Envoy exports spans asynchronously (the bootstrap makes it flush every second), so
every check polls until what it expects has arrived.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.e2e import shopmesh
from tests.e2e.harness import Mesh, wait_for
from tests.e2e.shopmesh import TASKS, Shop

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SPANS_TIMEOUT_S = 30.0
GATEWAY = "istio-ingressgateway"
# Each test request carries an id in this header, which a custom tag puts on the spans
# of the proxies it reaches (the gateway's at least: apps do not forward it).
TEST_HEADER = "x-test-id"


def telemetry(sampling: float, provider: str = "otel") -> str:
    return f"""\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: tracing-{int(sampling)}, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: {provider}}}]
    randomSamplingPercentage: {sampling}
    customTags:
      test.id: {{header: {{name: {TEST_HEADER}, defaultValue: none}}}}
"""


# --- the shop --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    shop = shopmesh.start(tmp_path_factory.mktemp("shop"))
    try:
        # jason's pages use reviews v2, which calls ratings.
        shop.ami("apply", "-f", str(TASKS / "reviews-jason-v2.yaml"))
        yield shop
        shop.down()
    finally:
        shop.kill()


def page(shop: Shop, test_id: str, headers: dict[str, str] | None = None) -> None:
    with httpx.Client(trust_env=False, timeout=15) as http:
        r = http.get(
            shop.gateway + "productpage",
            params={"u": "jason"},
            headers={TEST_HEADER: test_id, **(headers or {})},
        )
        assert r.status_code == 200, r.text
        assert "reviews-v2" in r.text


def trace_ids(shop: Shop) -> set[str]:
    return {t["trace_id"] for t in shop.api_get("/api/v1/traces?limit=1000")["traces"]}


def traces_of_request(shop: Shop, test_id: str) -> list[dict[str, Any]]:
    """The traces (id and spans, API form) with a span tagged with `test_id`."""
    out: list[dict[str, Any]] = []
    for trace_id in trace_ids(shop):
        spans = shop.api_get(f"/api/v1/traces/{trace_id}")["spans"]
        if any(s["attributes"].get("test.id") == test_id for s in spans):
            out.append({"trace_id": trace_id, "spans": spans})
    return out


def hop(spans: list[dict[str, Any]], service: str, kind: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["service"] == service and s["kind"] == kind]


# A product page for jason: the gateway calls frontend, which calls catalog twice (gRPC)
# and reviews v2, which calls ratings.
PAGE_HOPS = {
    (GATEWAY, "CLIENT"): 1,
    ("frontend", "SERVER"): 1,
    ("frontend", "CLIENT"): 3,
    ("catalog", "SERVER"): 2,
    ("reviews", "SERVER"): 1,
    ("reviews", "CLIENT"): 1,
    ("ratings", "SERVER"): 1,
}


def complete(spans: list[dict[str, Any]]) -> bool:
    """Whether every span of a product page's trace has arrived."""
    found = {key: len(hop(spans, *key)) for key in PAGE_HOPS}
    return found == PAGE_HOPS and len(spans) == sum(PAGE_HOPS.values())


def drained(shop: Shop) -> bool:
    """Whether no proxy still drains a listener or filter chain: a connection open
    before a config change finishes on the one it started on, with the old tracing."""
    for proxy in shop.api_get("/api/v1/proxies")["proxies"]:
        url = f"http://127.0.0.1:{proxy['admin_port']}/stats"
        with httpx.Client(trust_env=False, timeout=5) as http:
            stats = http.get(url, params={"filter": "_draining$"}).text
        values = [line.rpartition(":")[2].strip() for line in stats.splitlines()]
        if len(values) < 2 or any(v != "0" for v in values):
            return False
    return True


def apply_tracing(shop: Shop, text: str, name: str) -> None:
    shop.apply(text, name)
    wait_for(lambda: drained(shop))


@pytest.mark.parametrize("provider", ["otel", "zipkin"])
def test_one_page_is_one_trace_through_every_hop(shop: Shop, provider: str) -> None:
    """W3C trace context with the OpenTelemetry tracer, B3 (and W3C) with Zipkin's: the
    apps forward both."""
    apply_tracing(shop, telemetry(100, provider), "tracing-100.yaml")
    test_id = str(uuid.uuid4())
    page(shop, test_id)

    def arrived() -> dict[str, Any] | None:
        found = traces_of_request(shop, test_id)
        return found[0] if len(found) == 1 and complete(found[0]["spans"]) else None

    trace = wait_for(arrived, SPANS_TIMEOUT_S)
    trace_id, spans = trace["trace_id"], trace["spans"]
    assert len(traces_of_request(shop, test_id)) == 1
    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans)
    roots = [s for s in spans if not s["parent_span_id"]]
    assert [(r["service"], r["kind"]) for r in roots] == [(GATEWAY, "CLIENT")]
    assert all(s["parent_span_id"] in by_id for s in spans if s not in roots)

    def parent(s: dict[str, Any]) -> dict[str, Any]:
        return by_id[s["parent_span_id"]]

    (frontend_in,) = hop(spans, "frontend", "SERVER")
    assert parent(frontend_in) is roots[0]
    frontend_out = hop(spans, "frontend", "CLIENT")
    assert all(parent(s) is frontend_in for s in frontend_out)
    (reviews_in,) = hop(spans, "reviews", "SERVER")
    assert parent(reviews_in) in frontend_out
    (reviews_out,) = hop(spans, "reviews", "CLIENT")
    assert parent(reviews_out) is reviews_in
    (ratings_in,) = hop(spans, "ratings", "SERVER")
    assert parent(ratings_in) is reviews_out
    # gRPC to catalog is traced too: the frontend forwards the context as metadata.
    catalog_in = hop(spans, "catalog", "SERVER")
    assert all(parent(s) in frontend_out for s in catalog_in)
    # Each client span has its own server span.
    assert sorted(parent(s)["span_id"] for s in [reviews_in, *catalog_in]) == sorted(
        s["span_id"] for s in frontend_out
    )
    # One request: the same x-request-id on every hop (the apps forward it).
    assert len({s["attributes"]["guid:x-request-id"] for s in spans}) == 1
    assert roots[0]["attributes"]["test.id"] == test_id

    listed = shop.ami("traces", "--service", "ratings", "--limit", "50").stdout
    assert trace_id in listed
    shown = shop.ami("trace", trace_id).stdout.splitlines()
    assert shown[0].startswith(f"Trace {trace_id}  {len(spans)} span(s)")
    rows = shown[2:]
    assert len(rows) == len(spans)
    depth = {line.split()[1]: len(line) - len(line.lstrip()) for line in rows}
    # The waterfall indents each hop under the one that called it.
    assert depth[GATEWAY] < depth["frontend"] < depth["reviews"] < depth["ratings"]
    assert all("|" in line and "█" in line for line in rows)
    shop.delete("tracing-100.yaml")


def test_zero_sampling_records_nothing(shop: Shop) -> None:
    apply_tracing(shop, telemetry(0), "tracing-0.yaml")
    before = trace_ids(shop)
    quiet = str(uuid.uuid4())
    page(shop, quiet)
    # A request with `x-client-trace-id` is traced whatever the random sampling (Envoy's
    # client sampling, 100%); once its spans are in, the unsampled request's would be too.
    # Every hop follows the gateway's decision, which x-request-id carries.
    marker = str(uuid.uuid4())
    page(shop, marker, {"x-client-trace-id": marker})

    def marker_in() -> dict[str, Any] | None:
        found = traces_of_request(shop, marker)
        return found[0] if len(found) == 1 and complete(found[0]["spans"]) else None

    forced = wait_for(marker_in, SPANS_TIMEOUT_S)
    assert trace_ids(shop) - before == {forced["trace_id"]}
    assert traces_of_request(shop, quiet) == []
    shop.delete("tracing-0.yaml")


# --- forwarding and B3 in a harness mesh -----------------------------------------------

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC receiver standing for a collector the mesh forwards to."""

    def __init__(self) -> None:
        self.span_ids: set[str] = set()
        self._pool = futures.ThreadPoolExecutor(max_workers=2)
        self.server = grpc.server(self._pool)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                self.span_ids.update(s.span_id.hex() for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def stop(self) -> None:
        self.server.stop(None).wait(5)
        self._pool.shutdown(wait=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    try:
        yield r
    finally:
        r.stop()


def stored(mesh: Mesh, trace_id: str) -> list[Any]:
    return mesh._call(mesh.cp.traces.trace(trace_id))


def test_forwarding_sends_the_same_spans(tmp_path: Path, receiver: Receiver) -> None:
    mesh = Mesh(tmp_path, trace_forward=f"127.0.0.1:{receiver.port}").start()
    try:
        mesh.apply(SERVICE + "---\n" + telemetry(100))
        mesh.workload("reviews", {"app": "reviews"}, port=9080)
        client = mesh.client()
        mesh.wait_synced()
        trace_id = uuid.uuid4().hex
        parent = uuid.uuid4().hex[:16]
        with client.http() as http:
            r = http.get(
                "http://reviews:9080/",
                headers={"traceparent": f"00-{trace_id}-{parent}-01"},
            )
            assert r.status_code == 200
        spans = wait_for(lambda: (s := stored(mesh, trace_id)) and len(s) == 2 and s)
        assert {s.kind for s in spans} == {"CLIENT", "SERVER"}
        ids = {s.span_id for s in spans}
        wait_for(lambda: ids <= receiver.span_ids, SPANS_TIMEOUT_S)
    finally:
        mesh.stop()


def test_b3_headers_join_their_trace_with_the_zipkin_provider(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, zipkin=True).start()
    try:
        mesh.apply(SERVICE + "---\n" + telemetry(100, "zipkin"))
        server = mesh.workload("reviews", {"app": "reviews"}, port=9080)
        client = mesh.client()
        mesh.wait_synced()
        trace_id = uuid.uuid4().hex
        span_id = uuid.uuid4().hex[:16]
        with client.http() as http:
            r = http.get(
                "http://reviews:9080/b3",
                headers={"x-b3-traceid": trace_id, "x-b3-spanid": span_id, "x-b3-sampled": "1"},
            )
            assert r.status_code == 200
        # The app behind the server's sidecar gets the trace in both formats.
        assert server.backend is not None
        got = next(q for q in server.backend.requests if q.path == "/b3").headers
        assert got["x-b3-traceid"] == trace_id
        assert got["traceparent"].split("-")[1] == trace_id
        spans = wait_for(lambda: (s := stored(mesh, trace_id)) and len(s) == 2 and s)
        by_kind = {s.kind: s for s in spans}
        assert by_kind["CLIENT"].parent_span_id == span_id
        assert by_kind["CLIENT"].service == "client"
        assert by_kind["SERVER"].parent_span_id == by_kind["CLIENT"].span_id
        assert by_kind["SERVER"].service == "reviews"
        assert got["x-b3-spanid"] == by_kind["SERVER"].span_id
    finally:
        mesh.stop()
