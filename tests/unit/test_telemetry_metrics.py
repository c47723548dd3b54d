"""Istio metrics from what proxies' stats sinks send: labels, histograms, graph. Pure
parts, on OTLP exports built by hand; tests/e2e/test_metrics.py checks them on real
traffic through real Envoys."""

from __future__ import annotations

import bisect
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance, build_snapshot
from amimesh.resources import parse_documents
from amimesh.telemetry import golden
from amimesh.telemetry.labels import LABELS, TCP_LABELS
from amimesh.telemetry.metrics import Histogram, MeshMetrics
from amimesh.telemetry.metrics_receiver import Directories, ProxyReporter
from amimesh.translate import metrics_log as ml
from amimesh.translate.metrics_log import BYTES_BUCKETS, DURATION_BUCKETS

SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""
FRONTEND = Proxy(
    id="frontend-0.default",
    workload="frontend",
    labels={"app": "frontend", "version": "v1"},
    service_account="shop-frontend",
    outbound_port=15001,
)
REVIEWS = Proxy(
    id="reviews-v1-0.default",
    workload="reviews-v1",
    labels={"app": "reviews", "version": "v1"},
    service_account="shop-reviews",
)
HOST = "reviews.default.svc.cluster.local"


def snapshot() -> Any:
    result = parse_documents(SERVICES, "s.yaml")
    assert result.ok
    inst = Instance(
        id=REVIEWS.id,
        workload="reviews-v1",
        labels={"app": "reviews", "version": "v1"},
        service_account="shop-reviews",
        ports={9080: 20001},
    )
    return build_snapshot(result.resources, [inst])


class Reporter:
    """Sends hand-built exports as one proxy's stats sink would."""

    def __init__(self, metrics: MeshMetrics, proxy: Proxy, direction: str) -> None:
        snap = snapshot()
        dirs = Directories(lambda: snap, lambda: [FRONTEND, REVIEWS], "cluster.local")
        self.rep = ProxyReporter(metrics, dirs, proxy.id)
        self.direction = direction

    def http(self, n: int = 1, ms: int = 12, **tags: str) -> None:
        req = metrics_service_pb2.ExportMetricsServiceRequest()
        metrics = req.resource_metrics.add().scope_metrics.add().metrics
        for metric, bounds, value in (
            (ml.REQUEST_DURATION, DURATION_BUCKETS, ms),
            (ml.REQUEST_BYTES, BYTES_BUCKETS, 100),
            (ml.RESPONSE_BYTES, BYTES_BUCKETS, 900),
        ):
            m = metrics.add(name=ml.metric_name(self.direction, metric))
            point = m.histogram.data_points.add(count=n, sum=n * value)
            point.explicit_bounds.extend(bounds)
            counts = [0] * (len(bounds) + 1)
            counts[bisect.bisect_left(bounds, value)] = n
            point.bucket_counts.extend(counts)
            for k, v in tags.items():
                point.attributes.add(key=k).value.string_value = v
        self.rep.ingest(req)

    def tcp(self, metric: str, value: int, **tags: str) -> None:
        req = metrics_service_pb2.ExportMetricsServiceRequest()
        metrics = req.resource_metrics.add().scope_metrics.add().metrics
        m = metrics.add(name=ml.metric_name(self.direction, metric))
        point = m.sum.data_points.add(as_int=value)
        for k, v in tags.items():
            point.attributes.add(key=k).value.string_value = v
        self.rep.ingest(req)


def outbound(**kw: Any) -> dict[str, str]:
    """The tags of an outbound request to reviews-v1 (upstream port 20001)."""
    tags = {"code": "200", "grpc": "", "flags": "-", "host": "127.0.0.1:20001"}
    tags["cluster"] = f"outbound|9080|v1|{HOST}"
    return {**tags, **kw}


def inbound(**kw: Any) -> dict[str, str]:
    """The tags of an inbound request at reviews-v1's port 20001, in plain text."""
    tags = {"code": "200", "grpc": "", "flags": "-", "peer": "", "principal": ""}
    return {**tags, "local": "127.0.0.1:20001", **kw}


FRONTEND_ID = "spiffe://cluster.local/ns/default/sa/shop-frontend"


def only_key(metrics: MeshMetrics) -> dict[str, str]:
    (key,) = metrics.http
    return dict(zip(LABELS, key, strict=True))


def test_source_reporter_names_the_endpoint_it_reached() -> None:
    m = MeshMetrics()
    Reporter(m, FRONTEND, "outbound").http(**outbound())
    labels = only_key(m)
    assert labels == {
        "reporter": "source",
        "source_workload": "frontend",
        "source_workload_namespace": "default",
        "source_principal": FRONTEND_ID,
        "source_app": "frontend",
        "source_version": "v1",
        "destination_workload": "reviews-v1",
        "destination_workload_namespace": "default",
        "destination_principal": "spiffe://cluster.local/ns/default/sa/shop-reviews",
        "destination_app": "reviews",
        "destination_version": "v1",
        "destination_service": HOST,
        "destination_service_name": "reviews",
        "destination_service_namespace": "default",
        "request_protocol": "http",
        "response_code": "200",
        "grpc_response_status": "",
        "response_flags": "-",
        "connection_security_policy": "unknown",
    }


def test_destination_reporter_reads_the_peer_header_and_certificate() -> None:
    m = MeshMetrics()
    Reporter(m, REVIEWS, "inbound").http(**inbound(peer="frontend.default", principal=FRONTEND_ID))
    labels = only_key(m)
    assert labels["reporter"] == "destination"
    assert (labels["source_workload"], labels["source_app"], labels["source_version"]) == (
        "frontend",
        "frontend",
        "v1",
    )
    assert labels["source_principal"] == FRONTEND_ID
    assert labels["destination_workload"] == "reviews-v1"
    assert labels["destination_service"] == HOST
    assert labels["connection_security_policy"] == "mutual_tls"


