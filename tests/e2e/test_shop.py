"""`ami up examples/shop` end to end: the page, the tasks, restarts, live edits, gRPC.

One mesh for the module: a copy of examples/shop (so live edits do not touch the
repository) run by the real `ami up` in a subprocess, with its own state directory.
Every check goes through the gateway and the sidecars, as a user's browser would.
"""

from __future__ import annotations

import json
import math
import ssl
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e import shopmesh
from tests.e2e.shopmesh import TASKS, Shop, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def reviews_version(page: str) -> str:
    for v in ("v1", "v2", "v3"):
        if f"reviews-{v}" in page:
            return v
    return "none"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    shop = shopmesh.start(tmp_path_factory.mktemp("shop"))
    try:
        yield shop
        # `ami down` stops everything gracefully and leaves no process behind.
        descendants = psutil.Process(shop.proc.pid).children(recursive=True)
        # The control plane, the node agent, the JetStream server (the shop has a
        # Broker), and an Envoy and an app per instance (the workloads', the broker's,
        # and the serverless ones' while they run); the gateway has no app.
        rows = shop.api_get("/api/v1/status")["instances"]
        sidecars = [r for r in rows if r["kind"] == "sidecar"]
        assert len(sidecars) >= 12
        assert len(descendants) == 3 + 2 * len(sidecars) + 1
        shop.down()
        _gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], [p.pid for p in alive]
        leftovers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(str(shop.state) in part for part in (p.info["cmdline"] or []))
        ]
        assert leftovers == []
    finally:
        shop.kill()


def test_page_shows_product_reviews_and_ratings(shop: Shop) -> None:
    # No VirtualService for reviews: the three versions share the traffic. Envoy picks
    # among them at random (least request of two), so 12 pages miss one version about
    # 2% of the time; 30 pages, about once in 60 000 runs.
    pages = [shop.page() for _ in range(30)]
    assert all("The Late Train" in p for p in pages)  # product, from catalog over gRPC
    versions = Counter(reviews_version(p) for p in pages)
    assert set(versions) == {"v1", "v2", "v3"}, versions
    starred = [p for p in pages if reviews_version(p) in ("v2", "v3")]
    assert all("★" in p for p in starred)
    assert any("stars-black" in p for p in starred) and any("stars-red" in p for p in starred)


def test_https_with_a_certificate_from_the_mesh_ca(shop: Shop) -> None:
    info = json.loads((shop.state / "mesh.json").read_text())
    (url,) = [u for u in info["gateway_urls"] if u.startswith("https://")]
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    root = shop.state / "ca" / "root-cert.pem"
    # credentialName shop-tls: issued by the mesh CA for localhost and 127.0.0.1.
    for base in (f"https://localhost:{port}/", url):
        context = ssl.create_default_context(cafile=str(root))
        with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
            response = https.get(base + "productpage")
        assert response.status_code == 200, response.text[:500]
        assert "The Late Train" in response.text
    # Not any certificate: a client trusting only another CA refuses it.
    with (
        httpx.Client(verify=True, trust_env=False, timeout=10.0) as https,
        pytest.raises(httpx.ConnectError),
    ):
        https.get(url + "productpage")


def apply_task(shop: Shop, name: str) -> Iterator[None]:
    shop.ami("apply", "-f", str(TASKS / name))
    shop.synced()
    try:
        yield
    finally:
        shop.ami("delete", "-f", str(TASKS / name), check=False)
        shop.synced()


@pytest.fixture
def task(shop: Shop, request: pytest.FixtureRequest) -> Iterator[None]:
    yield from apply_task(shop, request.param)


@pytest.mark.parametrize("task", ["virtual-service-all-v1.yaml"], indirect=True)
def test_all_v1(shop: Shop, task: None) -> None:
    assert {reviews_version(shop.page()) for _ in range(15)} == {"v1"}


@pytest.mark.parametrize("task", ["reviews-jason-v2.yaml"], indirect=True)
def test_jason_sees_v2(shop: Shop, task: None) -> None:
    assert {reviews_version(shop.page("jason")) for _ in range(10)} == {"v2"}
    assert {reviews_version(shop.page("bob")) for _ in range(10)} == {"v1"}


@pytest.mark.parametrize("task", ["reviews-80-20.yaml"], indirect=True)
def test_canary_80_20(shop: Shop, task: None) -> None:
    n = 200
    versions = Counter(reviews_version(shop.page()) for _ in range(n))
    assert set(versions) <= {"v1", "v3"}, versions
    # Binomial bound, 5 sigma: a correct split never fails it, a wrong one does.
    sigma = math.sqrt(n * 0.2 * 0.8)
    assert abs(versions["v3"] - 0.2 * n) < 5 * sigma, versions


