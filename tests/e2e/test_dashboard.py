"""The dashboard on the example shop, in headless Chromium (Debian's, through Playwright).

The real `ami up` runs the shop; a Telemetry samples every request; pages go through
the gateway the whole time the browser looks. The browser opens the URL `ami
dashboard --print-url` gives (the token signs it in, then leaves the address bar) and
must show: the service graph with the shop's workloads and services and a mutual-TLS
edge frontend → reviews; golden metrics for reviews; a trace opened from the list as a
waterfall of spans; the config; every proxy's xDS state. Screenshots go to the test's
directory and to test-output/ at the repository root.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import shopmesh
from tests.e2e.harness import wait_for
from tests.e2e.shopmesh import ROOT, Shop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-deps)"),
    pytest.mark.skipif(
        not (ROOT / "src/amimesh/dashboard/static/vendor/cytoscape.min.js").exists(),
        reason="cytoscape.js is not vendored: run tools/vendor_js.py (make venv does)",
    ),
]

TELEMETRY = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 100}]
"""
FRONTEND = "workload:default/frontend"
GATEWAY = "istio-ingressgateway"
OUTPUT = ROOT / "test-output"

# True once the graph has the shop's frontend and a reviews workload, and an edge from
# frontend to the reviews service.
GRAPH_READY = """() => {
  const g = window.amiGraph;
  if (!g) return false;
  const ids = g.nodes().map((n) => n.id());
  return ids.includes("workload:default/frontend")
    && ids.some((id) => id.startsWith("workload:default/reviews-"))
    && g.edges().some((e) => e.source().id() === "workload:default/frontend"
      && e.target().data("kind") === "service" && e.target().data("name") === "reviews");
}"""
FRONTEND_TO_REVIEWS = """() => {
  const e = window.amiGraph.edges().filter((e) => e.source().id() === "workload:default/frontend"
    && e.target().data("name") === "reviews")[0];
  return {mtls: e.data("mtls"), requests: e.data("requests"), style: e.style("line-style"),
          target: e.target().id()};
}"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    yield from shopmesh.running(tmp_path_factory.mktemp("shop"))


@contextlib.contextmanager
def traffic(shop: Shop) -> Iterator[None]:
    """Product pages through the gateway, a few a second, until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(trust_env=False, timeout=15) as http:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    http.get(shop.gateway + "productpage")
                stop.wait(0.2)

    thread = threading.Thread(target=run, name="shop-traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    for directory in (tmp_path, OUTPUT):
        page.screenshot(path=str(directory / name), full_page=True)


def test_dashboard_shows_the_shop(shop: Shop, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shop.apply(TELEMETRY, "telemetry.yaml")
    url = shop.ami("dashboard", "--print-url").stdout.strip()
    assert url.startswith(shop.api + "/dashboard/?token=")
    opened = shop.ami("dashboard", "--no-open")
    assert url in opened.stdout
    # Without the token the dashboard is refused, with a hint.
    with httpx.Client(trust_env=False, timeout=10) as http:
        refused = http.get(shop.api + "/dashboard/", headers={"Accept": "text/html"})
    assert refused.status_code == 401 and "ami dashboard" in refused.text

    problems: list[str] = []
    with traffic(shop), sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            assert page.url == shop.api + "/dashboard/"  # the token left the address bar

            # The live graph: the shop's workloads and services, frontend → reviews in mTLS.
            # Polled from here: `wait_for_function` would evaluate strings inside the
            # page, which its CSP forbids (see `until` in tests/unit/test_dashboard_web.py).
            wait_for(lambda: page.evaluate(GRAPH_READY), timeout=90)
            edge = page.evaluate(FRONTEND_TO_REVIEWS)
            assert edge["target"] == "service:reviews.default.svc.cluster.local", edge
            assert edge["requests"] > 0 and edge["mtls"] is True, edge
            assert edge["style"] == "solid", edge
            ids = page.evaluate("window.amiGraph.nodes().map((n) => n.id())")
            assert {FRONTEND, "service:frontend.default.svc.cluster.local"} <= set(ids), ids
            assert any(i.startswith("workload:istio-system/istio-ingressgateway") for i in ids)
            page.evaluate(
                "() => { window.amiGraph.getElementById("
                "'service:reviews.default.svc.cluster.local').emit('tap'); }"
            )
            page.wait_for_selector("#graph-detail h3:has-text('reviews')")
            screenshot(page, tmp_path, "dashboard.png")

            # Golden metrics per service and per workload.
            page.click("#nav a[data-view=metrics]")
            row = page.locator('#services-table tr[data-host="reviews.default.svc.cluster.local"]')
            row.wait_for(timeout=30_000)
            assert "%" in row.inner_text()
            page.wait_for_selector("#workloads-table td:text-is('frontend')")

            # Traces: search until the sampled pages arrive, open one that started at the
            # gateway: its waterfall (spans still arriving show on the next refresh).
            page.click("#nav a[data-view=traces]")
            first = (
                page.locator("#traces-table tbody tr[data-trace-id]")
                .filter(has=page.locator("td:nth-child(2) strong", has_text=GATEWAY))
                .first
            )

            def listed() -> bool:
                page.click("#trace-search button[type=submit]")
                page.wait_for_timeout(1000)
                return first.count() > 0

            wait_for(listed, timeout=60)
            trace_id = first.get_attribute("data-trace-id")
            first.click()
            page.wait_for_selector("#waterfall .span-row")
            assert page.url.endswith(f"#trace/{trace_id}")
            for service in (GATEWAY, "frontend", "reviews"):
                page.locator(f"#waterfall .span-row .svc:text-is('{service}')").first.wait_for(
                    timeout=30_000
                )
            page.locator("#waterfall .span-row").first.click()
            page.wait_for_selector("#waterfall .span-attrs")
            screenshot(page, tmp_path, "dashboard-trace.png")

            # The applied config (the Telemetry among it) and the analysis.
            page.click("#nav a[data-view=config]")
            page.wait_for_selector("#resources-table td:text-is('mesh-default')")
            page.wait_for_selector("#findings-table tbody tr")
            assert "none" in page.inner_text("#config-errors")

            # Every proxy's xDS state: the shop's sidecars and the gateway, synced.
            page.click("#nav a[data-view=proxies]")
            page.wait_for_selector("#proxies-table .chip.SYNCED")
            proxies = page.locator("#proxies-table tbody tr").all_inner_texts()
            assert any(p.startswith("frontend") for p in proxies), proxies
            assert not any("NACK" in p for p in proxies), proxies
        finally:
            browser.close()
    assert problems == []
