"""HTTP API: Prometheus metrics (`/metrics`), the service graph and golden metrics.

- `GET /metrics`: Istio's standard metrics and Knative's autoscaler metrics
  (`serving_metrics`) in Prometheus' text format (the bearer token is required, as for
  the rest of the API: Prometheus sends it with `authorization`).
- `GET /api/v1/graph?window=S`: the service graph over the last S seconds (default 60):
  workload and service nodes; edges source workload → service (as the source's proxy
  reports) and service → destination workload (as the destination's proxy reports),
  each with requests, requests/s, error rate, p99 and whether it is mutual TLS; and
  with the config's Brokers, a node per Broker and an edge per (broker, subscriber
  service) naming its Triggers (`eventing.graph`).
- `GET /api/v1/metrics/services?window=S` and `/api/v1/metrics/workloads?window=S`:
  golden metrics (requests/s, success rate, p50/p95/p99) per service and per workload,
  as the destinations' proxies report them (Linkerd's inbound view).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

# prometheus_client and the golden-metric math are imported by the handlers that use
# them: the API answers node agents before the control plane has loaded them.

DEFAULT_WINDOW_S = 60.0
MAX_WINDOW_S = 300.0


def _window(request: web.Request) -> float:
    text = request.query.get("window", "")
    try:
        value = float(text) if text else DEFAULT_WINDOW_S
    except ValueError:
        raise web.HTTPBadRequest(reason=f"window: {text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_WINDOW_S:
        raise web.HTTPBadRequest(reason=f"window: must be in (0, {MAX_WINDOW_S:g}] seconds")
    return value


def _with_brokers(cp: ControlPlane, data: dict[str, Any]) -> dict[str, Any]:
    """The graph with the config's Brokers and Triggers (`eventing.graph`), their
    readiness as the eventing controller says; as it was without a Broker (Eventing's
    modules are not loaded for a mesh without one)."""
    resources = cp.store.resources()
    brokers = [r for r in resources if r.kind == "Broker" and r.apiVersion.startswith(EVENTING)]
    if not brokers:
        return data
    from amimesh.eventing import graph as eventing_graph

    def ready(key: tuple[str, str, str]) -> tuple[bool, dict[str, Any]]:
        status = cp.eventing.status_of(key) or {}
        conditions = status.get("conditions") or [{}]
        return conditions[0].get("status") == "True", status

    triggers = []
    for t in resources:
        if t.kind != "Trigger" or not t.apiVersion.startswith(EVENTING):
            continue
        ok, status = ready(t.key)
        spec = getattr(t, "spec", None)
        broker = str(getattr(spec, "broker", ""))
        subscriber = str(status.get("subscriberUri", ""))
        triggers.append(eventing_graph.GraphTrigger(t.namespace, t.name, broker, subscriber, ok))
    listed = [(b.namespace, b.name, ready(b.key)[0]) for b in brokers]
    return eventing_graph.with_brokers(data, listed, triggers)


EVENTING = "eventing.knative.dev/"


def routes(cp: ControlPlane) -> list[web.RouteDef]:
    async def metrics(request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(cp.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def labels_of() -> dict[tuple[str, str], dict[str, str]]:
        from amimesh.telemetry import golden

        return golden.workload_labels(cp.snapshot, cp.xds.proxies())

    async def graph(request: web.Request) -> web.Response:
        from amimesh.telemetry import golden

        window = _window(request)
        data: dict[str, Any] = golden.graph(cp.metrics.window(window), window, labels_of())
        return web.json_response(_with_brokers(cp, data))

    async def services(request: web.Request) -> web.Response:
        from amimesh.telemetry import golden

        window = _window(request)
        rows = golden.by_service(cp.metrics.window(window), window, cp.snapshot)
        return web.json_response({"window_s": window, "services": rows})

    async def workloads(request: web.Request) -> web.Response:
        from amimesh.telemetry import golden

        window = _window(request)
        rows = golden.by_workload(cp.metrics.window(window), window, labels_of())
        return web.json_response({"window_s": window, "workloads": rows})

    return [
        web.get("/metrics", metrics),
        web.get("/api/v1/graph", graph),
        web.get("/api/v1/metrics/services", services),
        web.get("/api/v1/metrics/workloads", workloads),
    ]
