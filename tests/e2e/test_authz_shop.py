"""Istio's authorization task (HTTP traffic), step by step on the example shop.

The real `ami up examples/shop` (a copy, with its own state directory); every check is
a page through the gateway. Sidecars talk mutual TLS, so policies name callers by their
service accounts (`cluster.local/ns/default/sa/shop-frontend`). Reviews are pinned to
v2, which calls ratings, so the page shows whether ratings answered.

1. `spec: {}` in the namespace: every workload refuses everything (403 at the frontend).
2. GET allowed on the frontend: the page loads, but the book (catalog) and the reviews
   are unavailable.
3. catalog and reviews allowed from the frontend's principal: book and reviews are
   back; ratings is still denied ("Ratings service is currently unavailable").
4. ratings allowed from reviews' principal: the stars are back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.e2e import shopmesh
from tests.e2e.shopmesh import Shop, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
BOOK = "The Late Train"
STARS = "stars-black"

REVIEWS_V2 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"""

ALLOW_NOTHING = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
"""

FRONTEND_VIEWER = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: frontend-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: frontend}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET]}}]
"""

FROM_FRONTEND = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/shop-frontend]}}]
    to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: catalog-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: catalog}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/shop-frontend]}}]
    to: [{operation: {methods: [POST], paths: ["/catalog.Catalog/*"]}}]
"""

RATINGS_VIEWER = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/shop-reviews]}}]
    to: [{operation: {methods: [GET]}}]
"""


def settled_page(shop: Shop, check: Callable[[int, str], bool], times: int = 5) -> str:
    """A page once `times` pages in a row pass `check`: connections opened before a
    policy change keep the old filters while they drain, one request at most each."""

    def steady() -> str | None:
        for _ in range(times):
            code, text = shop.fetch()
            if not check(code, text):
                return None
        return text

    page: str = wait_for(steady)
    return page


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    yield from shopmesh.running(tmp_path_factory.mktemp("shop"))


def test_authorization_task(shop: Shop) -> None:
    shop.apply(REVIEWS_V2, "reviews-v2.yaml")
    page = settled_page(shop, lambda code, text: code == 200 and STARS in text)
    assert BOOK in page and "reviews-v2" in page

    # 1. Allow nothing: the frontend's sidecar refuses the gateway's request.
    shop.apply(ALLOW_NOTHING, "allow-nothing.yaml")
    page = settled_page(shop, lambda code, text: code == 403)
    assert page == "RBAC: access denied"

    # 2. GET on the frontend: the page, without the book and the reviews.
    shop.apply(FRONTEND_VIEWER, "frontend-viewer.yaml")
    page = settled_page(shop, lambda code, text: code == 200)
    assert DETAILS_UNAVAILABLE in page and REVIEWS_UNAVAILABLE in page

    # 3. catalog and reviews from the frontend's principal; ratings still denied.
    shop.apply(FROM_FRONTEND, "from-frontend.yaml")
    page = settled_page(shop, lambda code, text: BOOK in text and "reviews-v2" in text)
    assert RATINGS_UNAVAILABLE in page and STARS not in page

    # 4. ratings from reviews' principal: the stars are back.
    shop.apply(RATINGS_VIEWER, "ratings-viewer.yaml")
    page = settled_page(shop, lambda code, text: code == 200 and STARS in text)
    assert BOOK in page and RATINGS_UNAVAILABLE not in page

    # Without the deny-all, the namespace is open again but for the workloads that
    # still have ALLOW policies: the frontend accepts only GET.
    shop.delete("allow-nothing.yaml")
    with httpx.Client(trust_env=False, timeout=15) as http:
        assert http.post(shop.gateway + "checkout?item=1").status_code == 403
    for name in ("ratings-viewer", "from-frontend", "frontend-viewer", "reviews-v2"):
        shop.delete(f"{name}.yaml")
    settled_page(shop, lambda code, text: code == 200 and BOOK in text)
