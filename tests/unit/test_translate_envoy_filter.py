"""EnvoyFilter patches on Ami's generated config: Istio's documented examples, each
read through `parse_documents` (so validated as a user's file is) and applied by the
generator to a real translation of a small mesh."""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from amimesh.model import sidecars
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import envoy_values, parse_documents
from amimesh.translate import envoy_filter
from amimesh.translate.built import CLUSTER, LISTENER, ROUTE
from amimesh.translate.generate import Generator

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews}}]}]
"""

REVIEWS = Proxy(
    id="reviews-0.default",
    workload="reviews",
    labels={"app": "reviews"},
    outbound_port=15001,
    inbound=(InboundPort(port=8080, listen_port=16000, app_port=16001),),
)
RATINGS = Proxy(
    id="ratings-0.default",
    workload="ratings",
    labels={"app": "ratings"},
    outbound_port=15002,
    inbound=(InboundPort(port=9080, listen_port=16002, app_port=16003),),
)
GATEWAY = Proxy(
    id="ingress-0.istio-system",
    kind="gateway",
    workload="istio-ingressgateway",
    namespace="istio-system",
    labels={"istio": "ingressgateway"},
    gateway_ports=(GatewayPort(port=80, listen_port=18080),),
)

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"


def snapshot(*texts: str) -> Snapshot:
    result = parse_documents("\n---\n".join([MESH, *texts]), "mesh.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    instances = [
        Instance(id=p.id, workload=p.workload, labels=p.labels, ports={8080: 16000})
        for p in (REVIEWS,)
    ]
    return build_snapshot(result.resources, instances)


def config(snap: Snapshot, proxy: Proxy) -> dict[str, dict[str, Any]]:
    out = Generator(snap).generate(proxy)
    return {t: {n: b.message for n, b in table.items()} for t, table in out.items()}


def hcms(listener: Any) -> list[Any]:
    found = []
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == "envoy.filters.network.http_connection_manager":
                m = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(m)
                found.append(m)
    return found


def http_filters(listener: Any) -> list[str]:
    (first, *_) = hcms(listener)
    return [f.name for f in first.http_filters]


# Istio's "custom-protocol" example, its second patch: a 30s idle timeout on every HTTP
# connection manager, sidecars' and gateways' (no context).
IDLE_TIMEOUT = f"""
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: custom-protocol, namespace: istio-system}}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      listener:
        filterChain:
          filter:
            name: "envoy.filters.network.http_connection_manager"
    patch:
      operation: MERGE
      value:
        name: "envoy.filters.network.http_connection_manager"
        typed_config:
          "@type": "{HCM_TYPE}.HttpConnectionManager"
          common_http_protocol_options:
            idle_timeout: 30s
"""


def test_merge_into_every_connection_manager_keeps_the_rest() -> None:
    snap = snapshot(IDLE_TIMEOUT)
    plain = config(snapshot(), REVIEWS)
    for proxy in (REVIEWS, GATEWAY):
        listeners = config(snap, proxy)[LISTENER]
        assert listeners
        for name, listener in listeners.items():
            for m in hcms(listener):
                assert m.common_http_protocol_options.idle_timeout.seconds == 30, name
    before = hcms(plain[LISTENER]["inbound|8080"])[0]
    after = hcms(config(snap, REVIEWS)[LISTENER]["inbound|8080"])[0]
    after.ClearField("common_http_protocol_options")
    assert after == before  # everything else as generated


# Istio's "reviews-lua" example: a Lua filter for inbound calls to port 8080 of the
# pods labelled app: reviews (filterClass AUTHZ: after authorization), and the cluster
# its code calls (the example's `hosts` is not in Envoy's v3 API: a load assignment).
LUA = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: reviews-lua}
spec:
  workloadSelector:
    labels:
      app: reviews
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8080
    patch:
      operation: ADD
      filterClass: AUTHZ
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
          inlineCode: |
            function envoy_on_request(request_handle)
            end
  - applyTo: CLUSTER
    match:
      context: SIDECAR_OUTBOUND
    patch:
      operation: ADD
      value:
        name: "lua_cluster"
        type: STRICT_DNS
        connect_timeout: 0.5s
        lb_policy: ROUND_ROBIN
        load_assignment:
          cluster_name: lua_cluster
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: {protocol: TCP, address: internal.org.net, port_value: 8888}
"""


