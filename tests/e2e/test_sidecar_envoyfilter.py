"""Istio's Sidecar and EnvoyFilter end to end, through real Envoys.

- A client whose Sidecar imports two hosts holds only their clusters, endpoints and
  virtual hosts (by its admin `/config_dump`); a client without one holds all. Calls
  to any other host follow the Sidecar's outboundTrafficPolicy: REGISTRY_ONLY answers
  502 (Istio's block_all), ALLOW_ANY passes the request through to wherever the host
  is (a server outside the mesh here).
- An EnvoyFilter inserting a header-mutation filter before the router of one
  workload's inbound HTTP filter chain: its responses carry the header, another
  workload's do not. A patch Envoy rejects is reported (the xDS status: rejected, with
  Envoy's message) and the last good config keeps serving.
- Istio's rate-limit task, its local rate limit EnvoyFilter as written (root namespace,
  `workloadSelector: {app: productpage}`, TypedStruct config, 10 tokens a minute) on
  one workload, and the same filter with `context: GATEWAY` on the ingress gateway:
  requests past the bucket get 429 with `x-local-rate-limit: true`, the others 200,
  and the 429s are counted in `istio_requests_total`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from amimesh.telemetry.labels import LABELS
from amimesh.translate.built import LISTENER
from tests.e2e.backend import Backend
from tests.e2e.harness import Mesh, Sidecar, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SERVICES = "\n---\n".join(
    f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 8080}}]}}
"""
    for name in ("alpha", "beta", "gamma", "productpage")
)

SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped-client}
spec:
  workloadSelector: {labels: {app: scoped}}
  egress:
  - hosts: ["./alpha.default.svc.cluster.local", "default/beta.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: MODE}
"""

HEADER_FILTER = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: alpha-response-header}
spec:
  workloadSelector: {labels: {app: alpha}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8080
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.header_mutation
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
          mutations:
            response_mutations:
            - append: {header: {key: x-patched-by, value: envoy-filter}}
"""  # noqa: E501

# A value that parses (stat_prefix is a string) but that Envoy refuses: its
# validation requires a non-empty stat_prefix.
REJECTED_FILTER = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: alpha-rejected}
spec:
  workloadSelector: {labels: {app: alpha}}
  priority: 10
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: ""
"""  # noqa: E501

# Istio's rate-limit task, "Local rate limit", as its page writes it (the `listener`
# beside `patch`, not under a `match`, is the page's own: the API server prunes it).
LOCAL_RATE_LIMIT = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
    - applyTo: HTTP_FILTER
      listener:
        filterChain:
          filter:
            name: "envoy.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
              token_bucket:
                max_tokens: 10
                tokens_per_fill: 10
                fill_interval: 60s
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              response_headers_to_add:
                - append: false
                  header:
                    key: x-local-rate-limit
                    value: 'true'
"""  # noqa: E501

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - route: [{destination: {host: alpha, port: {number: 8080}}}]
"""

# The gateway's local rate limit: the task's filter with the gateway's match.
GATEWAY_RATE_LIMIT = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-gateway
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      istio: ingressgateway
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: GATEWAY
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
              subFilter:
                name: "envoy.filters.http.router"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append_action: OVERWRITE_IF_EXISTS_OR_ADD
              header: {key: x-local-rate-limit, value: "true"}
"""  # noqa: E501


@pytest.fixture
def apps(mesh: Mesh) -> Iterator[dict[str, Sidecar]]:
    mesh.apply(SERVICES, source="services.yaml")
    out = {name: mesh.workload(name, {"app": name}) for name in ("alpha", "beta", "gamma")}
    yield out


def _dump(s: Sidecar, resource: str) -> list[dict[str, Any]]:
    data = json.loads(s.envoy.admin(f"/config_dump?resource={resource}&include_eds"))
    configs: list[dict[str, Any]] = data.get("configs", [])
    return configs


def cluster_names(s: Sidecar) -> set[str]:
    return {c["cluster"]["name"] for c in _dump(s, "dynamic_active_clusters")}


def endpoint_names(s: Sidecar) -> set[str]:
    return {e["endpoint_config"]["cluster_name"] for e in _dump(s, "dynamic_endpoint_configs")}


def outbound_vhosts(s: Sidecar) -> set[str]:
    for r in _dump(s, "dynamic_route_configs"):
        if r["route_config"]["name"] == "outbound":
            return {v["name"] for v in r["route_config"].get("virtual_hosts", [])}
    return set()


