"""Istio YAML that Ami used to refuse: valid documents accepted with Istio's meaning,
fields that mean nothing on one machine accepted and reported, and DestinationRule
fields translated as Istio's pilot translates them (issue 14, points 2, 4 and 5)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model import analyze
from amimesh.model import telemetry as model_telemetry
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import kube, parse_documents
from amimesh.resources.meta import Resource
from amimesh.translate import cluster_policy, clusters, endpoints, gateway_tls, tls
from tests.unit import envoy_check

HOST = "reviews.default.svc.cluster.local"
JWKS = '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}'
HTTP_OPTS = cluster_policy.HTTP_PROTOCOL_OPTIONS

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc-api, port: 7070}]
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: reviews, labels: {app: reviews, version: v1}}
spec:
  command: [reviews]
  ports: [{name: http, port: 9080}, {name: grpc-api, port: 7070}]
"""


def parsed(text: str) -> list[Resource]:
    result = parse_documents(text, "test.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return result.resources


def parsed_lenient(text: str) -> list[Resource]:
    """The resources of `text`; the JWKS of the test policy is empty, which the
    checks refuse, so it gets a key first."""
    return parsed(text.replace('{"keys": []}', JWKS))


def errors(text: str) -> list[str]:
    return [str(e) for e in parse_documents(text, "test.yaml").errors]


def snapshot(*texts: str) -> Snapshot:
    instances = [
        Instance(
            id="reviews-0",
            workload="reviews",
            labels={"app": "reviews", "version": "v1"},
            ports={9080: 20001, 7070: 20002},
        )
    ]
    return build_snapshot([r for t in texts for r in parsed(t)], instances)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def cluster(snap: Snapshot, port: int, subset: str = "") -> dict[str, Any]:
    by_name = {c.name: c for c in clusters.outbound_clusters(snap)}
    return as_dict(by_name[f"outbound|{port}|{subset}|{HOST}"])


def rule(traffic_policy: str, subsets: str = "") -> str:
    text = f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy:
{traffic_policy}"""
    return text + (f"  subsets:\n{subsets}" if subsets else "")


def lb_policy(c: dict[str, Any]) -> str:
    # ROUND_ROBIN is the enum's zero: JSON leaves it out.
    policy: str = c.get("lb_policy", "ROUND_ROBIN")
    return policy


def one(resources: list[Resource], kind: type[Resource]) -> Any:
    (found,) = [r for r in resources if isinstance(r, kind)]
    return found


# --- point 4: valid YAML, wrongly refused before -----------------------------------------


def test_null_annotations_and_labels_are_empty() -> None:
    # As in Istio's Kiali and Loki addons: `annotations:` with nothing after it.
    (svc,) = parsed(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: kiali\n  labels:\n  annotations:\n"
        "spec:\n  ports: [{port: 20001}]\n"
    )
    assert svc.metadata.labels == {}
    assert svc.metadata.annotations == {}


def test_null_is_not_any_value() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: [x]\nspec:\n"
    assert any("metadata.labels" in e for e in errors(text + "  ports: [{port: 1}]\n"))


def test_simple_tls_without_ca_verifies_with_the_system_cas() -> None:
    snap = snapshot(SERVICE, rule("    tls: {mode: SIMPLE}\n"))
    socket = cluster(snap, 9080)["transport_socket"]
    validation = socket["typed_config"]["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": tls.SYSTEM_CA_BUNDLE}
    assert validation["match_typed_subject_alt_names"][0]["matcher"] == {"exact": HOST}
    assert socket["typed_config"]["sni"] == HOST


def test_mutual_tls_without_ca_verifies_with_the_system_cas() -> None:
    policy = "    tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}\n"
    context = cluster(snapshot(SERVICE, rule(policy)), 9080)["transport_socket"]["typed_config"]
    common = context["common_tls_context"]
    assert common["validation_context"]["trusted_ca"] == {"filename": tls.SYSTEM_CA_BUNDLE}
    assert common["tls_certificates"][0]["certificate_chain"] == {"filename": "/c.pem"}


def test_relative_certificate_paths_are_passed_to_envoy_as_written() -> None:
    policy = (
        "    tls: {mode: MUTUAL, clientCertificate: certs/c.pem, privateKey: certs/k.pem,\n"
        "          caCertificates: certs/ca.pem}\n"
    )
    context = cluster(snapshot(SERVICE, rule(policy)), 9080)["transport_socket"]["typed_config"]
    common = context["common_tls_context"]
    assert common["validation_context"]["trusted_ca"] == {"filename": "certs/ca.pem"}
    assert common["tls_certificates"][0]["private_key"] == {"filename": "certs/k.pem"}


def test_a_certificate_path_must_still_be_a_path() -> None:
    got = errors(rule('    tls: {mode: SIMPLE, caCertificates: "  "}\n'))
    assert got == [
        "test.yaml: document 0 (line 2): DestinationRule/default/reviews: "
        'spec.trafficPolicy.tls.caCertificates: must be a file path, got "  "'
    ]


GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: certs/a.pem
      privateKey: certs/a.key
      caCertificates: certs/ca.pem
"""


def test_simple_gateway_ignores_ca_certificates_as_istio_does() -> None:
    resources = parsed(GATEWAY)
    server_tls = one(resources, gw.Gateway).spec.servers[0].tls
    context = as_dict(gateway_tls.downstream_tls_context(server_tls))
    common = context["common_tls_context"]
    assert "validation_context" not in common
    assert "require_client_certificate" not in context
    assert common["tls_certificates"] == [
        {
            "certificate_chain": {"filename": "certs/a.pem"},
            "private_key": {"filename": "certs/a.key"},
        }
    ]
    found = analyze.analyze(build_snapshot(resources))
    assert [(f.code, f.field) for f in found] == [("AMI0401", "spec.servers[0].tls.caCertificates")]


TELEMETRY = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - customTags:
      user: {header: {name: X-User-Id, defaultValue: none}}
"""


def test_upper_case_custom_tag_header_is_read_lowercased() -> None:
    telemetry = one(parsed(TELEMETRY), tel.Telemetry)
    (tag,) = model_telemetry.tracing_of(telemetry).tags
    assert (tag.name, tag.kind, tag.value, tag.default) == ("user", "header", "x-user-id", "none")


def virtual_service(mirror: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    mirror: {{host: reviews}}
    {mirror}
"""


def test_mirror_percent_is_the_deprecated_spelling_of_mirror_percent() -> None:
    snake = one(parsed(virtual_service("mirror_percent: 25")), net.VirtualService)
    camel = one(parsed(virtual_service("mirrorPercent: 25")), net.VirtualService)
    assert snake.spec.http[0].mirrorPercent == 25
    assert snake == camel
    assert errors(virtual_service("mirror_percent: 101"))
    (both,) = errors(virtual_service("mirror_percent: 25\n    mirrorPercent: 25"))
    assert both.endswith(
        "spec.http[0]: set only one of mirrorPercent and mirror_percent: they are one field "
        "(its JSON and its proto name)"
    )


# --- point 5: fields that mean nothing on one machine ------------------------------------


def test_node_port_and_ip_families_are_accepted_and_reported() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ipFamilies: [IPv6]
  ipFamilyPolicy: SingleStack
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
"""
    resources = parsed(text)
    svc = one(resources, kube.Service)
    assert (svc.spec.type, svc.spec.ports[0].nodePort) == ("NodePort", 30080)
    found = [f for f in analyze.analyze(build_snapshot(resources)) if f.code == "AMI0303"]
    assert [f.field for f in found] == [
        "spec.type",
        "spec.ports[0].nodePort",
        "spec.ipFamilies",
        "spec.ipFamilyPolicy",
    ]
    assert all(f.severity == "Info" and "ignored" in f.message for f in found)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "  ports: [{port: 80, nodePort: 30080}]\n",
            'spec.ports[0].nodePort: may not be used when type is "ClusterIP" (as in Kubernetes)',
        ),
        (
            "  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 80}]\n",
            "spec.ipFamilies: two families need ipFamilyPolicy PreferDualStack or RequireDualStack",
        ),
        ("  ipFamilyPolicy: DualStack\n  ports: [{port: 80}]\n", "spec.ipFamilyPolicy: "),
    ],
)
def test_kubernetes_rules_for_those_fields_still_hold(spec: str, expected: str) -> None:
    (got,) = errors("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + spec)
    assert expected in got


# --- point 2: DestinationRule fields with Istio's semantics ------------------------------


def test_consecutive_errors_counts_gateway_errors_only() -> None:
    policy = "    outlierDetection: {consecutiveErrors: 7, interval: 5m}\n"
    od = cluster(snapshot(SERVICE, rule(policy)), 9080)["outlier_detection"]
    assert od == {
        "consecutive_gateway_failure": 7,
        "enforcing_consecutive_gateway_failure": 100,
        "enforcing_consecutive_5xx": 0,
        "enforcing_success_rate": 0,
        "interval": "300s",
    }


def test_consecutive_errors_zero_ejects_nothing_more() -> None:
    policy = "    outlierDetection: {consecutiveErrors: 0}\n"
    od = cluster(snapshot(SERVICE, rule(policy)), 9080)["outlier_detection"]
    assert od == {"enforcing_success_rate": 0}


def test_consecutive_errors_beside_its_successors_is_refused() -> None:
    policy = "    outlierDetection: {consecutiveErrors: 7, consecutive5xxErrors: 3}\n"
    (got,) = errors(rule(policy))
    assert got.endswith(
        "spec.trafficPolicy.outlierDetection.consecutiveErrors: cannot be used with "
        "consecutive5xxErrors: it is their deprecated form (it counts gateway errors, as "
        "consecutiveGatewayErrors does)"
    )


@pytest.mark.parametrize(
    ("simple", "config"),
    [("", "least_request_lb_config"), ("simple: ROUND_ROBIN, ", "round_robin_lb_config")],
)
def test_warmup_duration_is_envoys_slow_start(simple: str, config: str) -> None:
    policy = f"    loadBalancer: {{{simple}warmupDurationSecs: 90s}}\n"
    c = cluster(snapshot(SERVICE, rule(policy)), 9080)
    assert c[config] == {"slow_start_config": {"slow_start_window": "90s"}}


def test_warmup_sets_window_minimum_and_aggression() -> None:
    full = "    loadBalancer: {warmup: {duration: 60s, minimumPercent: 25, aggression: 2}}\n"
    c = cluster(snapshot(SERVICE, rule(full)), 9080)
    assert c["least_request_lb_config"]["slow_start_config"] == {
        "slow_start_window": "60s",
        "aggression": {"default_value": 2.0, "runtime_key": "ami.slow_start.aggression"},
        "min_weight_percent": {"value": 25.0},
    }
    bare = "    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 60s}}\n"
    c = cluster(snapshot(SERVICE, rule(bare)), 9080)
    config = c["round_robin_lb_config"]["slow_start_config"]
    assert (config["aggression"]["default_value"], config["min_weight_percent"]) == (
        1.0,
        {"value": 10.0},
    )


@pytest.mark.parametrize(
    ("lb", "expected"),
    [
        ("warmup: {minimumPercent: 5}", "loadBalancer.warmup.duration: is required"),
        ("warmup: {duration: 1s, aggression: 0}", "loadBalancer.warmup.aggression: must be"),
        ("warmup: {duration: 1s, minimumPercent: 101}", "warmup.minimumPercent: must be"),
        (
            "warmup: {duration: 1s}, warmupDurationSecs: 1s",
            "loadBalancer.warmupDurationSecs: cannot be used with warmup: it is warmup's "
            "deprecated form (warmup.duration)",
        ),
    ],
)
def test_warmup_is_checked_as_istio_does(lb: str, expected: str) -> None:
    (got,) = errors(rule(f"    loadBalancer: {{{lb}}}\n"))
    assert expected in got


@pytest.mark.parametrize(
    ("lb", "what"),
    [("simple: RANDOM", "RANDOM"), ("consistentHash: {useSourceIp: true}", "consistentHash")],
)
def test_warmup_duration_needs_a_balancer_with_slow_start(lb: str, what: str) -> None:
    (got,) = errors(rule(f"    loadBalancer: {{{lb}, warmupDurationSecs: 90s}}\n"))
    assert got.endswith(
        "spec.trafficPolicy.loadBalancer.warmupDurationSecs: is used only with ROUND_ROBIN or "
        f"LEAST_REQUEST balancing (Envoy's slow start); this rule uses {what}"
    )


def test_use_client_protocol_keeps_the_clients_http_version() -> None:
    policy = "    connectionPool: {http: {useClientProtocol: true, idleTimeout: 5s}}\n"
    snap = snapshot(SERVICE, rule(policy))
    for port in (9080, 7070):  # an HTTP/1.1 port and an HTTP/2 (gRPC) one
        opts = cluster(snap, port)["typed_extension_protocol_options"][HTTP_OPTS]
        assert "explicit_http_config" not in opts
        assert opts["use_downstream_protocol_config"] == {
            "http_protocol_options": {},
            "http2_protocol_options": {},
        }
        assert opts["common_http_protocol_options"] == {"idle_timeout": "5s"}


def test_use_client_protocol_lets_alpn_follow_the_client() -> None:
    # No fixed ALPN list: Envoy offers the protocol of the pool the request takes.
    pool = "    connectionPool: {http: {useClientProtocol: true}}\n"
    mesh_tls = "    tls: {mode: ISTIO_MUTUAL}\n"

    def offered(policy: str) -> Any:
        c = cluster(snapshot(SERVICE, rule(policy)), 7070)
        return c["transport_socket"]["typed_config"]["common_tls_context"].get("alpn_protocols")

    assert offered(mesh_tls) == ["h2"]
    assert offered(mesh_tls + pool) is None


PORT_LEVEL = """    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
    - port: {number: 7070}
      loadBalancer: {simple: RANDOM}
"""


def test_port_level_settings_replace_the_policy_for_their_port() -> None:
    snap = snapshot(SERVICE, rule(PORT_LEVEL))
    http = cluster(snap, 9080)
    assert lb_policy(http) == "ROUND_ROBIN"
    assert http["circuit_breakers"]["thresholds"][0]["max_connections"] == 10
    assert http["outlier_detection"]["consecutive_5xx"] == 3
    grpc = cluster(snap, 7070)
    assert lb_policy(grpc) == "RANDOM"
    # Not inherited from the top level: Istio's defaults.
    assert grpc["circuit_breakers"]["thresholds"][0]["max_connections"] == 4294967295
    assert "outlier_detection" not in grpc


def test_duplicate_port_level_settings_are_refused() -> None:
    again = "    - port: {number: 7070}\n      loadBalancer: {simple: LEAST_REQUEST}\n"
    (got,) = errors(rule(PORT_LEVEL + again))
    assert got.endswith(
        "spec.trafficPolicy.portLevelSettings[1].port.number: port 7070 already has settings "
        "in portLevelSettings[0]"
    )


def test_port_level_settings_with_subsets_merge_as_istio() -> None:
    subsets = """  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 5}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 5}}
      portLevelSettings:
      - port: {number: 9080}
        loadBalancer: {simple: LEAST_REQUEST}