@pytest.mark.parametrize("task", ["ratings-abort-jason.yaml"], indirect=True)
def test_fault_abort_shows_ratings_unavailable(shop: Shop, task: None) -> None:
    page = shop.page("jason")
    assert reviews_version(page) == "v2"
    assert "Ratings service is currently unavailable" in page
    assert "Ratings service is currently unavailable" not in shop.page("bob")


@pytest.mark.parametrize("task", ["reviews-timeout.yaml"], indirect=True)
def test_request_timeout(shop: Shop, task: None) -> None:
    # Ratings is delayed 2 s and reviews times out after 0.5 s: the page comes back
    # with reviews unavailable, which it could only show if the timeout fired first.
    started = time.monotonic()
    page = shop.page()
    elapsed = time.monotonic() - started
    assert "product reviews are currently unavailable" in page
    assert elapsed >= 0.5  # the route waited for its timeout


def test_grpc_through_both_sidecars_and_grpc_web_through_the_gateway(shop: Shop) -> None:
    proxies = {p["workload"]: p for p in shop.api_get("/api/v1/proxies")["proxies"]}
    frontend = proxies["frontend"]["admin_port"]
    catalog = proxies["catalog"]["admin_port"]

    def grpc_requests(admin: int, stat: str) -> int:
        with httpx.Client(trust_env=False) as http:
            text = http.get(f"http://127.0.0.1:{admin}/stats", params={"filter": stat}).text
        return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip())

    out_stat = (
        r"^cluster\.outbound\|9090\|\|catalog\.default\.svc\.cluster\.local\.upstream_rq_total$"
    )
    in_stat = r"^cluster\.inbound\|9090\|\|\.upstream_rq_total$"
    before = grpc_requests(frontend, out_stat), grpc_requests(catalog, in_stat)
    shop.page()
    after = grpc_requests(frontend, out_stat), grpc_requests(catalog, in_stat)
    assert after[0] > before[0] and after[1] > before[1]

    sys.path.insert(0, str(shop.config / "apps"))
    try:
        from shopproto import catalog_pb2  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    message = catalog_pb2.GetProductRequest(id=1).SerializeToString()
    body = b"\x00" + struct.pack(">I", len(message)) + message
    with httpx.Client(trust_env=False, timeout=10) as http:
        r = http.post(
            shop.gateway + "catalog.Catalog/GetProduct",
            content=body,
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
    assert r.status_code == 200, r.text
    flag, length = r.content[0], struct.unpack(">I", r.content[1:5])[0]
    assert flag == 0
    product = catalog_pb2.Product.FromString(r.content[5 : 5 + length])
    assert product.title == "The Late Train"
    assert b"grpc-status:0" in r.content[5 + length :].replace(b" ", b"")


def test_killed_instance_restarts_and_the_page_keeps_working(shop: Shop) -> None:
    def reviews_v1() -> dict[str, Any]:
        instances = shop.api_get("/api/v1/status")["instances"]
        return next(i for i in instances if i["workload"] == "reviews-v1")

    before = reviews_v1()
    app = psutil.Process(before["pid"])  # the status names the app's own process
    assert "reviews" in " ".join(app.cmdline())
    app.kill()
    # Retries move requests that hit the dead instance to another version.
    for _ in range(20):
        page = shop.page()
        assert "The Late Train" in page and reviews_version(page) != "none"
    restarted = wait_for(
        lambda: (i := reviews_v1())["restarts"] == before["restarts"] + 1 and i["ready"] and i
    )
    assert restarted["restarts"] == before["restarts"] + 1
    status = shop.ami("status").stdout
    row = next(line for line in status.splitlines() if line.startswith("reviews-v1 "))
    assert f" {before['restarts'] + 1} " in row
    wait_for(lambda: "v1" in {reviews_version(shop.page()) for _ in range(6)})


def test_edit_live_and_a_broken_file_keeps_the_old_routing(shop: Shop) -> None:
    route = shop.config / "mesh" / "zz-reviews-v3.yaml"
    all_v3 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {host: reviews, subset: v3}
"""
    route.write_text(all_v3)
    try:
        wait_for(lambda: {reviews_version(shop.page()) for _ in range(5)} == {"v3"})
        route.write_text(all_v3.replace("subset: v3}", "subset: v3}\n          weight: -1"))
        errors = wait_for(lambda: shop.api_get("/api/v1/status")["config_errors"])
        assert any(
            "zz-reviews-v3.yaml" in e and "spec.http[0].route[0].weight" in e for e in errors
        )
        status = shop.ami("status").stdout
        assert "zz-reviews-v3.yaml" in status and "weight" in status
        validate = shop.ami("validate", str(route), check=False)
        assert validate.returncode == 1
        assert "spec.http[0].route[0].weight" in validate.stderr
        # The last good config keeps serving.
        assert {reviews_version(shop.page()) for _ in range(10)} == {"v3"}
    finally:
        route.unlink()
    wait_for(lambda: not shop.api_get("/api/v1/status")["config_errors"])
    shop.synced()


@pytest.mark.parametrize("task", ["blue-green.yaml"], indirect=True)
def test_blue_green_switch(shop: Shop, task: None) -> None:
    pages = [shop.page() for _ in range(10)]
    assert all("frontend-v2 (green)" in p for p in pages)


@pytest.mark.parametrize("task", ["mirroring.yaml"], indirect=True)
def test_mirroring_copies_to_v2(shop: Shop, task: None) -> None:
    log = shop.state / "logs" / "reviews-v2-0.default.log"
    before = log.read_text().count("-shadow")
    assert {reviews_version(shop.page()) for _ in range(10)} == {"v1"}
    wait_for(lambda: log.read_text().count("-shadow") >= before + 10)


def test_the_serverless_recommendations_start_at_zero_and_answer(shop: Shop) -> None:
    """The shop's Knative Service starts with no instance; its first request waits at
    the activator while one starts, and is answered by the revision."""
    rows = shop.api_get("/api/v1/status")["instances"]
    assert not [r for r in rows if r["workload"].startswith("recommendations-")]
    with httpx.Client(trust_env=False, timeout=30) as http:
        r = http.get(
            shop.gateway + "recommendations/1",
            headers={"Host": "recommendations.default.shop.example"},
        )
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 1, "also": [2, 4], "revision": "recommendations-00001"}
    rows = shop.api_get("/api/v1/status")["instances"]
    assert [r["workload"] for r in rows if r["workload"].startswith("recommendations-")] == [
        "recommendations-00001"
    ]


def test_a_paid_order_is_an_event_that_is_shipped_and_invoiced_or_refunded(shop: Shop) -> None:
    """Payment sends each paid order to the broker as an `order.placed` event (its
    SinkBinding gives it the broker's address). Shipping takes it and answers with an
    `order.shipped` event, which the broker delivers to invoice, a Knative Service at
    zero until then. An order over shipping's limit is retried, then dead-lettered to
    payment's /refunds."""
    rows = shop.api_get("/api/v1/status")["instances"]
    assert not [r for r in rows if r["workload"].startswith("invoice-")]
    with httpx.Client(trust_env=False, timeout=30) as http:
        small = http.post(shop.gateway + "checkout", params={"item": 2})
        assert small.status_code == 200 and "Paid" in small.text, small.text
        for _ in range(6):
            http.post(shop.gateway + "cart/add", params={"item": 3, "u": "events"})
        big = http.post(shop.gateway + "checkout", params={"u": "events"})
        assert big.status_code == 200 and "Paid" in big.text, big.text

    def outcomes() -> dict[str, list[tuple[str, dict[str, Any]]]] | None:
        out = shop.ami("events", "default", "--last", "100", "-o", "json").stdout
        by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for event in json.loads(out):
            for d in event["deliveries"]:
                if d["outcome"] in ("delivered", "dead-lettered"):
                    by_type.setdefault(event["type"], []).append((event["id"], d))
        placed, shipped = by_type.get("order.placed", []), by_type.get("order.shipped", [])
        return by_type if len(placed) == 2 and len(shipped) == 1 else None

    by_type = wait_for(outcomes, timeout=120)
    placed = {d["outcome"]: (event_id, d) for event_id, d in by_type["order.placed"]}
    _, shipped_order = placed["delivered"]
    assert shipped_order == {
        "trigger": "shipping",
        "attempts": 1,
        "status": 200,
        "outcome": "delivered",
    }
    refused_id, refused = placed["dead-lettered"]
    # The trigger's delivery: three retries after the first attempt.
    assert refused == {
        "trigger": "shipping",
        "attempts": 4,
        "status": 500,
        "outcome": "dead-lettered",
    }
    ((_, invoiced),) = by_type["order.shipped"]
    assert invoiced == {"trigger": "invoice", "attempts": 1, "status": 202, "outcome": "delivered"}
    rows = shop.api_get("/api/v1/status")["instances"]
    assert [r["workload"] for r in rows if r["workload"].startswith("invoice-")] == [
        "invoice-00001"
    ]
    logs = shop.state / "logs"
    payment_log = (logs / "payment-0.default.log").read_text()
    assert f"refund 126.0 for order {refused_id}" in payment_log
    invoice_log = (logs / "invoice-00001-0.default.log").read_text()
    assert "invoice for order" in invoice_log