def test_lua_example_on_one_workloads_inbound_port() -> None:
    snap = snapshot(LUA)
    reviews = config(snap, REVIEWS)
    filters = http_filters(reviews[LISTENER]["inbound|8080"])
    assert filters[-2:] == ["envoy.filters.http.lua", "envoy.filters.http.router"]
    assert "envoy.filters.http.lua" not in http_filters(reviews[LISTENER]["outbound"])
    assert reviews[CLUSTER]["lua_cluster"].load_assignment.cluster_name == "lua_cluster"
    ratings = config(snap, RATINGS)
    assert "lua_cluster" not in ratings[CLUSTER]
    assert "envoy.filters.http.lua" not in http_filters(ratings[LISTENER]["inbound|9080"])
    assert "lua_cluster" not in config(snap, GATEWAY)[CLUSTER]


# Istio's rate-limit task, local rate limit, as written: no match (the `listener` sits
# beside `patch`), deprecated filter names, a TypedStruct.
TASK = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-local-ratelimit-svc, namespace: istio-system}
spec:
  workloadSelector:
    labels:
      app: reviews
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
              token_bucket: {max_tokens: 10, tokens_per_fill: 10, fill_interval: 60s}
"""  # noqa: E501


def test_rate_limit_task_inserts_first_in_every_chain_with_the_typed_struct_unwrapped() -> None:
    snap = snapshot(TASK)
    reviews = config(snap, REVIEWS)
    for name in ("inbound|8080", "outbound"):
        (first, *_) = hcms(reviews[LISTENER][name])[0].http_filters
        assert first.name == "envoy.filters.http.local_ratelimit"
        limit = local_rate_limit_pb2.LocalRateLimit()
        assert first.typed_config.Unpack(limit)
        assert limit.token_bucket.max_tokens == 10
        assert limit.token_bucket.fill_interval.seconds == 60
    assert "envoy.filters.http.local_ratelimit" not in http_filters(
        config(snap, RATINGS)[LISTENER]["inbound|9080"]
    )


# Istio's global rate-limit task: rate limit actions on the gateway's virtual host `*:80`.
GATEWAY_VHOST = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-ratelimit-svc, namespace: istio-system}
spec:
  workloadSelector:
    labels:
      istio: ingressgateway
  configPatches:
    - applyTo: VIRTUAL_HOST
      match:
        context: GATEWAY
        routeConfiguration:
          vhost:
            name: "*:80"
            route:
              action: ANY
      patch:
        operation: MERGE
        value:
          rate_limits:
            - actions:
              - request_headers:
                  header_name: ":path"
                  descriptor_key: "PATH"
"""


def test_gateway_virtual_host_merge() -> None:
    routes = config(snapshot(GATEWAY_VHOST), GATEWAY)[ROUTE]
    vhosts = [v for r in routes.values() for v in r.virtual_hosts]
    assert [v.name for v in vhosts] == ["*:80"]
    (limit,) = vhosts[0].rate_limits
    assert limit.actions[0].request_headers.descriptor_key == "PATH"
    # A sidecar's tables are another context.
    for table in config(snapshot(GATEWAY_VHOST), REVIEWS)[ROUTE].values():
        assert all(not v.rate_limits for v in table.virtual_hosts)


ROUTE_AND_REPLACE = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: inbound-tweaks}
spec:
  workloadSelector: {labels: {app: reviews}}
  configPatches:
  - applyTo: HTTP_ROUTE
    match:
      context: SIDECAR_INBOUND
      routeConfiguration:
        vhost:
          name: "inbound|http|8080"
          route: {action: ROUTE}
    patch:
      operation: MERGE
      value:
        response_headers_to_add:
        - header: {key: x-route, value: patched}
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        name: virtualOutbound
        filterChain: {filter: {name: envoy.http_connection_manager}}
    patch:
      operation: REPLACE
      value:
        name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": "HCM_TYPE.HttpConnectionManager"
          stat_prefix: replaced
          route_config: {name: local}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - applyTo: CLUSTER
    match:
      cluster: {service: ratings.default.svc.cluster.local, portNumber: 9080}
    patch:
      operation: REMOVE