"""
    snap = snapshot(SERVICE, rule(PORT_LEVEL, subsets))
    # v1 on 7070: the top level's port-level entry, then the subset's connectionPool.
    v1 = cluster(snap, 7070, "v1")
    assert lb_policy(v1) == "RANDOM"
    assert v1["circuit_breakers"]["thresholds"][0]["max_connections"] == 5
    assert "outlier_detection" not in v1
    # v1 on 9080: the top level, then the subset's connectionPool.
    v1_http = cluster(snap, 9080, "v1")
    assert lb_policy(v1_http) == "ROUND_ROBIN"
    assert v1_http["outlier_detection"]["consecutive_5xx"] == 3
    # v2 on 9080: the subset's port-level entry replaces every field.
    v2 = cluster(snap, 9080, "v2")
    assert lb_policy(v2) == "LEAST_REQUEST"
    assert v2["circuit_breakers"]["thresholds"][0]["max_connections"] == 4294967295
    assert "outlier_detection" not in v2
    # v2 on 7070: no subset entry for the port, so field by field.
    v2_grpc = cluster(snap, 7070, "v2")
    assert lb_policy(v2_grpc) == "RANDOM"
    assert v2_grpc["circuit_breakers"]["thresholds"][0]["max_connections"] == 5


def test_port_level_consistent_hash_is_the_routes_hash_policy() -> None:
    policy = """    portLevelSettings:
    - port: {number: 7070}
      loadBalancer: {consistentHash: {httpHeaderName: x-user}}