def status_of(s: Sidecar, code: int, url: str, **kw: Any) -> bool:
    with s.http() as http:
        return http.get(url, **kw).status_code == code


def test_sidecar_narrows_a_proxy_and_applies_its_outbound_policy(
    mesh: Mesh, apps: dict[str, Sidecar]
) -> None:
    outside = Backend("outside").start()
    try:
        mesh.apply(SIDECAR.replace("MODE", "REGISTRY_ONLY"), source="sidecar.yaml")
        scoped = mesh.client("scoped", {"app": "scoped"})
        everyone = mesh.client("other", {"app": "other"})
        mesh.wait_synced(30)
        alpha = "outbound|8080||alpha.default.svc.cluster.local"
        beta = "outbound|8080||beta.default.svc.cluster.local"
        gamma = "outbound|8080||gamma.default.svc.cluster.local"

        def outbound_clusters(s: Sidecar) -> set[str]:
            return {n for n in cluster_names(s) if n.startswith("outbound|")}

        wait_for(lambda: outbound_clusters(scoped) == {alpha, beta}, timeout=30)
        assert wait_for(lambda: endpoint_names(scoped) >= {alpha, beta}, timeout=30)
        assert gamma not in endpoint_names(scoped)
        assert outbound_vhosts(scoped) == {
            "alpha.default.svc.cluster.local:8080",
            "beta.default.svc.cluster.local:8080",
            "block_all",
        }
        # A proxy with no Sidecar holds every service.
        wait_for(lambda: {alpha, beta, gamma} <= outbound_clusters(everyone), timeout=30)
        assert {"block_all", "allow_any"}.isdisjoint(outbound_vhosts(everyone))

        # What it imports it reaches; the rest is REGISTRY_ONLY's 502.
        wait_for(lambda: status_of(scoped, 200, "http://alpha:8080/"), timeout=30)
        assert status_of(scoped, 200, "http://beta.default:8080/")
        assert status_of(scoped, 502, "http://gamma:8080/")
        assert status_of(scoped, 502, f"http://127.0.0.1:{outside.port}/")
        assert status_of(everyone, 200, "http://gamma:8080/")
        assert not outside.requests

        # ALLOW_ANY: a host the proxy does not know is passed through to where it is.
        mesh.apply(SIDECAR.replace("MODE", "ALLOW_ANY"), source="sidecar.yaml")
        wait_for(lambda: status_of(scoped, 200, f"http://127.0.0.1:{outside.port}/via"), timeout=30)
        assert [r.path for r in outside.requests][-1] == "/via"
        assert "PassthroughCluster" in cluster_names(scoped)
        assert "allow_any" in outbound_vhosts(scoped)
        assert gamma not in cluster_names(scoped)
    finally:
        outside.stop()


def test_envoy_filter_patches_one_workloads_inbound_chain(
    mesh: Mesh, apps: dict[str, Sidecar]
) -> None:
    client = mesh.client()
    mesh.apply(HEADER_FILTER, source="filter.yaml")
    mesh.wait_synced(30)

    def header(host: str) -> str | None:
        with client.http() as http:
            r = http.get(f"http://{host}:8080/")
            return r.headers.get("x-patched-by") if r.status_code == 200 else "not-200"

    wait_for(lambda: header("alpha") == "envoy-filter", timeout=30)
    assert header("beta") is None
    filters = _http_filter_names(apps["alpha"], "inbound|8080")
    assert filters.index("envoy.filters.http.header_mutation") == len(filters) - 2
    assert "envoy.filters.http.header_mutation" not in _http_filter_names(
        apps["beta"], "inbound|8080"
    )

    # A patch Envoy rejects: reported, and the last good config keeps serving.
    mesh.apply(REJECTED_FILTER, source="rejected.yaml")

    def rejected() -> Any:
        for st in mesh.cp.xds.status():
            if st.proxy_id == apps["alpha"].proxy.id:
                listeners = st.type(LISTENER)
                if listeners is not None and listeners.rejected and listeners.last_nack:
                    return listeners.last_nack
        return None

    nack = wait_for(rejected, timeout=30)
    assert "stat_prefix" in nack.message or "StatPrefix" in nack.message, nack.message
    assert header("alpha") == "envoy-filter"
    assert "envoy.filters.http.local_ratelimit" not in _http_filter_names(
        apps["alpha"], "inbound|8080"
    )
    # Fixed (removed), every proxy acks its config again.
    mesh.remove("rejected.yaml")
    mesh.wait_synced(30)
    assert header("alpha") == "envoy-filter"


