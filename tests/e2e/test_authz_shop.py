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

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
AMI = [sys.executable, "-m", "amimesh.cli.main"]

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


@dataclass
class Shop:
    env: dict[str, str]
    config: Path
    gateway: str
    api: str
    token: str

    def ami(self, *args: str, stdin: str | None = None) -> None:
        out = subprocess.run(
            [*AMI, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr

    def apply(self, text: str, name: str) -> None:
        path = self.config.parent / name
        path.write_text(text)
        self.ami("apply", "-f", str(path))
        self.synced()

    def delete(self, name: str) -> None:
        self.ami("delete", "-f", str(self.config.parent / name))
        self.synced()

    def api_get(self, path: str) -> Any:
        with httpx.Client(trust_env=False, timeout=10) as http:
            r = http.get(self.api + path, headers={"Authorization": f"Bearer {self.token}"})
            r.raise_for_status()
            return r.json()

    def synced(self) -> None:
        wait_for(lambda: all(p["synced"] for p in self.api_get("/api/v1/proxies")["proxies"]))

    def page(self) -> tuple[int, str]:
        with httpx.Client(trust_env=False, timeout=15) as http:
            r = http.get(self.gateway + "productpage")
            return r.status_code, r.text


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def settled_page(shop: Shop, check: Callable[[int, str], bool], times: int = 5) -> str:
    """A page once `times` pages in a row pass `check`: connections opened before a
    policy change keep the old filters while they drain, one request at most each."""

    def steady() -> str | None:
        for _ in range(times):
            code, text = shop.page()
            if not check(code, text):
                return None
        return text

    page: str = wait_for(steady)
    return page


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    base = tmp_path_factory.mktemp("shop")
    config = base / "shop"
    shutil.copytree(SHOP, config, ignore=shutil.ignore_patterns("__pycache__"))
    state = base / "state"
    env = os.environ | {"AMI_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [*AMI, "up", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        info_file = wait_for(lambda: next(iter(state.glob("*/mesh.json")), None))
        info = json.loads(info_file.read_text())
        shop = Shop(
            env=env,
            config=config,
            gateway=info["gateway_urls"][0],
            api=info["api"],
            token=(info_file.parent / "api-token").read_text().strip(),
        )
        wait_for(lambda: all(i["ready"] for i in shop.api_get("/api/v1/status")["instances"]))
        shop.synced()
        yield shop
        shop.ami("down", str(config))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