"""
    snap = snapshot(SERVICE, rule(policy))
    assert clusters.hash_policy_for(snap, HOST, None, 9080) == []
    (hashed,) = clusters.hash_policy_for(snap, HOST, None, 7070)
    assert as_dict(hashed) == {"header": {"header_name": "x-user"}}


def test_an_empty_port_level_entry_is_refused() -> None:
    (got,) = errors(rule("    portLevelSettings: [{port: {number: 9080}}]\n"))
    assert got.endswith(
        "spec.trafficPolicy.portLevelSettings[0]: must set at least one of loadBalancer, "
        "connectionPool, outlierDetection, tls"
    )


# --- Envoy takes all of it ----------------------------------------------------------------

EVERYTHING = (
    SERVICE
    + "---"
    + rule(
        """    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s, aggression: 1.5}}
    connectionPool: {http: {useClientProtocol: true}}
    outlierDetection: {consecutiveErrors: 5}
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 7070}
      loadBalancer: {warmupDurationSecs: 10s}
    - port: {number: 9080}
      loadBalancer: {warmup: {duration: 5s, minimumPercent: 0}}
      tls: {mode: SIMPLE, caCertificates: certs/ca.pem}
""",
        "  - name: v1\n    labels: {version: v1}\n",
    )
    + "---"
    + GATEWAY
    + "---"
    + TELEMETRY
    + "---"
    + virtual_service("mirror_percent: 50")
    + """---
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
spec:
  type: NodePort
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  selector: {app: reviews}
  ports: [{name: http, port: 9080, nodePort: 30080}]
