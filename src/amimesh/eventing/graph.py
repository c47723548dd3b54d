"""Brokers and triggers in the service graph (the dashboard's), as a pure function of
the graph the metrics make and the brokers and triggers the config has.

Events reach a broker as requests to the broker's ingress service
(`broker-ingress.knative-eventing`), and leave it as deliveries of the broker's
workload to each subscriber: the metrics already draw those. This adds what the
metrics cannot tell apart:

- a node per Broker (`broker:NS/NAME`, kind `broker`), fed by the ingress service;
- an edge per (broker, subscriber service), kind `trigger`, naming its triggers, with
  the figures of the broker workload's deliveries to that service (the broker process
  serves every broker: the figures are its deliveries to the service, all triggers
  together).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from amimesh.eventing.config import INGRESS as INGRESS_NAME
from amimesh.eventing.config import INGRESS_HOST, NAMESPACE, SERVICE_ACCOUNT, broker_url

INGRESS_SERVICE = f"service:{INGRESS_HOST}"
INGRESS_WORKLOAD = f"workload:{NAMESPACE}/{INGRESS_NAME}"
_FIGURES = ("requests", "rps", "error_rate", "p99_ms", "mtls", "protocol")


@dataclass(frozen=True)
class GraphTrigger:
    namespace: str
    name: str
    broker: str
    subscriber: str  # its URL ("" when it resolves to none)
    ready: bool = True


def with_brokers(
    graph: Mapping[str, Any],
    brokers: Sequence[tuple[str, str, bool]],
    triggers: Sequence[GraphTrigger],
) -> dict[str, Any]:
    """`graph` (nodes, edges) with the brokers (namespace, name, ready) and their
    triggers added."""
    if not brokers:
        return dict(graph)
    nodes = {n["id"]: dict(n) for n in graph.get("nodes", ())}
    edges = [dict(e) for e in graph.get("edges", ())]
    deliveries = {e["target"]: e for e in edges if e.get("source") == INGRESS_WORKLOAD}
    if brokers and INGRESS_SERVICE not in nodes:
        nodes[INGRESS_SERVICE] = {
            "id": INGRESS_SERVICE,
            "kind": "service",
            "name": INGRESS_NAME,
            "namespace": NAMESPACE,
            "host": INGRESS_HOST,
        }
    known = set()
    for ns, name, ready in brokers:
        node_id = broker_id(ns, name)
        known.add((ns, name))
        mine = sorted(t.name for t in triggers if (t.namespace, t.broker) == (ns, name))
        nodes[node_id] = {
            "id": node_id,
            "kind": "broker",
            "name": name,
            "namespace": ns,
            "url": broker_url(ns, name),
            "ready": ready,
            "triggers": mine,
            "identity": f"spiffe://cluster.local/ns/{NAMESPACE}/sa/{SERVICE_ACCOUNT}",
        }
        edges.append(
            {
                "source": INGRESS_SERVICE,
                "target": node_id,
                "kind": "broker",
                "requests": 0,
                "rps": 0.0,
                "error_rate": 0.0,
                "p99_ms": None,
                "mtls": True,
                "protocol": "http",
            }
        )
    by_pair: dict[tuple[str, str], list[GraphTrigger]] = {}
    for t in triggers:
        host = urlsplit(t.subscriber).hostname if t.subscriber else None
        if (t.namespace, t.broker) not in known or not host:
            continue
        by_pair.setdefault((broker_id(t.namespace, t.broker), f"service:{host}"), []).append(t)
    for (source, target), group in sorted(by_pair.items()):
        if target not in nodes:
            host = target.removeprefix("service:")
            name, _, rest = host.partition(".")
            nodes[target] = {
                "id": target,
                "kind": "service",
                "name": name,
                "namespace": rest.split(".")[0] if rest else "",
                "host": host,
            }
        figures = deliveries.get(target, {})
        edge: dict[str, Any] = {
            "source": source,
            "target": target,
            "kind": "trigger",
            "triggers": sorted(t.name for t in group),
            "ready": all(t.ready for t in group),
            "requests": 0,
            "rps": 0.0,
            "error_rate": 0.0,
            "p99_ms": None,
            "mtls": True,
            "protocol": "http",
        }
        edge.update({k: figures[k] for k in _FIGURES if k in figures})
        edges.append(edge)
    return {**graph, "nodes": sorted(nodes.values(), key=lambda n: n["id"]), "edges": edges}


def broker_id(namespace: str, name: str) -> str:
    return f"broker:{namespace}/{name}"
