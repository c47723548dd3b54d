"""The dashboard through the control plane's HTTP API: sign-in by `?token=`, the
cookie (GET and HEAD only), the bearer token, static files and the page's CSP; then
the page itself in headless Chromium against a small fake API with the documented
shapes (graph, metrics, traces, Knative revisions, Tekton runs), so the page is checked
without a running mesh."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import test_utils, web

from amimesh.controlplane.api import _auth_middleware, make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.dashboard import web as dashboard_web

if TYPE_CHECKING:
    from playwright.async_api import Page

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COOKIE = dashboard_web.cookie_name(TOKEN)
HTML = {"Accept": "text/html,application/xhtml+xml"}
STATIC = dashboard_web.STATIC
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VENDORED = (STATIC / "vendor" / "cytoscape.min.js").exists()
WAIT_S, POLL_S = 30.0, 0.1  # waiting for the page to show something, as Playwright does

Client = test_utils.TestClient[Any, Any]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01))
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


def cookie_header(value: str = TOKEN, name: str = COOKIE) -> dict[str, str]:
    return {"Cookie": f"{name}={value}"}


# --- auth -------------------------------------------------------------------------------


async def test_no_token_gets_401_with_a_hint(client: Client) -> None:
    async with client.get("/dashboard/", headers=HTML) as resp:
        assert resp.status == 401
        assert resp.content_type == "text/html"
        assert "ami dashboard" in await resp.text()
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    async with client.get("/dashboard/static/app.js") as resp:
        assert resp.status == 401
        assert "ami dashboard" in (await resp.json())["error"]
    # The API keeps its own message.
    async with client.get("/api/v1/status") as resp:
        assert resp.status == 401
        assert "Bearer" in (await resp.json())["error"]


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard"])
async def test_wrong_token_in_the_url_gets_401(client: Client, path: str) -> None:
    async with client.get(path, params={"token": "nope"}, allow_redirects=False) as resp:
        assert resp.status == 401
        assert "Set-Cookie" not in resp.headers
    async with client.get(path, params={"token": ""}, allow_redirects=False) as resp:
        assert resp.status == 401


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard"])
async def test_right_token_sets_the_cookie_and_drops_it_from_the_url(
    client: Client, path: str
) -> None:
    async with client.get(path, params={"token": TOKEN}, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/dashboard/"
        assert resp.headers["Cache-Control"] == "no-store"
        (set_cookie,) = resp.headers.getall("Set-Cookie")
    name, _, rest = set_cookie.partition("=")
    value, *attributes = [a.strip() for a in rest.split(";")]
    assert name == COOKIE and value == TOKEN
    lowered = {a.lower() for a in attributes}
    assert {"httponly", "samesite=strict", "path=/"} <= lowered
    assert not any(a.startswith(("max-age", "expires", "domain")) for a in lowered)


async def test_the_cookie_signs_in_get_and_head_only(client: Client) -> None:
    async with client.get("/dashboard/", headers=cookie_header()) as resp:
        assert resp.status == 200
        assert "<title>Ami dashboard</title>" in await resp.text()
    async with client.head("/dashboard/", headers=cookie_header()) as resp:
        assert resp.status == 200
    async with client.get("/api/v1/status", headers=cookie_header()) as resp:
        assert resp.status == 200
        assert "proxies" in await resp.json()
    # Nothing that changes the mesh rides on the cookie.
    doc = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}]}\n"
    async with client.post("/api/v1/apply", data=doc, headers=cookie_header()) as resp:
        assert resp.status == 401
    async with client.delete("/api/v1/resources/svc/default/x", headers=cookie_header()) as resp:
        assert resp.status == 401
    async with client.put("/api/v1/instances/i", json={}, headers=cookie_header()) as resp:
        assert resp.status == 401


async def test_a_wrong_cookie_or_another_mesh_s_cookie_is_refused(client: Client) -> None:
    for headers in (
        cookie_header("nope"),
        cookie_header(TOKEN, dashboard_web.cookie_name("other")),
        cookie_header(""),
    ):
        async with client.get("/api/v1/status", headers=headers) as resp:
            assert resp.status == 401, headers
    assert dashboard_web.cookie_name("a") != dashboard_web.cookie_name("b")


async def test_the_bearer_token_still_works(client: Client) -> None:
    async with client.get("/dashboard/", headers=AUTH) as resp:
        assert resp.status == 200
    async with client.get("/api/v1/status", headers=AUTH) as resp:
        assert resp.status == 200
    doc = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}]}\n"
    async with client.post("/api/v1/apply", data=doc, headers=AUTH) as resp:
        assert resp.status == 200, await resp.text()


# --- the page and its files -------------------------------------------------------------


async def test_page_has_a_strict_csp(client: Client) -> None:
    async with client.get("/dashboard/", headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp


def test_page_has_no_inline_script_or_style() -> None:
    page = re.sub(r"<!--.*?-->", "", (STATIC / "index.html").read_text(), flags=re.S)
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag, tag
    assert re.findall(r"<script\b[^>]*>\s*[^<\s]", page) == []
    assert "<style" not in page
    assert not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    # cytoscape.js adds an inline <style> unless an element with this id exists.
    assert 'id="__________cytoscape_stylesheet"' in page


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served(client: Client, path: str, content_type: str) -> None:
    async with client.get(f"/dashboard/static/{path}", headers=cookie_header()) as resp:
        assert resp.status == 200
        assert resp.content_type == content_type
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == (STATIC / path).read_bytes()


async def test_vendored_cytoscape_is_served_with_its_license(client: Client) -> None:
    if not VENDORED:
        pytest.skip("cytoscape.js is not vendored: run tools/vendor_js.py")
    async with client.get("/dashboard/static/vendor/cytoscape.min.js", headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/javascript"
    async with client.get("/dashboard/static/vendor/LICENSE", headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert "Permission is hereby granted" in await resp.text()


@pytest.mark.parametrize(
    "path",
    [
        "nope.js",
        "../web.py",
        "%2e%2e/web.py",
        "vendor/../../web.py",
        ".hidden",
        "index.html",  # the page is /dashboard/ only, with its headers
        "vendor",
    ],
)
async def test_nothing_else_is_served(client: Client, path: str) -> None:
    async with client.get(f"/dashboard/static/{path}", headers=AUTH) as resp:
        assert resp.status == 404, path


async def test_dashboard_without_slash_redirects(client: Client) -> None:
    async with client.get("/dashboard", headers=AUTH, allow_redirects=False) as resp:
        assert resp.status in (301, 308)
        assert resp.headers["Location"] == "/dashboard/"


# --- the page in a browser, against a fake API ------------------------------------------

NODES = [
    {"id": "workload:istio-system/istio-ingressgateway", "kind": "workload",
     "name": "istio-ingressgateway", "namespace": "istio-system",
     "app": "istio-ingressgateway", "version": ""},
    {"id": "service:frontend.default.svc.cluster.local", "kind": "service",
     "name": "frontend", "namespace": "default", "host": "frontend.default.svc.cluster.local"},
    {"id": "workload:default/frontend", "kind": "workload", "name": "frontend",
     "namespace": "default", "app": "frontend", "version": "v1"},
    {"id": "service:reviews.default.svc.cluster.local", "kind": "service", "name": "reviews",
     "namespace": "default", "host": "reviews.default.svc.cluster.local"},
    {"id": "workload:default/reviews-v1", "kind": "workload", "name": "reviews-v1",
     "namespace": "default", "app": "reviews", "version": "v1"},
]  # fmt: skip
EDGES = [
    {"source": NODES[0]["id"], "target": NODES[1]["id"], "rps": 2.5, "error_rate": 0.0,
     "p99_ms": 12.0, "requests": 150, "mtls": False, "protocol": "http"},
    {"source": NODES[1]["id"], "target": NODES[2]["id"], "rps": 2.5, "error_rate": 0.0,
     "p99_ms": 11.0, "requests": 150, "mtls": True, "protocol": "http"},
    {"source": NODES[2]["id"], "target": NODES[3]["id"], "rps": 2.5, "error_rate": 0.1,
     "p99_ms": None, "requests": 150, "mtls": True, "protocol": "http"},
    {"source": NODES[3]["id"], "target": NODES[4]["id"], "rps": 2.5, "error_rate": 0.1,
     "p99_ms": 5.0, "requests": 150, "mtls": True, "protocol": "http"},
]  # fmt: skip
T0 = 1_760_000_000_000_000_000
TRACE: dict[str, Any] = {
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "spans": [
        {"span_id": "a1", "parent_span_id": "", "name": "GET /productpage",
         "service": "istio-ingressgateway.istio-system", "kind": "SERVER",
         "start_unix_nano": T0, "end_unix_nano": T0 + 20_000_000, "duration_ms": 20.0,
         "status": "OK", "attributes": {"http.status_code": 200}},
        {"span_id": "b2", "parent_span_id": "a1", "name": "GET /reviews/1",
         "service": "frontend.default", "kind": "CLIENT",
         "start_unix_nano": T0 + 5_000_000, "end_unix_nano": T0 + 15_000_000,
         "duration_ms": 10.0, "status": "ERROR",
         "attributes": {"http.status_code": 503, "upstream_cluster": "outbound|9080||reviews"}},
    ],
}  # fmt: skip


def fake_api(graph: dict[str, Any] | None = None) -> web.Application:
    """The dashboard's routes and the API shapes it reads, behind the real auth (the
    graph: `graph`, else the small one above)."""

    def answer(body: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(body)

        return handler

    async def one_trace(request: web.Request) -> web.Response:
        if request.match_info["trace_id"] != TRACE["trace_id"]:
            raise web.HTTPNotFound(reason="no such trace")
        return web.json_response(TRACE)

    metrics = {"requests": 150, "rps": 2.5, "success_rate": 0.9, "p50_ms": 2.0,
               "p95_ms": 8.5, "p99_ms": 11.0}  # fmt: skip
    status = {
        "resources": 2,
        "config_errors": ["shop/vs.yaml: document 0 (line 1): VirtualService/default/r: bad"],
        "synced": False,
        "proxies": [],
        "instances": [
            {"workload": "frontend", "namespace": "default", "instance": "frontend-0",
             "pid": 42, "state": "ready", "ready": True, "restarts": 0, "since": 1.0},
        ],
    }  # fmt: skip
    proxy_types: dict[str, dict[str, Any]] = {
        t: {"state": "SYNCED", "last_nack": None} for t in ("CDS", "EDS", "LDS", "RDS")
    }
    proxy_types["CDS"] = {
        "state": "NACK",
        "last_nack": {"version": "7", "message": "bad cluster"},
    }
    proxies = [
        {"id": "frontend-0.default", "mode": "delta", "connected_since": 1.0, "synced": False,
         "kind": "sidecar", "workload": "frontend", "namespace": "default",
         "admin_port": 15000, "types": proxy_types},
    ]  # fmt: skip
    resources = [
        {"apiVersion": "v1", "kind": "Service", "source": "shop/services.yaml",
         "metadata": {"name": "reviews", "namespace": "default"},
         "spec": {"ports": [{"port": 9080}]}},
    ]  # fmt: skip
    findings = [
        {"code": "AMI0301", "severity": "Warning", "resource": "Service/default/reviews",
         "field": "spec.selector", "message": "selects nothing", "hint": "fix it",
         "source": "shop/services.yaml"},
    ]  # fmt: skip
    revisions = [
        {"namespace": "default", "revision": "busy-00001", "configuration": "busy",
         "service": "busy", "ready": 2, "activator": False, "metric": "concurrency",
         "target": 0.7, "desired": 6, "requested": 3, "observed_stable": 4.25,
         "observed_panic": 4.0, "panic": True, "excess_burst_capacity": 0,
         "active": "active"},
    ]  # fmt: skip
    app = web.Application(middlewares=[_auth_middleware(TOKEN)])
    app.add_routes(dashboard_web.routes())
    app.add_routes(
        [
            web.get("/api/v1/status", answer(status)),
            web.get("/api/v1/proxies", answer({"synced": False, "proxies": proxies})),
            web.get("/api/v1/resources", answer({"kind": None, "items": resources})),
            web.get("/api/v1/analyze", answer({"findings": findings})),
            web.get("/api/v1/serving/revisions", answer({"revisions": revisions})),
            web.get(
                "/api/v1/graph",
                answer(graph or {"window_s": 60, "nodes": NODES, "edges": EDGES}),
            ),
            web.get(
                "/api/v1/metrics/services",
                answer({"window_s": 60, "services": [
                    {"host": "reviews.default.svc.cluster.local", "name": "reviews",
                     "namespace": "default", **metrics}]}),
            ),
            web.get(
                "/api/v1/metrics/workloads",
                answer({"window_s": 60, "workloads": [
                    {"name": "reviews-v1", "namespace": "default", "app": "reviews",
                     "version": "v1", **metrics}]}),
            ),
            web.get(
                "/api/v1/traces",
                answer({"traces": [
                    {"trace_id": TRACE["trace_id"], "root_service": "istio-ingressgateway",
                     "root_name": "GET /productpage", "start": T0 / 1e9, "duration_ms": 20.0,
                     "span_count": 2, "error": True,
                     "services": ["istio-ingressgateway", "frontend"]}]}),
            ),
            web.get("/api/v1/traces/{trace_id}", one_trace),
        ]
    )  # fmt: skip
    return app


async def until(page: Page, expression: str) -> Any:
    """The value of `expression` in the page once it is truthy, polled from here.

    Not `page.wait_for_function`: it evaluates a string again inside the page at each
    poll, which the dashboard's CSP (no 'unsafe-eval') refuses whenever the first check
    comes too early, as it does on a busy machine. `page.evaluate` goes through the
    DevTools protocol, which the page's policy does not govern.
    """
    for _ in range(int(WAIT_S / POLL_S)):  # at least WAIT_S, however slow each look
        if value := await page.evaluate(expression):
            return value
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"still false after {WAIT_S} s: {expression}")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-deps)")
@pytest.mark.skipif(not VENDORED, reason="cytoscape.js is not vendored: run tools/vendor_js.py")
async def test_page_in_chromium_against_a_fake_api(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    server = test_utils.TestServer(fake_api(), host="127.0.0.1")
    await server.start_server()
    problems: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
                )
                page.on("pageerror", lambda e: problems.append(str(e)))
                base = str(server.make_url("/dashboard/"))
                await page.goto(f"{base}?token={TOKEN}")
                assert page.url == base  # the token left the address bar

                # A wait that starts before its condition holds, as on a busy machine,
                # still waits under the page's CSP.
                await page.evaluate("() => { setTimeout(() => { window.amiLater = 1; }, 300); }")
                assert await until(page, "window.amiLater") == 1

                # The graph: every node and edge, mTLS solid, plain text dashed.
                await until(page, "window.amiGraph && window.amiGraph.edges().length === 4")
                ids = await page.evaluate("window.amiGraph.nodes().map(n => n.id())")
                assert sorted(ids) == sorted(n["id"] for n in NODES)
                styles = await page.evaluate(
                    "window.amiGraph.edges().map(e => [e.data('mtls'), e.style('line-style')])"
                )
                assert sorted(map(tuple, styles)) == [
                    (False, "dashed"),
                    (True, "solid"),
                    (True, "solid"),
                    (True, "solid"),
                ]
                label = await page.evaluate(
                    "window.amiGraph.edges().filter(e => e.data('error_rate') > 0)"
                    ".map(e => e.data('label'))"
                )
                assert "10.0% err" in label[0]
                await page.evaluate(
                    "() => { window.amiGraph"
                    ".getElementById('service:reviews.default.svc.cluster.local').emit('tap'); }"
                )
                await page.wait_for_selector("#graph-detail h3:has-text('reviews')")
                assert "90.0%" in await page.inner_text("#graph-detail")
                await page.screenshot(path=str(tmp_path / "graph.png"))

                # Golden metrics.
                await page.click("#nav a[data-view=metrics]")
                await page.wait_for_selector("#services-table tbody tr[data-host]")
                row = await page.inner_text("#services-table tbody tr")
                assert "reviews" in row and "90.0%" in row and "8.50 ms" in row
                assert "reviews-v1" in await page.inner_text("#workloads-table tbody")

                # Traces: the list, then the waterfall of the one clicked.
                await page.click("#nav a[data-view=traces]")
                await page.click("#traces-table tbody tr[data-trace-id]")
                await page.wait_for_selector("#waterfall .span-row")
                assert page.url.endswith("#trace/" + TRACE["trace_id"])
                rows = page.locator("#waterfall .span-row")
                assert await rows.count() == 2
                assert "frontend.default" in await rows.nth(1).inner_text()
                bars = await page.evaluate(
                    "[...document.querySelectorAll('#waterfall .span-bar')].map(b => "
                    "[parseFloat(b.style.left), parseFloat(b.style.width), "
                    "b.classList.contains('error')])"
                )
                # Offsets and widths in % of the trace (to the precision of a double).
                assert [(round(x), round(w), e) for x, w, e in bars] == [
                    (0, 100, False),
                    (25, 50, True),
                ]
                await rows.nth(1).click()
                await page.wait_for_selector("#waterfall .span-attrs:has-text('upstream_cluster')")
                await page.screenshot(path=str(tmp_path / "trace.png"))

                # Config: errors, findings, resources (a click shows the resource).
                await page.click("#nav a[data-view=config]")
                await page.wait_for_selector("#config-errors li")
                assert "AMI0301" in await page.inner_text("#findings-table")
                await page.click("#resources-table tbody tr")
                await page.wait_for_selector("#resources-table pre:has-text('9080')")

                # Proxies: the NACK and its message.
                await page.click("#nav a[data-view=proxies]")
                await page.wait_for_selector("#proxies-table .chip.NACK")
                assert "bad cluster" in await page.inner_text("#nacks")
                assert "frontend-0" in await page.inner_text("#instances-table")
                # Knative revisions: the scale asked for, ready, load, panic, activator.
                await page.wait_for_selector("#revisions-section:not([hidden])")
                cols = await page.locator(
                    "#revisions-table tr[data-revision='default/busy-00001'] td"
                ).all_inner_texts()
                assert cols == ["default", "busy-00001", "busy", "3", "2", "4.25", "yes", "no"]

                # The cookie signs no request that changes anything.
                code = await page.evaluate(
                    "fetch('/api/v1/apply', {method: 'POST', body: 'x'}).then(r => r.status)"
                )
                assert code == 401
                # ...and scripts cannot read it.
                assert await page.evaluate("document.cookie") == ""
            finally:
                await browser.close()
    finally:
        await server.close()
    assert [p for p in problems if "401" not in p] == []


# --- the Runs view, against a fake pipelines API -----------------------------------------

RUN_GRAPH: dict[str, Any] = {
    "kind": "PipelineRun", "name": "ci-run", "namespace": "default", "pipeline": "ci",
    "state": "Running", "reason": "Running", "message": "", "startTime": "2026-01-02T03:04:05Z",
    "completionTime": None,
    "nodes": [
        {"id": "build", "name": "build", "task": "", "finally": False, "taskRun": "ci-run-build",
         "state": "Running", "reason": "Running", "message": "",
         "runs": [{"taskRun": "ci-run-build", "namespace": "default", "state": "Running",
                   "reason": "Running", "message": "",
                   "steps": [{"name": "compile", "state": "Running", "reason": "Running",
                              "image": "golang"}]}]},
        {"id": "<b>deploy</b>", "name": "<b>deploy</b>", "task": "", "finally": False,
         "taskRun": None, "state": "Skipped", "reason": "When Expressions evaluated to false",
         "message": "", "runs": []},
        {"id": "report", "name": "report", "task": "", "finally": True, "taskRun": None,
         "state": "Pending", "reason": "", "message": "", "runs": []},
    ],
    "edges": [{"id": "build-><b>deploy</b>", "source": "build", "target": "<b>deploy</b>",
               "kind": "runAfter"}],
}  # fmt: skip
RUN_OBJECT = {
    "kind": "PipelineRun",
    "metadata": {"name": "ci-run", "namespace": "default", "labels": {"tekton.dev/pipeline": "ci"}},
    "status": {
        "conditions": [{"status": "Unknown", "reason": "Running"}],
        "startTime": "2026-01-02T03:04:05Z",
    },
}


def fake_pipelines_api(offsets: list[str | None], graphs: list[str]) -> web.Application:
    """The Runs view's endpoints: one running PipelineRun whose one step's log comes in
    two reads (the first from the end of a long log), then ends. `offsets` and `graphs`
    record what the page asked."""

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"resources": 0})

    async def runs(request: web.Request) -> web.Response:
        items = [RUN_OBJECT] if request.query.get("kind") == "PipelineRun" else []
        return web.json_response({"items": items})

    async def graph(request: web.Request) -> web.Response:
        graphs.append(request.match_info["name"])
        if request.match_info["name"] != "ci-run":
            raise web.HTTPNotFound()
        return web.json_response(RUN_GRAPH)

    async def logs(request: web.Request) -> web.Response:
        offset = request.query.get("offset")
        offsets.append(offset)
        if offset is None:
            return web.json_response(
                {"text": "line 2\n", "offset": 100, "size": 100, "skipped": 93, "finished": False}
            )
        if offset == "100":
            return web.json_response(
                {"text": "<i>line 3</i>\n", "offset": 114, "size": 114, "skipped": 0,
                 "finished": True}
            )  # fmt: skip
        raise web.HTTPBadRequest()

    app = web.Application(middlewares=[_auth_middleware(TOKEN)])
    app.add_routes(dashboard_web.routes())
    app.add_routes(
        [
            web.get("/api/v1/status", status),
            web.get("/api/v1/pipelines/runs", runs),
            web.get("/api/v1/pipelines/graph/{kind}/{namespace}/{name}", graph),
            web.get("/api/v1/pipelines/logs/{namespace}/{taskrun}/{step}", logs),
        ]
    )
    return app


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-deps)")
@pytest.mark.skipif(not VENDORED, reason="cytoscape.js is not vendored: run tools/vendor_js.py")
async def test_runs_view_in_chromium_against_a_fake_api(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    offsets: list[str | None] = []
    graphs: list[str] = []
    server = test_utils.TestServer(fake_pipelines_api(offsets, graphs), host="127.0.0.1")
    await server.start_server()
    problems: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                base = str(server.make_url("/dashboard/"))
                await page.goto(f"{base}?token={TOKEN}#runs")
                row = page.locator('#pipelineruns-table tr[data-name="ci-run"]')
                await row.wait_for()
                assert "Running" in await row.inner_text()
                assert "no TaskRuns" in await page.inner_text("#taskruns-table")
                await row.click()

                # The graph: states, the skipped task's reason, finally in its own column.
                await until(page, "window.amiRunGraph && window.amiRunGraph.nodes().length === 3")
                nodes = await page.evaluate(
                    "window.amiRunGraph.nodes().map(n => [n.id(), n.data('state'), "
                    "n.position('x')])"
                )
                x = {n: px for n, _, px in nodes}
                assert {n: s for n, s, _ in nodes} == {
                    "build": "Running",
                    "<b>deploy</b>": "Skipped",
                    "report": "Pending",
                }
                assert x["build"] < x["<b>deploy</b>"] < x["report"]
                # The log: the end of a long one, then what came after, then no more reads.
                log = page.locator(
                    '.run-task[data-task="build"] .run-step[data-step="compile"] pre'
                )
                await until(
                    page, "document.querySelector('pre.log').textContent.includes('line 3')"
                )
                assert await log.text_content() == (
                    "… the first 93 bytes left out …\nline 2\n<i>line 3</i>\n"
                )
                assert offsets[:2] == [None, "100"]
                # Names and log lines are text, never markup.
                assert await page.locator("#run-tasks b, #run-tasks i").count() == 0
                assert "Skipped: When Expressions" in await page.inner_text("#run-tasks")
                # The run still runs, so the page asks again; a finished log, no more.
                n, seen = len(offsets), len(graphs)
                for _ in range(int(WAIT_S / POLL_S)):
                    if len(graphs) >= seen + 2:
                        break
                    await asyncio.sleep(POLL_S)
                assert len(graphs) >= seen + 2 and len(offsets) == n, (graphs, offsets)
                await page.screenshot(path=str(tmp_path / "run.png"))
            finally:
                await browser.close()
    finally:
        await server.close()
    assert problems == []