"""
)


@pytest.mark.envoy
def test_envoy_accepts_every_new_field(tmp_path: Path) -> None:
    outcome = envoy_check.check(EVERYTHING, envoy_check.Files.create(tmp_path))
    assert outcome.kind == "accepted", outcome.detail


@pytest.mark.envoy
def test_envoy_reads_a_relative_certificate_path_from_its_working_directory(
    tmp_path: Path,
) -> None:
    # The node agent starts every Envoy in the mesh's directory (`EnvoySpec.cwd`, see
    # test_runtime_plan): a relative path in the YAML names a file under it.
    from tests.e2e.harness import self_signed_cert

    mesh = tmp_path / "mesh"
    (mesh / "certs").mkdir(parents=True)
    cert, _ = self_signed_cert(mesh / "certs", "reviews.default.svc.cluster.local")
    cert.rename(mesh / "certs" / "ca.pem")
    snap = snapshot(SERVICE, rule("    tls: {mode: SIMPLE, caCertificates: certs/ca.pem}\n"))
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap), load_assignments=endpoints.load_assignments(snap)
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]

    def run(cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)

    found = run(mesh)
    assert found.returncode == 0, found.stdout[-2000:] + found.stderr[-2000:]
    missing = run(tmp_path)
    assert missing.returncode != 0
    assert "certs/ca.pem" in missing.stdout + missing.stderr


# --- targetRefs on AuthorizationPolicy and RequestAuthentication -------------------------

POLICIES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-deny, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: edge}]
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint-only, namespace: shop}
spec:
  targetRef: {kind: Service, group: "", name: web}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-selector, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge-jwt, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: edge}]
  jwtRules: [{issuer: https://idp.example.com, jwks: '{"keys": []}'}]
"""


