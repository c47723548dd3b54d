"""VirtualService routing end to end: real sidecars, real traffic, real backends.

One mesh for the module (control plane in-process, xDS to real Envoys): workloads
reviews-v1, reviews-v2 and shadow behind their sidecars, and a client sidecar whose
outbound listener is the apps' HTTP proxy. Each test applies its own VirtualService
for `reviews` (replacing the previous one), waits until every proxy acked it, and
sends requests through the client sidecar.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.harness import Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

BASE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: shadow}
spec:
  selector: {app: shadow}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

URL = "http://reviews:9080"
PARALLEL = 16


@dataclass
class Routing:
    mesh: Mesh
    client: Sidecar
    v1: Sidecar
    v2: Sidecar
    shadow: Sidecar
    http: httpx.Client

    def route(self, *http: dict[str, Any], extra: str = "") -> None:
        """Apply a VirtualService for reviews with these http routes; wait until synced."""
        spec = {"hosts": ["reviews"], "http": list(http)}
        doc = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews"},
            "spec": spec,
        }
        runs = self.mesh.cp.xds.regenerations
        self.mesh.apply(yaml.safe_dump(doc) + extra, source="routing-vs.yaml")
        # `wait_synced` alone can return during the debounce delay, before the change is
        # even generated; wait for the regeneration round first.
        deadline = time.monotonic() + 10
        while self.mesh.cp.xds.regenerations == runs and time.monotonic() < deadline:
            time.sleep(0.005)
        self.mesh.wait_synced()
        for s in (self.v1, self.v2, self.shadow):
            assert s.backend is not None
            s.backend.clear()

    def many(self, n: int, path: str = "/") -> list[httpx.Response]:
        """`n` GETs, several at a time (each one waits on the backend's small latency)."""
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return list(pool.map(lambda _: self.http.get(URL + path), range(n)))

    def backend_of(self, response: httpx.Response) -> str:
        assert response.status_code == 200, (response.status_code, response.text)
        return str(response.json()["backend"])


@pytest.fixture(scope="module")
def routing(module_mesh: Mesh) -> Iterator[Routing]:
    module_mesh.apply(BASE, source="routing-base.yaml")
    v1 = module_mesh.workload("reviews-v1", {"app": "reviews", "version": "v1"}, port=9080)
    v2 = module_mesh.workload("reviews-v2", {"app": "reviews", "version": "v2"}, port=9080)
    shadow = module_mesh.workload("shadow", {"app": "shadow"}, port=9080)
    client = module_mesh.client()
    module_mesh.wait_synced()
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    with client.http(limits=limits) as http:
        yield Routing(module_mesh, client, v1, v2, shadow, http)


def to(subset: str, weight: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": {"host": "reviews", "subset": subset}}
    if weight is not None:
        out["weight"] = weight
    return out


def within_sigmas(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether `count` successes of `n` trials fit a binomial(n, p) within `sigmas`."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_header_match_routes_jason_to_v2(routing: Routing) -> None:
    routing.route(
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("v2")]},
        {"route": [to("v1")]},
    )
    h = routing.http
    for _ in range(5):
        assert routing.backend_of(h.get(URL, headers={"end-user": "jason"})) == "reviews-v2"
        assert routing.backend_of(h.get(URL, headers={"end-user": "maria"})) == "reviews-v1"
        assert routing.backend_of(h.get(URL)) == "reviews-v1"
    # Every name form of the service reaches the same virtual host.
    for host in ("reviews.default:9080", "reviews.default.svc.cluster.local:9080", "reviews"):
        r = h.get(f"http://{host}/", headers={"end-user": "jason"})
        assert routing.backend_of(r) == "reviews-v2"


def test_weighted_split_80_20(routing: Routing) -> None:
    routing.route({"route": [to("v1", 80), to("v2", 20)]})
    n = 1000
    seen = Counter(routing.backend_of(r) for r in routing.many(n))
    assert set(seen) == {"reviews-v1", "reviews-v2"}
    assert within_sigmas(seen["reviews-v1"], n, 0.8), seen


def test_uri_prefix_regex_and_delegate(routing: Routing) -> None:
    child = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""
    routing.route(
        {"match": [{"uri": {"prefix": "/v2/"}}], "route": [to("v2")]},
        {"match": [{"uri": {"regex": "^/r/[0-9]+$"}}], "route": [to("v2")]},
        {"match": [{"uri": {"prefix": "/api"}}], "delegate": {"name": "reviews-api"}},
        {"route": [to("v1")]},
        extra=child,
    )
    expect = {
        "/v2/books": "reviews-v2",
        "/r/42": "reviews-v2",
        "/r/42x": "reviews-v1",
        "/v1/books": "reviews-v1",
        "/api/v2/items": "reviews-v2",
        "/api/v1/items": "reviews-v1",
    }
    got = {path: routing.backend_of(routing.http.get(URL + path)) for path in expect}
    assert got == expect


def test_rewrite_and_redirect(routing: Routing) -> None:
    routing.route(
        {
            "match": [{"uri": {"prefix": "/old-api/"}}],
            "rewrite": {"uri": "/api/", "authority": "reviews.internal"},
            "route": [to("v1")],
        },
        {
            "match": [{"uri": {"exact": "/moved"}}],
            "redirect": {"uri": "/new", "authority": "books.example.com"},
        },
        {
            "match": [{"uri": {"exact": "/found"}}],
            "redirect": {"uri": "/there", "redirectCode": 302},
        },
        {"route": [to("v1")]},
    )
    body = routing.http.get(URL + "/old-api/items?q=1").json()
    assert body["path"] == "/api/items?q=1"
    assert body["host"] == "reviews.internal"
    moved = routing.http.get(URL + "/moved")
    assert moved.status_code == 301
    assert moved.headers["location"].startswith("http://books.example.com")
    assert moved.headers["location"].endswith("/new")
    found = routing.http.get(URL + "/found")
    assert found.status_code == 302
    assert found.headers["location"] == "http://reviews:9080/there"


def test_direct_response(routing: Routing) -> None:
    routing.route(
        {
            "match": [{"uri": {"exact": "/teapot"}}],
            "directResponse": {"status": 418, "body": {"string": "I'm a teapot"}},
        },
        {"route": [to("v1")]},
    )
    r = routing.http.get(URL + "/teapot")
    assert (r.status_code, r.text) == (418, "I'm a teapot")
    assert routing.v1.backend is not None and routing.v1.backend.count() == 0


def test_fault_abort_half_of_requests(routing: Routing) -> None:
    routing.route(
        {
            "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 50}}},
            "route": [to("v1")],
        }
    )
    n = 400
    codes = Counter(r.status_code for r in routing.many(n))
    assert set(codes) == {200, 503}
    assert within_sigmas(codes[503], n, 0.5), codes
    assert routing.v1.backend is not None and routing.v1.backend.count() == codes[200]


def test_fault_delay(routing: Routing) -> None:
    routing.route({"fault": {"delay": {"fixedDelay": "0.5s"}}, "route": [to("v1")]})
    start = time.monotonic()
    r = routing.http.get(URL)
    assert routing.backend_of(r) == "reviews-v1"
    # A lower bound only, never an upper one. Envoy arms timers from its cached loop
    # time, so one may fire a few milliseconds early: allow 20 ms.
    assert time.monotonic() - start >= 0.5 - 0.02


def test_timeout_gives_504_with_the_ut_flag(routing: Routing) -> None:
    routing.route(
        {
            "timeout": "0.3s",
            # Envoy expands %RESPONSE_FLAGS% in added headers, local replies included.
            "headers": {"response": {"set": {"x-response-flags": "%RESPONSE_FLAGS%"}}},
            "route": [to("v1")],
        }
    )
    r = routing.http.get(URL, headers={"x-echo-delay": "2"})
    assert r.status_code == 504
    assert r.text == "upstream request timeout"
    assert r.headers["x-response-flags"] == "UT"
    ok = routing.http.get(URL)
    assert ok.status_code == 200 and ok.headers["x-response-flags"] == "-"


def test_retries(routing: Routing) -> None:
    backend = routing.v1.backend
    assert backend is not None

    def attempts(key: str) -> int:
        return sum(1 for r in backend.requests if r.headers.get("x-echo-key") == key)

    def failing(key: str, failures: int, path: str = "/") -> httpx.Response:
        headers = {"x-echo-key": key, "x-echo-fail-first": str(failures)}
        return routing.http.get(URL + path, headers=headers)

    routing.route(
        {"match": [{"uri": {"prefix": "/none"}}], "retries": {"attempts": 0}, "route": [to("v1")]},
        {
            "match": [{"uri": {"prefix": "/many"}}],
            "retries": {"attempts": 4, "retryOn": "5xx", "perTryTimeout": "2s"},
            "route": [to("v1")],
        },
        {"route": [to("v1")]},  # Istio's default: 2 retries, 503 is retriable
    )
    assert failing("default", 2).status_code == 200
    assert attempts("default") == 3
    assert failing("default-exhausted", 3).status_code == 503
    assert attempts("default-exhausted") == 3
    assert failing("off", 1, "/none").status_code == 503
    assert attempts("off") == 1
    ok = failing("many", 4, "/many")
    assert ok.status_code == 200
    assert attempts("many") == 5
    assert ok.json()["headers"]["x-envoy-attempt-count"] == "5"


def test_mirror_sends_copies_with_shadow_host(routing: Routing) -> None:
    routing.route(
        {
            "route": [to("v1")],
            "mirror": {"host": "shadow"},
            "mirrorPercentage": {"value": 100.0},
        }
    )
    r = routing.http.get(URL + "/mirrored")
    assert routing.backend_of(r) == "reviews-v1"
    shadow = routing.shadow.backend
    assert shadow is not None
    deadline = time.monotonic() + 10
    while shadow.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    [copy] = shadow.requests
    assert copy.path == "/mirrored"
    assert copy.headers["host"] == "reviews-shadow:9080"


def test_cors_preflight(routing: Routing) -> None:
    routing.route(
        {
            "corsPolicy": {
                "allowOrigins": [{"exact": "https://shop.example"}],
                "allowMethods": ["GET", "POST"],
                "allowHeaders": ["x-token"],
                "maxAge": "1h",
            },
            "route": [to("v1")],
        }
    )
    preflight = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    r = routing.http.options(URL + "/cart", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert r.headers["access-control-allow-methods"] == "GET,POST"
    assert r.headers["access-control-allow-headers"] == "x-token"
    assert r.headers["access-control-max-age"] == "3600"
    backend = routing.v1.backend
    assert backend is not None and backend.count() == 0  # answered by the sidecar
    # A preflight from another origin is forwarded to the app.
    other = {**preflight, "origin": "https://evil.example"}
    r = routing.http.options(URL + "/cart", headers=other)
    assert "access-control-allow-origin" not in r.headers
    assert backend.count() == 1
    # A simple request from an allowed origin gets the allow-origin header.
    r = routing.http.get(URL, headers={"origin": "https://shop.example"})
    assert r.headers["access-control-allow-origin"] == "https://shop.example"


def test_request_and_response_header_operations(routing: Routing) -> None:
    routing.route(
        {
            "headers": {
                "request": {
                    "set": {"x-set": "mesh"},
                    "add": {"x-added": "a"},
                    "remove": ["x-secret"],
                },
                "response": {"set": {"x-mesh": "ami"}, "remove": ["x-backend"]},
            },
            "route": [
                {
                    "destination": {"host": "reviews", "subset": "v1"},
                    "headers": {"request": {"set": {"x-dest": "v1"}}},
                }
            ],
        }
    )
    r = routing.http.get(URL, headers={"x-set": "client", "x-secret": "s"})
    assert r.status_code == 200
    seen = r.json()["headers"]
    assert seen["x-set"] == "mesh"
    assert seen["x-added"] == "a"
    assert seen["x-dest"] == "v1"
    assert "x-secret" not in seen
    assert r.headers["x-mesh"] == "ami"
    assert "x-backend" not in r.headers


def test_source_labels_and_unknown_destinations(routing: Routing) -> None:
    routing.route(
        {
            "match": [{"uri": {"prefix": "/mine"}, "sourceLabels": {"app": "client"}}],
            "route": [to("v2")],
        },
        {
            "match": [{"uri": {"prefix": "/theirs"}, "sourceLabels": {"app": "other"}}],
            "route": [to("v2")],
        },
        {"match": [{"uri": {"prefix": "/gone"}}], "route": [to("v9")]},
        {"route": [to("v1")]},
    )
    assert routing.backend_of(routing.http.get(URL + "/mine")) == "reviews-v2"
    assert routing.backend_of(routing.http.get(URL + "/theirs")) == "reviews-v1"
    # An undefined subset is answered by the sidecar, not routed to a missing cluster.
    gone = routing.http.get(URL + "/gone")
    assert gone.status_code == 503
    assert "known to the mesh" in gone.text
