"""The control plane's Gateway API controller over a real store: the source it writes,
the status it keeps, and its conditions' times."""

from __future__ import annotations

from amimesh.config.store import Store
from amimesh.controlplane import gatewayapi
from amimesh.controlplane.gatewayapi import SOURCE, GatewayApiController
from amimesh.resources import parse_documents

MESH = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: BACKEND, port: 80}]}]
"""


def load(store: Store, text: str) -> None:
    parsed = parse_documents(text, "mesh.yaml")
    assert not parsed.errors
    assert not store.set_source("mesh.yaml", parsed)


def derived(store: Store) -> list[str]:
    return sorted(r.ref for r in store.resources() if store.source_of(r.key) == SOURCE)


def test_writes_the_conversion_and_keeps_status() -> None:
    store = Store()
    controller = GatewayApiController(store)
    controller.reconcile()  # nothing of the Gateway API: nothing written
    assert derived(store) == []
    load(store, MESH.replace("BACKEND", "web"))
    controller.reconcile()
    assert derived(store) == [
        "Gateway/default/gw-gwapi-http",
        "VirtualService/default/gw-gwapi-http-wildcard",
    ]
    status = controller.status_of(("HTTPRoute", "default", "web"))
    assert status is not None
    [resolved] = [c for c in status["parents"][0]["conditions"] if c["type"] == "ResolvedRefs"]
    assert resolved["status"] == "True"
    # The route's backend goes missing: its condition changes, and its time with it.
    load(store, MESH.replace("BACKEND", "gone"))
    controller.reconcile()
    status = controller.status_of(("HTTPRoute", "default", "web"))
    assert status is not None
    [changed] = [c for c in status["parents"][0]["conditions"] if c["type"] == "ResolvedRefs"]
    assert changed["reason"] == "BackendNotFound"
    # Everything of the Gateway API removed: the source empties.
    store.remove_source("mesh.yaml")
    controller.reconcile()
    assert derived(store) == []
    assert controller.status_of(("HTTPRoute", "default", "web")) is None


def test_a_condition_keeps_its_time_while_it_holds() -> None:
    old = {
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "lastTransitionTime": "then",
            }
        ]
    }
    same = {
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "lastTransitionTime": "now",
            }
        ]
    }
    changed = {
        "conditions": [
            {
                "type": "Accepted",
                "status": "False",
                "reason": "X",
                "message": "",
                "lastTransitionTime": "now",
            }
        ]
    }
    kept = gatewayapi._keep_times(same, old)
    assert kept["conditions"][0]["lastTransitionTime"] == "then"
    moved = gatewayapi._keep_times(changed, old)
    assert moved["conditions"][0]["lastTransitionTime"] == "now"