def names(policies: Any) -> list[str]:
    return [p.name for p in policies]


def test_target_refs_attach_policies_as_istio_does() -> None:
    from amimesh.model import authz as model_authz
    from amimesh.model.proxy import Proxy

    resources = [r for r in parsed_lenient(POLICIES)]
    snap = build_snapshot(resources)
    web = Proxy(id="web-0.shop", namespace="shop", labels={"app": "web"})
    gateway_api = Proxy(
        id="edge-0.shop",
        namespace="shop",
        labels={"app": "web", model_authz.GATEWAY_NAME_LABEL: "edge"},
    )
    elsewhere = Proxy(
        id="edge-0.other", namespace="other", labels={model_authz.GATEWAY_NAME_LABEL: "edge"}
    )
    # A sidecar ignores a policy with target references altogether (never namespace-wide).
    at_web = model_authz.inbound_policies(snap, web)
    assert (names(at_web.deny), names(at_web.allow), at_web.providers) == (["by-selector"], [], ())
    # A Gateway API gateway takes what names it, and selector policies that select it.
    at_gateway = model_authz.inbound_policies(snap, gateway_api)
    assert names(at_gateway.deny) == ["by-selector", "edge-deny"]
    assert names(at_gateway.allow) == []  # a Service target is for waypoints
    assert [p.name for p in at_gateway.providers] == ["shop/edge-jwt/0"]
    # Only in the policy's own namespace.
    at_other = model_authz.inbound_policies(snap, elsewhere)
    assert (at_other.deny, at_other.providers) == ((), ())


def test_analyze_warns_when_target_refs_reach_no_proxy() -> None:
    found = analyze.analyze(build_snapshot(parsed_lenient(POLICIES)))
    got = [(f.code, f.ref, f.field) for f in found if f.code == "AMI0501"]
    assert got == [
        ("AMI0501", "AuthorizationPolicy/shop/edge-deny", "spec.targetRefs"),
        ("AMI0501", "AuthorizationPolicy/shop/waypoint-only", "spec.targetRef"),
        ("AMI0501", "RequestAuthentication/shop/edge-jwt", "spec.targetRefs"),
    ]
    waypoint = next(f for f in found if f.name == "waypoint-only")
    assert "waypoint" in waypoint.message
    gateway = """---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata:
  name: edge
  namespace: shop
  labels: {gateway.networking.k8s.io/gateway-name: edge}
spec: {command: [envoy]}
"""
    found = analyze.analyze(build_snapshot(parsed_lenient(POLICIES + gateway)))
    assert [f.name for f in found if f.code == "AMI0501"] == ["waypoint-only"]
