"""Contour's HTTPProxy end to end: a real gateway Envoy serving a root proxy that
delegates `/product` to a proxy another namespace owns.

One mesh for the module: workloads `web` (namespace `root`), `product-v1` and
`product-v2` (namespace `shop`, one Service `product` over both plus one per version),
`greeter` (namespace `shop`, a gRPC server behind a Service annotated
`projectcontour.io/upstream-protocol.h2c`), and the ingress gateway on ports 80 and
443 (the root `secure.example.com` has `tls.secretName`; the test serves that
credential to the gateway by SDS, as its agent would).
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from amimesh.agent import sds as sds_mod
from tests.e2e.harness import GrpcBackend, Mesh, Sidecar, self_signed_cert, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: root}
spec: {selector: {app: web}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: product-v1, namespace: shop}
spec: {selector: {app: product, version: v1}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: product-v2, namespace: shop}
spec: {selector: {app: product, version: v2}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: greeter
  namespace: shop
  annotations: {projectcontour.io/upstream-protocol.h2c: "9090"}
spec: {selector: {app: greeter}, ports: [{name: plain, port: 9090}]}
"""

PROXIES = """
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: main, namespace: root}
spec:
  virtualhost: {fqdn: shop.example.com}
  routes:
  - services: [{name: web, port: 9080}]
  includes:
  - name: product
    namespace: shop
    conditions: [{prefix: /product}]
  - name: split
    namespace: shop
    conditions: [{prefix: /split}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: product, namespace: shop}
spec:
  routes:
  - services: [{name: product-v1, port: 9080}]
    pathRewritePolicy:
      replacePrefix: [{replacement: /}]
    requestHeadersPolicy:
      set: [{name: X-Delegated, value: shop}]
  - conditions: [{header: {name: X-Canary, exact: "yes"}}]
    services: [{name: product-v2, port: 9080}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: split, namespace: shop}
spec:
  routes:
  - services:
    - {name: product-v1, port: 9080, weight: 75}
    - {name: product-v2, port: 9080, weight: 25}
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: grpc, namespace: shop}
spec:
  virtualhost: {fqdn: grpc.example.com}
  routes:
  - services: [{name: greeter, port: 9090}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: secure, namespace: root}
spec:
  virtualhost:
    fqdn: secure.example.com
    tls: {secretName: secure-cert}
  routes:
  - conditions: [{prefix: /open}]
    services: [{name: web, port: 9080}]
    permitInsecure: true
  - services: [{name: web, port: 9080}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: lost, namespace: shop}
spec:
  routes:
  - conditions: [{prefix: /lost}]
    services: [{name: product-v1, port: 9080}]
"""


@dataclass
class Edge:
    mesh: Mesh
    gateway: Sidecar
    http: httpx.Client
    cert: Path

    def get(self, path: str, host: str = "shop.example.com", **headers: str) -> httpx.Response:
        return self.http.get(self.gateway.url(80) + path, headers={"host": host, **headers})


TOKEN = "httpproxy-test-token"


