"""Which RequestAuthentications and AuthorizationPolicies apply to which proxy."""

from __future__ import annotations

from amimesh.model import authz
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents

RESOURCES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: all-reviews, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: namespace-wide, namespace: shop}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b-reviews-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-namespace, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: users, namespace: shop}
spec:
  jwtRules:
  - issuer: users.shop.ami
    jwksUri: http://users:8080/.well-known/jwks.json
  - issuer: short
    jwksUri: http://users.shop/jwks
  - issuer: wrong-port
    jwksUri: http://users.shop.svc.cluster.local:9999/jwks
  - issuer: external
    jwksUri: http://keys.example.com/jwks
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh, namespace: istio-system}
spec:
  selector: {matchLabels: {app: ratings}}
  jwtRules:
  - issuer: mesh.example
    jwksUri: http://users.shop.svc.cluster.local/jwks
---
apiVersion: v1
kind: Service
metadata: {name: users, namespace: shop}
spec:
  selector: {app: users}
  ports: [{name: http, port: 8080}, {name: http-80, port: 80}]
"""


def snapshot(text: str = RESOURCES) -> Snapshot:
    result = parse_documents(text, "policies.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def proxy(namespace: str, **labels: str) -> Proxy:
    return Proxy(id=f"p.{namespace}", namespace=namespace, labels=labels)


def names(policies: tuple[object, ...]) -> list[str]:
    return [f"{p.namespace}/{p.name}" for p in policies]  # type: ignore[attr-defined]


def test_selection_by_namespace_selector_and_root_namespace() -> None:
    snap = snapshot()
    v2 = authz.inbound_policies(snap, proxy("shop", app="reviews", version="v2"))
    assert names(v2.deny) == ["istio-system/mesh-deny"]
    assert names(v2.audit) == ["istio-system/all-reviews"]
    # Policies in (namespace, name) order; both selectors match v2's labels.
    assert names(v2.allow) == ["shop/a-reviews", "shop/b-reviews-v2", "shop/namespace-wide"]

    v1 = authz.inbound_policies(snap, proxy("shop", app="reviews", version="v1"))
    assert names(v1.allow) == ["shop/a-reviews", "shop/namespace-wide"]

    cart = authz.inbound_policies(snap, proxy("shop", app="cart"))
    assert (names(cart.deny), names(cart.audit)) == (["istio-system/mesh-deny"], [])
    assert names(cart.allow) == ["shop/namespace-wide"]

    # A root-namespace policy with a selector reaches matching workloads anywhere.
    elsewhere = authz.inbound_policies(snap, proxy("default", app="reviews"))
    assert names(elsewhere.audit) == ["istio-system/all-reviews"]
    assert names(elsewhere.allow) == ["default/other-namespace"]


def test_gateways_are_selected_like_workloads() -> None:
    gateway = Proxy(id="gw", kind="gateway", namespace="shop", labels={"app": "reviews"})
    policies = authz.inbound_policies(snapshot(), gateway)
    sidecar = authz.inbound_policies(snapshot(), proxy("shop", app="reviews"))
    assert policies == sidecar
    assert not policies.empty


def test_no_policy_no_filters() -> None:
    assert authz.inbound_policies(build_snapshot([]), proxy("default", app="x")).empty


def test_jwt_providers_and_where_their_keys_come_from() -> None:
    snap = snapshot()
    shop = authz.inbound_policies(snap, proxy("shop", app="cart"))
    assert [(p.name, p.jwks_service) for p in shop.providers] == [
        ("shop/users/0", ("users.shop.svc.cluster.local", 8080)),
        ("shop/users/1", ("users.shop.svc.cluster.local", 80)),
        ("shop/users/2", None),  # the service has no port 9999
        ("shop/users/3", None),  # not a service of the mesh
    ]
    ratings = authz.inbound_policies(snap, proxy("shop", app="ratings"))
    assert [p.name for p in ratings.providers] == [
        "istio-system/mesh/0",
        "shop/users/0",
        "shop/users/1",
        "shop/users/2",
        "shop/users/3",
    ]
    assert ratings.providers[0].jwks_service == ("users.shop.svc.cluster.local", 80)
    assert authz.inbound_policies(snap, proxy("default", app="cart")).providers == ()


def test_unresolved_jwks_uris_are_reported() -> None:
    found = [(ra.name, i, uri) for ra, i, uri in authz.unresolved_jwks_uris(snapshot())]
    assert found == [
        ("users", 2, "http://users.shop.svc.cluster.local:9999/jwks"),
        ("users", 3, "http://keys.example.com/jwks"),
    ]


def test_equal_snapshots_give_equal_policies() -> None:
    a = authz.inbound_policies(snapshot(), proxy("shop", app="reviews"))
    b = authz.inbound_policies(snapshot(), proxy("shop", app="reviews"))
    assert a == b
    changed = snapshot(RESOURCES.replace("methods: [GET]", "methods: [POST]"))
    assert authz.inbound_policies(changed, proxy("shop", app="reviews")) != a