""".replace("HCM_TYPE", HCM_TYPE)


def test_inbound_route_merge_outbound_replace_and_cluster_remove() -> None:
    reviews = config(snapshot(ROUTE_AND_REPLACE), REVIEWS)
    (inbound,) = hcms(reviews[LISTENER]["inbound|8080"])[:1]
    (route,) = inbound.route_config.virtual_hosts[0].routes
    assert route.response_headers_to_add[0].header.key == "x-route"
    (outbound,) = hcms(reviews[LISTENER]["outbound"])
    assert outbound.stat_prefix == "replaced"
    assert "outbound|9080||ratings.default.svc.cluster.local" not in reviews[CLUSTER]
    assert "outbound|8080||reviews.default.svc.cluster.local" in reviews[CLUSTER]


def test_listener_names_and_ports_as_istio_writes_them() -> None:
    by_port = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: by-name}
spec:
  configPatches:
  - applyTo: LISTENER
    match: {context: SIDECAR_INBOUND, listener: {name: 0.0.0.0_8080}}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 1024}}
  - applyTo: LISTENER
    match: {listener: {portNumber: 9080}}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 2048}}
"""
    reviews = config(snapshot(by_port), REVIEWS)[LISTENER]
    assert reviews["inbound|8080"].per_connection_buffer_limit_bytes.value == 1024
    assert not reviews["outbound"].HasField("per_connection_buffer_limit_bytes")
    ratings = config(snapshot(by_port), RATINGS)[LISTENER]
    assert ratings["inbound|9080"].per_connection_buffer_limit_bytes.value == 2048


def test_order_priority_then_root_namespace_then_name() -> None:
    def named(name: str, namespace: str, priority: int) -> str:
        return (
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec: {{priority: {priority}, configPatches: []}}\n"
        )

    snap = snapshot(
        named("b", "default", 0),
        named("a", "default", 0),
        named("z", "istio-system", 0),
        named("late", "istio-system", 5),
        named("early", "default", -1),
        named("elsewhere", "other", -9),
    )
    found = sidecars.envoy_filters(snap, "default", {"app": "reviews"})
    assert [f.name for f in found] == ["early", "z", "a", "b", "late"]


def test_generator_caches_the_patched_config_and_redoes_it_on_change() -> None:
    snap = snapshot(TASK)
    gen = Generator(snap)
    one = gen.generate(REVIEWS)
    assert gen.generate(REVIEWS)[LISTENER] is one[LISTENER]
    changed = snapshot(TASK.replace("max_tokens: 10", "max_tokens: 3"))
    gen.update(changed)
    two = gen.generate(REVIEWS)
    assert two[LISTENER]["outbound"].version != one[LISTENER]["outbound"].version


def test_a_value_that_is_not_its_envoy_type_is_refused_with_its_path() -> None:
    bad = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: typo}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: x
          token_bucket: {max_tokenz: 1}
  - applyTo: CLUSTER
    patch: {operation: INSERT_BEFORE, value: {name: c}}
  - applyTo: CLUSTER
    patch: {operation: ADD, value: {name: c, typed_config: {"@type": type.googleapis.com/envoy.nope.v3.X}}}
"""  # noqa: E501
    errors = parse_documents(bad, "filters.yaml").errors
    assert [(e.file, e.ref, e.field) for e in errors] == [
        ("filters.yaml", "EnvoyFilter/default/typo", "spec.configPatches[0].patch.value"),
        ("filters.yaml", "EnvoyFilter/default/typo", "spec.configPatches[1].patch.operation"),
        ("filters.yaml", "EnvoyFilter/default/typo", "spec.configPatches[2].patch.value"),
    ]
    assert "max_tokenz" in errors[0].message and "TokenBucket" in errors[0].message
    assert "INSERT_BEFORE does not apply to CLUSTER" in errors[1].message


def test_merge_of_typed_configs_of_one_type_is_field_by_field() -> None:
    def filter_(body: dict[str, Any]) -> Any:
        return envoy_values.parse(
            "HTTP_FILTER",
            {
                "name": "x",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http."
                    "local_ratelimit.v3.LocalRateLimit",
                    **body,
                },
            },
        )

    dst = filter_({"stat_prefix": "a", "token_bucket": {"max_tokens": 5}})
    envoy_filter.merge(dst, filter_({"token_bucket": {"tokens_per_fill": 2}}))
    got = local_rate_limit_pb2.LocalRateLimit()
    dst.typed_config.Unpack(got)
    assert json_format.MessageToDict(got, preserving_proto_field_name=True) == {
        "stat_prefix": "a",
        "token_bucket": {"max_tokens": 5, "tokens_per_fill": 2},
    }