@pytest.fixture(scope="module")
def api_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A mesh whose control plane serves its HTTP API too (`ami get` reads status there)."""
    m = Mesh(tmp_path_factory.mktemp("mesh"), api_token=TOKEN).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def edge(api_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    api_mesh.apply(SERVICES + "---" + PROXIES, source="contour.yaml")
    api_mesh.workload("web", {"app": "web"}, port=9080, namespace="root")
    for version in ("v1", "v2"):
        labels = {"app": "product", "version": version}
        api_mesh.workload(f"product-{version}", labels, port=9080, namespace="shop")
    api_mesh.workload("greeter", {"app": "greeter"}, port=9090, namespace="shop", protocol="GRPC")
    gateway = api_mesh.gateway(ports={80: 0, 443: 0})
    # The credential `secure-cert` the gateway's agent would serve: by SDS, here.
    cert, key = self_signed_cert(tmp_path_factory.mktemp("certs"), "secure.example.com")
    secrets = sds_mod.Secrets(cert.read_text(), key.read_text(), "")
    named = sds_mod.secret_protos(secrets, certificate="secure-cert", validation=None)
    sds = gateway.sds
    assert sds is not None

    async def serve() -> None:
        sds.put(named)

    api_mesh._call(serve())
    api_mesh.wait_synced()
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        edge = Edge(api_mesh, gateway, http, cert)
        wait_for(lambda: edge.get("/").status_code == 200, timeout=60)
        yield edge


def backend(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    return str(response.json()["backend"])


def test_root_routes_its_own_paths(edge: Edge) -> None:
    assert backend(edge.get("/")) == "web"
    assert backend(edge.get("/about")) == "web"
    assert edge.get("/", host="other.example.com").status_code == 404


def test_include_routes_to_the_other_namespace_with_the_prefix_replaced(edge: Edge) -> None:
    response = edge.get("/product/items?id=7")
    assert backend(response) == "product-v1"
    assert response.json()["path"] == "/items?id=7"
    assert response.json()["headers"]["x-delegated"] == "shop"
    assert edge.get("/product").json()["path"] == "/"
    # The included proxy's header condition, under the include's prefix.
    assert backend(edge.get("/product/items", **{"X-Canary": "yes"})) == "product-v2"


def test_weights_split(edge: Edge) -> None:
    seen = Counter(backend(edge.get("/split/x")) for _ in range(80))
    assert set(seen) == {"product-v1", "product-v2"}
    assert seen["product-v1"] > seen["product-v2"]


def test_an_orphan_is_not_served(edge: Edge) -> None:
    # `/lost` is the orphan's only route: the root's `/` answers it instead.
    assert backend(edge.get("/lost")) == "web"
    status = edge.mesh.cp.httpproxy.status_of(("HTTPProxy", "shop", "lost"))
    assert status is not None and status["currentStatus"] == "orphaned"
    main = edge.mesh.cp.httpproxy.status_of(("HTTPProxy", "root", "main"))
    assert main is not None and main["currentStatus"] == "valid"


def test_tls_virtual_host_and_permit_insecure(edge: Edge) -> None:
    context = ssl.create_default_context(cafile=str(edge.cert))

    def https_get(path: str) -> httpx.Response:
        with httpx.Client(verify=context, trust_env=False, timeout=10.0) as https:
            return https.get(
                edge.gateway.url(443, "https") + path,
                headers={"host": "secure.example.com"},
                extensions={"sni_hostname": "secure.example.com"},
            )

    def served() -> httpx.Response | None:
        try:
            return https_get("/page")
        except (OSError, httpx.TransportError):
            return None

    assert backend(wait_for(served)) == "web"
    # Plain HTTP redirects to HTTPS, except the route that permits it.
    plain = edge.get("/page", host="secure.example.com")
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://secure.example.com")
    assert backend(edge.get("/open", host="secure.example.com")) == "web"


def test_status_through_the_api(edge: Edge) -> None:
    api = f"http://127.0.0.1:{edge.mesh.cp.api_port}/api/v1/resources"
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        got = http.get(
            api,
            params={"kind": "proxies", "namespace": "shop"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert got.status_code == 200, got.text
    status = {
        r["metadata"]["name"]: r["status"]["currentStatus"]
        for r in got.json()["items"]
        if r["kind"] == "HTTPProxy"
    }
    assert status["lost"] == "orphaned"
    assert status["product"] == "valid"


def test_h2c_backend_through_the_proxy(edge: Edge) -> None:
    target = f"127.0.0.1:{edge.gateway.proxy.gateway_ports[0].listen_port}"
    options = [("grpc.default_authority", "grpc.example.com")]
    with grpc.insecure_channel(target, options=options) as channel:
        say = channel.unary_unary(GrpcBackend.METHOD)
        assert say(b"hello", timeout=10) == b"greeter|hello"


def test_a_cycle_and_a_duplicate_fqdn_are_invalid(edge: Edge) -> None:
    edge.mesh.apply(
        """
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: again, namespace: shop}
spec:
  virtualhost: {fqdn: shop.example.com}
  routes: [{services: [{name: product-v1, port: 9080}]}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: loop-a, namespace: shop}
spec:
  virtualhost: {fqdn: loop.example.com}
  includes: [{name: loop-b, conditions: [{prefix: /b}]}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: loop-b, namespace: shop}
spec:
  includes: [{name: loop-c, conditions: [{prefix: /c}]}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: loop-c, namespace: shop}
spec:
  includes: [{name: loop-b}]
""",
        source="broken.yaml",
    )
    try:
        cp = edge.mesh.cp

        def state(name: str) -> str:
            found = cp.httpproxy.status_of(("HTTPProxy", "shop", name))
            return "" if found is None else str(found["currentStatus"])

        wait_for(lambda: state("again") == "invalid" and state("loop-c") == "invalid")
        again = cp.httpproxy.status_of(("HTTPProxy", "shop", "again"))
        assert again is not None and "used in multiple HTTPProxies" in again["description"]
        loop = cp.httpproxy.status_of(("HTTPProxy", "shop", "loop-c"))
        assert loop is not None and "include cycle" in loop["description"]
        # Neither root of shop.example.com is served now.
        wait_for(lambda: edge.get("/").status_code == 404)
    finally:
        edge.mesh.remove("broken.yaml")
    wait_for(lambda: edge.get("/").status_code == 200)
