"""Golden metrics and the service graph, from the edges `MeshMetrics.window` returns.

Requests/s, success rate and latency percentiles (from the duration histogram, as
Prometheus' `histogram_quantile` computes them) over a window, per service and per
workload as the destinations' proxies report them (Linkerd's inbound view), and the
service graph:

- a node per workload (`workload:NAMESPACE/NAME`) and per service (`service:HOST`);
- an edge source workload → service from what the source's proxy reports, and an edge
  service → destination workload from what the destination's proxy reports;
- an edge is mutual TLS when the destination's proxy saw mutual TLS on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.telemetry.labels import DESTINATION, SOURCE, UNKNOWN
from amimesh.telemetry.metrics import Edge, EdgeStats

Labels = Mapping[tuple[str, str], Mapping[str, str]]


def workload_labels(
    snap: Snapshot, proxies: Iterable[Proxy]
) -> dict[tuple[str, str], dict[str, str]]:
    """(namespace, workload) → its labels, for every workload the mesh knows."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for inst in snap.instances:
        out.setdefault((inst.namespace, inst.workload), dict(inst.labels))
    for proxy in proxies:
        if proxy.workload:
            out.setdefault((proxy.namespace, proxy.workload), dict(proxy.labels))
    return out


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def golden(stats: EdgeStats, window_s: float) -> dict[str, Any]:
    """requests, rps, success_rate (None without requests), p50/p95/p99 in ms."""
    d = stats.duration
    return {
        "requests": stats.requests,
        "rps": _round(stats.requests / window_s),
        "success_rate": (_round(1 - stats.errors / stats.requests, 4) if stats.requests else None),
        "p50_ms": _round(d.quantile(0.5)),
        "p95_ms": _round(d.quantile(0.95)),
        "p99_ms": _round(d.quantile(0.99)),
    }


def _merge(into: dict[Any, EdgeStats], key: Any, stats: EdgeStats) -> None:
    total = into.get(key)
    if total is None:
        total = into[key] = EdgeStats()
    total.add(stats)


def _service_name(host: str, snap: Snapshot) -> tuple[str, str]:
    svc = snap.services.get(host)
    if svc is None:
        return host, UNKNOWN
    return (svc.name if svc.origin != "service-entry" else host), svc.namespace


def by_service(
    window: Mapping[Edge, EdgeStats], window_s: float, snap: Snapshot
) -> list[dict[str, Any]]:
    totals: dict[str, EdgeStats] = {}
    for edge, stats in window.items():
        if edge.reporter == DESTINATION:
            _merge(totals, edge.destination_service, stats)
    for host, svc in snap.services.items():
        if svc.origin != "service-entry":
            totals.setdefault(host, EdgeStats())
    rows = []
    for host, stats in sorted(totals.items()):
        name, namespace = _service_name(host, snap)
        rows.append({"host": host, "name": name, "namespace": namespace, **golden(stats, window_s)})
    return rows


def by_workload(
    window: Mapping[Edge, EdgeStats], window_s: float, labels: Labels
) -> list[dict[str, Any]]:
    totals: dict[tuple[str, str], EdgeStats] = {key: EdgeStats() for key in labels}
    for edge, stats in window.items():
        if edge.reporter == DESTINATION:
            _merge(totals, (edge.destination_namespace, edge.destination_workload), stats)
    rows = []
    for (namespace, name), stats in sorted(totals.items()):
        lab = labels.get((namespace, name), {})
        rows.append(
            {
                "name": name,
                "namespace": namespace,
                "app": lab.get("app", UNKNOWN),
                "version": lab.get("version", UNKNOWN),
                **golden(stats, window_s),
            }
        )
    return rows


def workload_id(namespace: str, name: str) -> str:
    return f"workload:{namespace}/{name}"


def service_id(host: str) -> str:
    return f"service:{host}"


def graph(window: Mapping[Edge, EdgeStats], window_s: float, labels: Labels) -> dict[str, Any]:
    nodes: dict[str, dict[str, Any]] = {}

    def workload_node(namespace: str, name: str) -> str:
        node_id = workload_id(namespace, name)
        if node_id not in nodes:
            lab = labels.get((namespace, name), {})
            nodes[node_id] = {
                "id": node_id,
                "kind": "workload",
                "name": name,
                "namespace": namespace,
                "app": lab.get("app", UNKNOWN),
                "version": lab.get("version", UNKNOWN),
            }
        return node_id

    def service_node(host: str) -> str:
        node_id = service_id(host)
        if node_id not in nodes:
            name, _, rest = host.partition(".")
            namespace = rest.split(".")[0] if rest else UNKNOWN
            nodes[node_id] = {
                "id": node_id,
                "kind": "service",
                "name": name,
                "namespace": namespace,
                "host": host,
            }
        return node_id

    edges: dict[tuple[str, str], EdgeStats] = {}
    protocols: dict[tuple[str, str], str] = {}
    mtls: dict[tuple[str, str], bool] = {}
    for edge, stats in window.items():
        if edge.destination_service == UNKNOWN:
            continue
        svc = service_node(edge.destination_service)
        if edge.reporter == SOURCE:
            key = (workload_node(edge.source_namespace, edge.source_workload), svc)
        elif edge.destination_workload != UNKNOWN:
            key = (svc, workload_node(edge.destination_namespace, edge.destination_workload))
            # What the destination saw on this hop also marks the caller's edge.
            caller = (workload_id(edge.source_namespace, edge.source_workload), svc)
            mtls[caller] = mtls.get(caller, True) and edge.mtls
        else:
            continue
        _merge(edges, key, stats)
        protocols[key] = edge.protocol
        if edge.reporter == DESTINATION:
            mtls[key] = mtls.get(key, True) and edge.mtls
    out_edges = []
    for (source, target), stats in sorted(edges.items()):
        g = golden(stats, window_s)
        out_edges.append(
            {
                "source": source,
                "target": target,
                "requests": g["requests"],
                "rps": g["rps"],
                "error_rate": _round(stats.errors / stats.requests, 4) if stats.requests else 0.0,
                "p99_ms": g["p99_ms"],
                "mtls": mtls.get((source, target), False),
                "protocol": protocols[(source, target)],
            }
        )
    return {
        "window_s": window_s,
        "nodes": sorted(nodes.values(), key=lambda n: n["id"]),
        "edges": out_edges,
    }
