"""The generator shares translation between proxies and redoes only what changed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, endpoints, generate, route_build
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE
from amimesh.translate.generate import Generator


def service(name: str, weight_v1: int = 80, lb: str = "ROUND_ROBIN") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-1}}
spec: {{address: 127.0.0.1, ports: {{http: 20001}}, labels: {{app: {name}, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  http:
    - route:
        - {{destination: {{host: {name}, subset: v1}}, weight: {weight_v1}}}
        - {{destination: {{host: {name}, subset: v2}}, weight: {100 - weight_v1}}}
"""


def snapshot(texts: dict[str, str], version: int, previous: Snapshot | None = None) -> Snapshot:
    resources = []
    for name, text in texts.items():
        result = parse_documents(text, name)
        assert result.ok, result.errors
        resources += result.resources
    return build_snapshot(resources, version=version, previous=previous)


def proxy(i: int) -> Proxy:
    return Proxy(
        id=f"p{i}",
        workload=f"w{i}",
        labels={"app": f"w{i}"},
        outbound_port=15001,
        inbound=(InboundPort(port=8080, listen_port=20000 + i, app_port=30000 + i),),
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts per-service translations, by function and service."""
    seen: Counter[str] = Counter()

    def spy(name: str, real: Any) -> Any:
        def wrapped(snap: Snapshot, svc: Any, *args: Any, **kwargs: Any) -> Any:
            seen[f"{name}:{svc.name}"] += 1
            return real(snap, svc, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(clusters, "service_clusters", spy("clusters", clusters.service_clusters))
    monkeypatch.setattr(
        endpoints, "service_assignments", spy("endpoints", endpoints.service_assignments)
    )
    real_build = route_build.build

    def build(snap: Snapshot, sourced: Any, **kwargs: Any) -> Any:
        seen[f"routes:{sourced.origin.name}"] += 1
        return real_build(snap, sourced, **kwargs)

    monkeypatch.setattr(route_build, "build", build)
    return seen


def test_proxies_share_tables_and_resources() -> None:
    gen = Generator(snapshot({"a": service("a"), "b": service("b")}, 1))
    one, two = gen.generate(proxy(1)), gen.generate(proxy(2))
    assert one[ENDPOINT] is two[ENDPOINT]
    assert one[ROUTE] is two[ROUTE]
    assert one[LISTENER] is not two[LISTENER]  # each proxy has its own ports
    shared = "outbound|9080|v1|a.default.svc.cluster.local"
    assert one[CLUSTER][shared] is two[CLUSTER][shared]
    assert "inbound|8080||" in one[CLUSTER]


def test_a_change_to_one_service_translates_only_that_service(calls: Counter[str]) -> None:
    texts = {"a": service("a"), "b": service("b"), "c": service("c")}
    gen = Generator(snapshot(texts, 1))
    before = gen.generate(proxy(1))
    assert calls["clusters:a"] == calls["clusters:b"] == 1
    calls.clear()

    texts["b"] = service("b", weight_v1=50)  # only b's VirtualService
    gen.update(snapshot(texts, 2, previous=gen.snapshot))
    after = gen.generate(proxy(1))
    # Only b's one http route was built again; no cluster or endpoint was translated.
    assert calls == Counter({"routes:b": 1})
    # Nothing else changed, so the xDS layer sees the very same tables.
    assert after[CLUSTER] is before[CLUSTER]
    assert after[ENDPOINT] is before[ENDPOINT]
    assert after[ROUTE] is not before[ROUTE]

    calls.clear()
    texts["c"] = service("c", lb="RANDOM")  # c's DestinationRule
    gen.update(snapshot(texts, 3, previous=gen.snapshot))
    again = gen.generate(proxy(1))
    assert calls["clusters:c"] == 1 and calls["endpoints:c"] == 1
    assert calls["clusters:a"] == calls["clusters:b"] == 0
    a = "outbound|9080|v1|a.default.svc.cluster.local"
    assert again[CLUSTER][a] is before[CLUSTER][a]


def test_inputs_follow_endpoints() -> None:
    one = snapshot({"a": service("a")}, 1)
    two = snapshot({"a": service("a").replace("20001", "20002")}, 2, previous=one)
    svc = two.services["a.default.svc.cluster.local"]
    assert one.services[svc.hostname] is svc
    assert generate.inputs(one, svc) != generate.inputs(two, svc)
