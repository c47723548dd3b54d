"""Istio metrics from access log entries: labels, flags, histograms, graph. Pure parts,
on entries built by hand; tests/e2e/test_metrics.py checks them on real traffic."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.data.accesslog.v3 import accesslog_pb2
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance, build_snapshot
from amimesh.resources import parse_documents
from amimesh.telemetry import flags, golden
from amimesh.telemetry.als import Directories, StreamReporter
from amimesh.telemetry.labels import LABELS, TCP_LABELS
from amimesh.telemetry.metrics import DURATION_BUCKETS, Histogram, MeshMetrics

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


def reporter(metrics: MeshMetrics, proxy: Proxy, direction: str) -> StreamReporter:
    snap = snapshot()
    dirs = Directories(lambda: snap, lambda: [FRONTEND, REVIEWS], "cluster.local")
    return StreamReporter(metrics, dirs, proxy, direction)


def entry(**kw: Any) -> accesslog_pb2.HTTPAccessLogEntry:
    e = accesslog_pb2.HTTPAccessLogEntry()
    c = e.common_properties
    c.time_to_last_downstream_tx_byte.FromMilliseconds(kw.get("ms", 12))
    e.request.authority = "reviews:9080"
    e.request.request_headers_bytes = 100
    e.response.response_code.value = kw.get("code", 200)
    e.response.response_body_bytes = 900
    for k, v in kw.get("headers", {}).items():
        e.request.request_headers[k] = v
    if "cluster" in kw:
        c.upstream_cluster = kw["cluster"]
    if "upstream" in kw:
        c.upstream_remote_address.socket_address.address = "127.0.0.1"
        c.upstream_remote_address.socket_address.port_value = kw["upstream"]
    if "local" in kw:
        c.downstream_local_address.socket_address.address = "127.0.0.1"
        c.downstream_local_address.socket_address.port_value = kw["local"]
    if "peer_uri" in kw:
        c.tls_properties.peer_certificate_properties.subject_alt_name.add(uri=kw["peer_uri"])
    if kw.get("fault"):
        c.response_flags.fault_injected = True
    return e


def only_key(metrics: MeshMetrics) -> dict[str, str]:
    (key,) = metrics.http
    return dict(zip(LABELS, key, strict=True))


def test_source_reporter_names_the_endpoint_it_reached() -> None:
    m = MeshMetrics()
    reporter(m, FRONTEND, "outbound").http(
        [entry(cluster=f"outbound|9080|v1|{HOST}", upstream=20001)]
    )
    labels = only_key(m)
    assert labels == {
        "reporter": "source",
        "source_workload": "frontend",
        "source_workload_namespace": "default",
        "source_principal": "spiffe://cluster.local/ns/default/sa/shop-frontend",
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
    frontend_id = "spiffe://cluster.local/ns/default/sa/shop-frontend"
    reporter(m, REVIEWS, "inbound").http(
        [entry(local=20001, headers={"x-ami-peer": "frontend.default"}, peer_uri=frontend_id)]
    )
    labels = only_key(m)
    assert labels["reporter"] == "destination"
    assert (labels["source_workload"], labels["source_app"], labels["source_version"]) == (
        "frontend",
        "frontend",
        "v1",
    )
    assert labels["source_principal"] == frontend_id
    assert labels["destination_workload"] == "reviews-v1"
    assert labels["destination_service"] == HOST
    assert labels["connection_security_policy"] == "mutual_tls"


def test_plain_text_inbound_is_security_policy_none_with_unknown_principals() -> None:
    m = MeshMetrics()
    reporter(m, REVIEWS, "inbound").http([entry(local=20001)])
    labels = only_key(m)
    assert labels["connection_security_policy"] == "none"
    assert labels["source_workload"] == "unknown"
    assert labels["source_principal"] == "unknown"
    assert labels["destination_principal"] == "unknown"


def test_fault_and_grpc_status() -> None:
    m = MeshMetrics()
    r = reporter(m, FRONTEND, "outbound")
    r.http([entry(cluster=f"outbound|9080||{HOST}", code=500, fault=True)])
    labels = only_key(m)
    assert (labels["response_code"], labels["response_flags"]) == ("500", "FI")
    assert labels["destination_workload"] == "unknown"
    g = entry(cluster=f"outbound|9080||{HOST}", headers={"content-type": "application/grpc"})
    g.response.response_trailers["grpc-status"] = "5"
    m2 = MeshMetrics()
    reporter(m2, FRONTEND, "outbound").http([g])
    labels = only_key(m2)
    assert (labels["request_protocol"], labels["grpc_response_status"]) == ("grpc", "5")


def test_short_flags_in_envoy_order() -> None:
    f = accesslog_pb2.ResponseFlags(no_healthy_upstream=True, upstream_retry_limit_exceeded=True)
    assert flags.short_form(f) == "UH,URX"
    assert flags.short_form(accesslog_pb2.ResponseFlags()) == "-"
    f = accesslog_pb2.ResponseFlags()
    f.unauthorized_details.SetInParent()
    assert flags.short_form(f) == "UAEX"


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    h = Histogram(DURATION_BUCKETS)
    assert h.quantile(0.5) is None
    for _ in range(100):
        h.observe(7)  # all in (5, 10]
    assert h.quantile(0.5) == pytest.approx(7.5)
    assert h.quantile(0.99) == pytest.approx(9.95)


def test_exposition_counts_and_buckets() -> None:
    m = MeshMetrics()
    r = reporter(m, FRONTEND, "outbound")
    r.http([entry(cluster=f"outbound|9080|v1|{HOST}", upstream=20001, ms=3)] * 3)
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


def test_tcp_entries() -> None:
    m = MeshMetrics()
    r = reporter(m, FRONTEND, "outbound")
    e = accesslog_pb2.TCPAccessLogEntry()
    e.common_properties.upstream_cluster = f"outbound|9080||{HOST}"
    e.connection_properties.sent_bytes = 10
    e.connection_properties.received_bytes = 20
    r.tcp([e, e])
    ((key, series),) = m.tcp.items()
    assert dict(zip(TCP_LABELS, key, strict=True))["request_protocol"] == "tcp"
    assert (series.sent, series.received, series.opened, series.closed) == (20, 40, 2, 2)


def test_graph_and_golden_metrics() -> None:
    m = MeshMetrics(clock=lambda: 1000.0)
    frontend_id = "spiffe://cluster.local/ns/default/sa/shop-frontend"
    reporter(m, FRONTEND, "outbound").http(
        [entry(cluster=f"outbound|9080|v1|{HOST}", upstream=20001)] * 9
        + [entry(cluster=f"outbound|9080|v1|{HOST}", upstream=20001, code=503)]
    )
    reporter(m, REVIEWS, "inbound").http(
        [entry(local=20001, headers={"x-ami-peer": "frontend.default"}, peer_uri=frontend_id)] * 10
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