def _http_filter_names(s: Sidecar, listener: str) -> list[str]:
    for entry in _dump(s, "dynamic_listeners"):
        active = entry.get("active_state", {}).get("listener", {})
        if active.get("name") != listener:
            continue
        for chain in active.get("filter_chains", []):
            for f in chain.get("filters", []):
                if f["name"] == "envoy.filters.network.http_connection_manager":
                    return [h["name"] for h in f["typed_config"]["http_filters"]]
    return []


def _requests_with(mesh: Mesh, **want: str) -> float:
    http, _tcp = mesh.cp.metrics.snapshot()
    out = 0.0
    for key, series in http.items():
        labels = dict(zip(LABELS, key, strict=True))
        if all(labels.get(k) == v for k, v in want.items()):
            out += series.count
    return out


def test_istio_local_rate_limit_task_on_a_workload_and_the_gateway(mesh: Mesh) -> None:
    # The filter comes first: a connection opened before a listener changes keeps the
    # filters it was accepted with, so no request may reach productpage before it.
    mesh.apply(LOCAL_RATE_LIMIT, source="local-ratelimit.yaml")
    mesh.apply(SERVICES + "\n---\n" + GATEWAY, source="services.yaml")
    page = mesh.workload("productpage", {"app": "productpage"})
    mesh.workload("alpha", {"app": "alpha"})
    client = mesh.client("ratings", {"app": "ratings"})
    gateway = mesh.gateway()
    mesh.wait_synced(30)
    assert "envoy.filters.http.local_ratelimit" in _http_filter_names(page, "inbound|8080")
    wait_for(
        lambda: "outbound|8080||productpage.default.svc.cluster.local" in endpoint_names(client)
    )
    with httpx.Client(trust_env=False, timeout=10) as raw:
        wait_for(lambda: raw.get(gateway.url(8080) + "/").status_code == 200, timeout=30)
    mesh.apply(GATEWAY_RATE_LIMIT, source="gateway-ratelimit.yaml")
    mesh.wait_synced(30)

    # The workload: 10 tokens a minute, then 429 with the task's header.
    with client.http() as http:
        responses = [http.get("http://productpage:8080/productpage") for _ in range(14)]
    codes = [r.status_code for r in responses]
    assert codes[:10] == [200] * 10, codes
    assert codes[10:] == [429] * 4, codes
    assert all(r.headers.get("x-local-rate-limit") == "true" for r in responses[10:])
    assert "x-local-rate-limit" not in responses[0].headers
    page_429 = {
        "reporter": "destination",
        "destination_workload": "productpage",
        "response_code": "429",
    }
    wait_for(lambda: _requests_with(mesh, **page_429) == 4, timeout=30)

    # The gateway: 4 tokens a minute.
    with httpx.Client(trust_env=False, timeout=10) as raw:

        def limited() -> bool:
            return "envoy.filters.http.local_ratelimit" in _gateway_filters(gateway)

        wait_for(limited, timeout=30)
        gw = [raw.get(gateway.url(8080) + "/") for _ in range(7)]
    codes = [r.status_code for r in gw]
    assert codes == [200] * 4 + [429] * 3, codes
    assert gw[-1].headers.get("x-local-rate-limit") == "true"
    gateway_429 = {"reporter": "source", "source_workload": "ingress", "response_code": "429"}
    wait_for(lambda: _requests_with(mesh, **gateway_429) == 3, timeout=30)


def _gateway_filters(gateway: Sidecar) -> list[str]:
    return _http_filter_names(gateway, "gateway|8080")


def test_sidecar_ingress_default_endpoint_moves_the_app(
    mesh: Mesh, apps: dict[str, Sidecar]
) -> None:
    moved = Backend("moved").start()
    try:
        client = mesh.client()
        mesh.wait_synced(30)

        def served_by() -> str:
            with client.http() as http:
                r = http.get("http://beta:8080/")
                return str(r.json()["backend"]) if r.status_code == 200 else str(r.status_code)

        wait_for(lambda: served_by() == "beta", timeout=30)
        ingress = f"""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: beta}}
spec:
  workloadSelector: {{labels: {{app: beta}}}}
  ingress:
  - port: {{number: 8080, protocol: HTTP, name: http}}
    defaultEndpoint: 127.0.0.1:{moved.port}
"""
        mesh.apply(ingress, source="ingress.yaml")
        wait_for(lambda: served_by() == "moved", timeout=30)
        mesh.remove("ingress.yaml")
        wait_for(lambda: served_by() == "beta", timeout=30)
    finally:
        moved.stop()