def test_without_a_peer_header_the_certificate_names_the_source() -> None:
    m = MeshMetrics()
    Reporter(m, REVIEWS, "inbound").http(**inbound(principal=FRONTEND_ID))
    assert only_key(m)["source_workload"] == "frontend"


def test_plain_text_inbound_is_security_policy_none_with_unknown_principals() -> None:
    m = MeshMetrics()
    Reporter(m, REVIEWS, "inbound").http(**inbound())
    labels = only_key(m)
    assert labels["connection_security_policy"] == "none"
    assert labels["source_workload"] == "unknown"
    assert labels["source_principal"] == "unknown"
    assert labels["destination_principal"] == "unknown"


def test_fault_and_grpc_status() -> None:
    m = MeshMetrics()
    r = Reporter(m, FRONTEND, "outbound")
    r.http(**outbound(code="500", flags="FI", host="", cluster=f"outbound|9080||{HOST}"))
    labels = only_key(m)
    assert (labels["response_code"], labels["response_flags"]) == ("500", "FI")
    assert labels["destination_workload"] == "unknown"
    assert labels["destination_service"] == HOST
    m2 = MeshMetrics()
    Reporter(m2, FRONTEND, "outbound").http(**outbound(grpc="5"))
    labels = only_key(m2)
    assert (labels["request_protocol"], labels["grpc_response_status"]) == ("grpc", "5")


def test_unknown_proxy_and_foreign_metrics() -> None:
    m = MeshMetrics()
    r = Reporter(m, Proxy(id="ghost-0.default", workload="ghost"), "outbound")
    r.http(**outbound())
    assert only_key(m)["source_workload"] == "unknown"
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    sm.metrics.add(name="envoy.cluster.upstream_rq").sum.data_points.add(as_int=3)
    r.rep.ingest(req)
    assert len(m.http) == 1 and not m.tcp


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    h = Histogram(DURATION_BUCKETS)
    assert h.quantile(0.5) is None
    counts = [0] * (len(DURATION_BUCKETS) + 1)
    counts[bisect.bisect_left(DURATION_BUCKETS, 7)] = 100  # all in (5, 10]
    h.add_buckets(DURATION_BUCKETS, tuple(counts), 700.0)
    assert h.quantile(0.5) == pytest.approx(7.5)
    assert h.quantile(0.99) == pytest.approx(9.95)


def test_buckets_of_other_bounds_go_to_the_bucket_holding_their_bound() -> None:
    h = Histogram(DURATION_BUCKETS)
    h.add_buckets((1.0, 7.0), (2, 3, 4), 50.0)
    assert (h.counts[1], h.counts[3], h.counts[-1], h.sum) == (2, 3, 4, 50.0)


def test_exposition_counts_and_buckets() -> None:
    m = MeshMetrics()
    Reporter(m, FRONTEND, "outbound").http(n=3, ms=3, **outbound())
    text = generate_latest(m.registry).decode()
    found = {
        s.name: s
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("le") in (None, "5")
    }
    assert found["istio_requests_total"].value == 3
    assert found["istio_request_duration_milliseconds_bucket"].value == 3
    assert found["istio_request_bytes_sum"].value == 300
    assert found["istio_response_bytes_sum"].value == 2700


def test_tcp_counters() -> None:
    m = MeshMetrics()
    r = Reporter(m, FRONTEND, "outbound")
    tags = {"flags": "-", "host": "127.0.0.1:20001", "cluster": f"outbound|9080||{HOST}"}
    r.tcp(ml.TCP_OPENED, 2, **tags)
    r.tcp(ml.TCP_SENT, 20, **tags)
    r.tcp(ml.TCP_RECEIVED, 40, **tags)
    r.tcp(ml.TCP_CLOSED, 1, **tags)
    ((key, series),) = m.tcp.items()
    labels = dict(zip(TCP_LABELS, key, strict=True))
    assert (labels["request_protocol"], labels["destination_workload"]) == ("tcp", "reviews-v1")
    assert (series.sent, series.received, series.opened, series.closed) == (20, 40, 2, 1)


def test_graph_and_golden_metrics() -> None:
    m = MeshMetrics(clock=lambda: 1000.0)
    out = Reporter(m, FRONTEND, "outbound")
    out.http(n=9, **outbound())
    out.http(n=1, **outbound(code="503"))
    Reporter(m, REVIEWS, "inbound").http(
        n=10, **inbound(peer="frontend.default", principal=FRONTEND_ID)
    )
    window = m.window(60)
    labels = {("default", "frontend"): FRONTEND.labels, ("default", "reviews-v1"): REVIEWS.labels}
    g = golden.graph(window, 60, labels)
    ids = {n["id"] for n in g["nodes"]}
    assert ids == {"workload:default/frontend", "workload:default/reviews-v1", f"service:{HOST}"}
    edges = {(e["source"], e["target"]): e for e in g["edges"]}
    caller = edges[("workload:default/frontend", f"service:{HOST}")]
    assert (caller["requests"], caller["error_rate"], caller["mtls"]) == (10, 0.1, True)
    assert edges[(f"service:{HOST}", "workload:default/reviews-v1")]["mtls"] is True
    rows = {r["name"]: r for r in golden.by_workload(window, 60, labels)}
    assert rows["reviews-v1"]["requests"] == 10
    assert rows["reviews-v1"]["success_rate"] == 1.0
    assert rows["frontend"]["success_rate"] is None
    # Outside the window: nothing.
    later = MeshMetrics(clock=lambda: 1000.0)
    later.http, later._slots = m.http, m._slots
    later._clock = lambda: 2000.0
    assert later.window(60) == {}
