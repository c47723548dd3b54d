"""Istio's standard metrics from real traffic through the example shop.

The real `ami up` runs the shop; pages go through the real gateway and sidecars; the
control plane's `/metrics` must count exactly what was sent, with Istio's labels, as the
source's and as the destination's proxy report it; a fault-injected 500 is counted with
its response flag; and a real Prometheus scrapes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import shopmesh
from tests.e2e.harness import free_port, wait_for
from tests.e2e.shopmesh import ROOT, TASKS, Shop

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

Labels = dict[str, str]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    yield from shopmesh.running(tmp_path_factory.mktemp("shop"))


def scrape(shop: Shop) -> str:
    with httpx.Client(trust_env=False, timeout=10) as http:
        r = http.get(shop.api + "/metrics", headers={"Authorization": f"Bearer {shop.token}"})
        r.raise_for_status()
        assert r.headers["content-type"].startswith("text/plain")
        return r.text


def total(text: str, name: str, **want: str) -> float:
    """The sum of the samples of `name` whose labels include `want`."""
    out = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in want.items()):
                out += sample.value
    return out


def samples(text: str, name: str, **want: str) -> list[Labels]:
    return [
        dict(s.labels)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in want.items())
    ]


FRONTEND_TO_REVIEWS = {
    "source_workload": "frontend",
    "source_workload_namespace": "default",
    "source_app": "frontend",
    "source_version": "v1",
    "destination_service": "reviews.default.svc.cluster.local",
    "destination_service_name": "reviews",
    "destination_service_namespace": "default",
    "destination_app": "reviews",
    "request_protocol": "http",
    "response_code": "200",
    "response_flags": "-",
}


def test_frontend_to_reviews_counted_by_both_sides_with_istio_labels(shop: Shop) -> None:
    before = scrape(shop)
    source_before = total(before, "istio_requests_total", reporter="source", **FRONTEND_TO_REVIEWS)
    dest_before = total(
        before, "istio_requests_total", reporter="destination", **FRONTEND_TO_REVIEWS
    )
    n = 12
    for _ in range(n):
        shop.page()

    def counted() -> str | None:
        text = scrape(shop)
        src = total(text, "istio_requests_total", reporter="source", **FRONTEND_TO_REVIEWS)
        dst = total(text, "istio_requests_total", reporter="destination", **FRONTEND_TO_REVIEWS)
        return text if (src - source_before, dst - dest_before) == (n, n) else None

    text = wait_for(counted, timeout=30)
    # The exact labels, as each side reports them.
    (src,) = {
        tuple(sorted(s.items()))
        for s in samples(text, "istio_requests_total", reporter="source", **FRONTEND_TO_REVIEWS)
        if s["destination_version"] == "v1"
    } or {()}
    src_labels = dict(src)
    assert src_labels["source_principal"] == "spiffe://cluster.local/ns/default/sa/shop-frontend"
    assert src_labels["destination_workload"] == "reviews-v1"
    assert src_labels["destination_principal"] == (
        "spiffe://cluster.local/ns/default/sa/shop-reviews"
    )
    assert src_labels["connection_security_policy"] == "unknown"
    assert src_labels["grpc_response_status"] == ""
    dst_samples = samples(
        text, "istio_requests_total", reporter="destination", **FRONTEND_TO_REVIEWS
    )
    assert {s["connection_security_policy"] for s in dst_samples} == {"mutual_tls"}
    assert {s["source_principal"] for s in dst_samples} == {
        "spiffe://cluster.local/ns/default/sa/shop-frontend"
    }
    assert {s["destination_workload"] for s in dst_samples} <= {
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    }
    # The histograms count the same requests.
    assert total(
        text, "istio_request_duration_milliseconds_count", reporter="source", **FRONTEND_TO_REVIEWS
    ) == total(text, "istio_requests_total", reporter="source", **FRONTEND_TO_REVIEWS)
    assert (
        total(text, "istio_response_bytes_sum", reporter="destination", **FRONTEND_TO_REVIEWS) > 0
    )
    # The gateway is the frontend's caller.
    assert (
        total(
            text,
            "istio_requests_total",
            reporter="destination",
            source_workload="istio-ingressgateway",
            destination_workload="frontend",
        )
        >= n
    )


def test_grpc_calls_carry_their_status(shop: Shop) -> None:
    shop.page()

    def grpc_counted() -> bool:
        return (
            total(
                scrape(shop),
                "istio_requests_total",
                reporter="source",
                source_workload="frontend",
                destination_service_name="catalog",
                request_protocol="grpc",
                grpc_response_status="0",
            )
            > 0
        )

    wait_for(grpc_counted, timeout=30)


def test_fault_injected_500_counted_with_its_flag(shop: Shop) -> None:
    task = TASKS / "ratings-abort-jason.yaml"
    shop.ami("apply", "-f", str(task))
    shop.synced()
    want = {
        "reporter": "source",
        "source_app": "reviews",
        "source_version": "v2",
        "destination_service_name": "ratings",
        "response_code": "500",
        "response_flags": "FI",
    }
    try:
        before = total(scrape(shop), "istio_requests_total", **want)
        m = 5
        for _ in range(m):
            assert "Ratings service is currently unavailable" in shop.page("jason")
        wait_for(
            lambda: total(scrape(shop), "istio_requests_total", **want) - before == m,
            timeout=30,
        )
    finally:
        shop.ami("delete", "-f", str(task), check=False)
        shop.synced()


def test_real_prometheus_scrapes_the_control_plane(shop: Shop, tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "Prometheus is missing: `make test-deps` installs Debian's package"
    token_file = tmp_path / "token"
    token_file.write_text(shop.token)
    target = shop.api.split("://", 1)[1].rstrip("/")
    (tmp_path / "prometheus.yml").write_text(
        f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: ami
    metrics_path: /metrics
    authorization: {{type: Bearer, credentials_file: {token_file}}}
    static_configs: [{{targets: ["{target}"]}}]
"""
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        n = 7
        query = (
            'sum(istio_requests_total{reporter="destination",destination_app="ratings",'
            'source_app="reviews",response_code="200"})'
        )

        def value() -> float | None:
            try:
                with httpx.Client(trust_env=False, timeout=5) as http:
                    r = http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
            except httpx.HTTPError:
                return None
            result = r.json()["data"]["result"] if r.status_code == 200 else []
            return float(result[0]["value"][1]) if result else None

        def expected() -> float:
            return total(
                scrape(shop),
                "istio_requests_total",
                reporter="destination",
                destination_app="ratings",
                source_app="reviews",
                response_code="200",
            )

        for _ in range(n):
            shop.page()
        # Prometheus reports the control plane's own count once it has scraped it.
        # (reviews v1 shows no stars, so not every page calls ratings.)
        wait_for(lambda: expected() > 0 and value() == expected(), timeout=60)

        # Every query of the Grafana dashboard parses and runs; the per-service request
        # rate has the shop's services.
        def run(expr: str) -> list[dict[str, object]]:
            expr = expr.replace("$__rate_interval", "1m")
            expr = expr.replace("$namespace", ".*").replace("$service", ".*")
            with httpx.Client(trust_env=False, timeout=5) as http:
                r = http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr})
            body = r.json()
            assert body["status"] == "success", (expr, body)
            result: list[dict[str, object]] = body["data"]["result"]
            return result

        dashboard = json.loads((ROOT / "deploy" / "grafana" / "ami-istio-mesh.json").read_text())
        exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}
        assert len(exprs) >= 10
        for targets in exprs.values():
            for expr in targets:
                run(expr)
        (by_service,) = exprs["Requests by service"]
        wait_for(
            lambda: (
                {"reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local"}
                <= {str(r["metric"]["destination_service"]) for r in run(by_service)}
            ),  # type: ignore[index]
            timeout=30,
        )
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_top_and_graph_show_the_traffic(shop: Shop) -> None:
    for _ in range(5):
        shop.page()

    def reviews_rows() -> list[dict[str, object]]:
        rows = json.loads(shop.ami("top", "--once", "-o", "json", "--window", "120").stdout)
        return [r for r in rows if str(r["name"]).startswith("reviews-") and r["requests"]]

    rows = wait_for(reviews_rows, timeout=30)
    assert all(r["success_rate"] == 1.0 and r["p99_ms"] is not None for r in rows), rows
    table = shop.ami("top", "--once", "--window", "120").stdout
    assert "frontend" in table and "SUCCESS" in table
    graph = shop.api_get("/api/v1/graph?window=120")
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    host = "reviews.default.svc.cluster.local"
    caller = edges[("workload:default/frontend", f"service:{host}")]
    assert caller["mtls"] is True and caller["requests"] >= 5
    assert (
        "workload:istio-system/istio-ingressgateway",
        "service:frontend.default.svc.cluster.local",
    ) in edges
