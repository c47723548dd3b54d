"""Brokers and triggers in the service graph: the pure addition (`eventing.graph`), the
control plane's `/api/v1/graph` with a Broker and its Triggers applied, and the page
drawing them in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.eventing import graph as eg
from tests.unit.test_dashboard_web import AUTH, CHROMIUM, TOKEN, VENDORED, fake_api, until

SINK = "service:sink.default.svc.cluster.local"
DELIVERY = {
    "source": eg.INGRESS_WORKLOAD,
    "target": SINK,
    "requests": 40,
    "rps": 4.0,
    "error_rate": 0.25,
    "p99_ms": 9.0,
    "mtls": True,
    "protocol": "http",
}
GRAPH: dict[str, Any] = {
    "window_s": 60,
    "nodes": [
        {"id": eg.INGRESS_WORKLOAD, "kind": "workload", "name": "broker-ingress",
         "namespace": "knative-eventing", "app": "broker-ingress", "version": "unknown"},
        {"id": SINK, "kind": "service", "name": "sink", "namespace": "default",
         "host": "sink.default.svc.cluster.local"},
    ],
    "edges": [DELIVERY],
}  # fmt: skip
TRIGGERS = [
    eg.GraphTrigger("default", "orders", "default", "http://sink.default.svc.cluster.local"),
    eg.GraphTrigger("default", "audit", "default", "http://sink.default.svc.cluster.local/a"),
    eg.GraphTrigger("default", "lost", "default", "", ready=False),
    eg.GraphTrigger("default", "other", "nope", "http://x.default.svc.cluster.local"),
]


def test_brokers_become_nodes_and_triggers_edges_with_the_deliveries_figures() -> None:
    out = eg.with_brokers(GRAPH, [("default", "default", True)], TRIGGERS)
    nodes = {n["id"]: n for n in out["nodes"]}
    broker = nodes["broker:default/default"]
    assert broker["kind"] == "broker" and broker["ready"] is True
    assert broker["triggers"] == ["audit", "lost", "orders"]
    assert broker["url"] == (
        "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"
    )
    assert nodes[eg.INGRESS_SERVICE]["kind"] == "service"  # no producer yet: still drawn
    by_kind = {e.get("kind", "metrics"): e for e in out["edges"]}
    assert (by_kind["broker"]["source"], by_kind["broker"]["target"]) == (
        eg.INGRESS_SERVICE,
        "broker:default/default",
    )
    trigger = by_kind["trigger"]
    assert (trigger["source"], trigger["target"]) == ("broker:default/default", SINK)
    assert trigger["triggers"] == ["audit", "orders"]  # one edge per subscriber service
    assert (trigger["rps"], trigger["error_rate"], trigger["requests"]) == (4.0, 0.25, 40)
    assert by_kind["metrics"] == DELIVERY  # the metrics' own edge stays
    # Nothing is added without a Broker.
    assert eg.with_brokers(GRAPH, [], TRIGGERS) == GRAPH


MESH = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: orders}
spec:
  broker: default
  subscriber: {ref: {apiVersion: v1, kind: Service, name: sink}}
---
apiVersion: v1
kind: Service
metadata: {name: sink}
spec: {selector: {app: sink}, ports: [{port: 80}]}
"""


async def test_the_graph_api_lists_the_configs_brokers_and_triggers(tmp_path: Path) -> None:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01, state_dir=tmp_path, nats_port=4222))
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    try:
        async with client.get("/api/v1/graph", headers=AUTH) as resp:
            assert not [n for n in (await resp.json())["nodes"] if n["kind"] == "broker"]
        async with client.post("/api/v1/apply", data=MESH, headers=AUTH) as resp:
            assert resp.status == 200, await resp.text()
        cp.eventing.reconcile()
        async with client.get("/api/v1/graph", headers=AUTH) as resp:
            graph = await resp.json()
    finally:
        await client.close()
    brokers = [n for n in graph["nodes"] if n["kind"] == "broker"]
    assert [(b["name"], b["triggers"], b["ready"]) for b in brokers] == [
        ("default", ["orders"], True)
    ]
    (edge,) = [e for e in graph["edges"] if e.get("kind") == "trigger"]
    assert edge["target"] == SINK and edge["triggers"] == ["orders"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-deps)")
@pytest.mark.skipif(not VENDORED, reason="cytoscape.js is not vendored: run tools/vendor_js.py")
async def test_the_page_draws_brokers_and_triggers(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    graph = eg.with_brokers(GRAPH, [("default", "default", True)], TRIGGERS)
    server = test_utils.TestServer(fake_api(graph), host="127.0.0.1")
    await server.start_server()
    problems: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("pageerror", lambda e: problems.append(str(e)))
                await page.goto(f"{server.make_url('/dashboard/')}?token={TOKEN}")
                await until(page, "window.amiGraph && window.amiGraph.edges().length === 3")
                shape = await page.evaluate(
                    "window.amiGraph.getElementById('broker:default/default').style('shape')"
                )
                assert shape == "hexagon"
                label = await page.evaluate(
                    "window.amiGraph.edges().filter(e => e.data('kind') === 'trigger')"
                    ".map(e => e.data('label'))[0]"
                )
                assert label.startswith("audit, orders") and "4.00 rps" in label
                await page.evaluate(
                    "() => { window.amiGraph"
                    ".getElementById('broker:default/default').emit('tap'); }"
                )
                await page.wait_for_selector("#graph-detail h3:has-text('default')")
                detail = await page.inner_text("#graph-detail")
                assert "audit, lost, orders" in detail
                assert "broker-ingress.knative-eventing.svc.cluster.local/default/default" in detail
                await page.screenshot(path=str(tmp_path / "brokers.png"))
            finally:
                await browser.close()
    finally:
        await server.close()
    assert problems == []
