"""Config changes under load: weights move while traffic flows, and nothing fails."""

from __future__ import annotations

import json
import threading
from collections import Counter

import httpx

from tests.e2e.harness import Mesh, wait_for

BASE = """
apiVersion: v1
kind: Service
metadata: {name: cart}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart}
spec:
  host: cart
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
"""

SPLIT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart}
spec:
  hosts: [cart]
  http:
    - route:
        - {destination: {host: cart, subset: v1}, weight: %d}
        - {destination: {host: cart, subset: v2}, weight: %d}
"""


def test_weights_change_live_without_a_failed_request(mesh: Mesh) -> None:
    mesh.apply(BASE)
    mesh.apply(SPLIT % (100, 0), source="route.yaml")
    v1 = mesh.workload("cart-v1", {"app": "cart", "version": "v1"}, port=8080)
    v2 = mesh.workload("cart-v2", {"app": "cart", "version": "v2"}, port=8080)
    client = mesh.client()
    mesh.wait_synced()

    statuses: Counter[int] = Counter()
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with client.http() as http:
            while not stop.is_set():
                r = http.get("http://cart:8080/")
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    seen[json.loads(r.text)["backend"]] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for w1 in (80, 50, 20, 0, 100, 0):
            mesh.apply(SPLIT % (w1, 100 - w1), source="route.yaml")
            mesh.wait_synced()
            # Requests flow at each split before the next (however busy the machine).
            sent = sum(statuses.values())
            wait_for(lambda sent=sent: sum(statuses.values()) >= sent + 20)
        # All on v2 now: every new request must land there.
        v2_before = v2.backend.count() if v2.backend else 0
        with client.http() as http:
            for _ in range(20):
                assert json.loads(http.get("http://cart:8080/").text)["backend"] == "cart-v2"
        assert v2.backend is not None and v2.backend.count() >= v2_before + 20
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert set(statuses) == {200}, statuses
    assert seen["cart-v1"] > 0 and seen["cart-v2"] > 0
    assert v1.backend is not None and v1.backend.count() > 0


def test_endpoint_leaves_before_its_instance_stops(mesh: Mesh) -> None:
    """An instance deregistered from the store stops getting traffic once proxies ack."""
    mesh.apply(BASE)
    mesh.apply(SPLIT % (100, 0), source="route.yaml")
    a = mesh.workload("cart-a", {"app": "cart", "version": "v1"}, port=8080)
    b = mesh.workload("cart-b", {"app": "cart", "version": "v1"}, port=8080)
    client = mesh.client()
    mesh.wait_synced()
    assert a.instance is not None and a.backend is not None and b.backend is not None
    mesh.cp.store.deregister_instance(a.instance.id)
    mesh.wait_synced()
    before = a.backend.count()
    with httpx.Client(proxy=client.proxy_url, trust_env=False) as http:
        for _ in range(30):
            assert http.get("http://cart:8080/").status_code == 200
    assert a.backend.count() == before
