"""Gateway proxies: which servers they serve, their listeners, route tables and TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import GatewayPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import (
    clusters,
    endpoints,
    gateway_listeners,
    gateway_routes,
    gateway_servers,
    gateway_tls,
    routes,
)
from amimesh.translate.built import CLUSTER, LISTENER, ROUTE
from amimesh.translate.generate import Generator
from tests.e2e.harness import self_signed_cert

SHOP = "shop.default.svc.cluster.local"
BASE = """
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {selector: {app: shop}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: store}
spec: {selector: {app: cart}, ports: [{name: http, port: 9080}]}
"""


def gateway(name: str = "ingress", servers: str = "", ns: str = "default", **selector: str) -> str:
    labels = selector or {"istio": "ingressgateway"}
    servers = (
        servers
        or """
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
"""
    )
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {labels}
  servers:{servers}"""


def vs(
    name: str, hosts: str, gateways: str | None, path: str = "/", ns: str = "default", **kw: str
) -> str:
    host = kw.get("to", "shop")
    bound = f"\n  gateways: {gateways}" if gateways is not None else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: {hosts}{bound}
  http:
  - match: [{{uri: {{prefix: "{path}"}}}}]
    route: [{{destination: {{host: {host}}}}}]
"""


def snapshot(text: str) -> Snapshot:
    result = parse_documents(BASE + text, "gw.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


PROXY = Proxy(
    id="ingress.default",
    kind="gateway",
    labels={"istio": "ingressgateway"},
    gateway_ports=(GatewayPort(8080, 18080), GatewayPort(443, 18443)),
)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def tables(snap: Snapshot, proxy: Proxy = PROXY) -> dict[str, Any]:
    return {c.name: c for c in gateway_routes.route_configs(snap, proxy)}


def vhosts(snap: Snapshot, name: str = "http.8080") -> dict[str, list[str]]:
    """Virtual host name → the path prefixes of its routes."""
    return {v.name: [r.match.prefix for r in v.routes] for v in tables(snap)[name].virtual_hosts}


def hcm_of(chain: Any) -> hcm_pb2.HttpConnectionManager:
    m = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].typed_config.Unpack(m)
    return m


# --- snapshot ---------------------------------------------------------------------------


def test_snapshot_indexes_gateways_and_bound_virtual_services() -> None:
    snap = snapshot(
        gateway()
        + gateway("edge", ns="store", app="edge")
        + vs("a", "[a.example.com]", "[ingress]")
        + vs("b", "[b.example.com]", "[store/edge, mesh]")
        + vs("c", "[c.example.com]", "[edge]", ns="store")
        + vs("d", "[shop]", None)
    )
    assert sorted(snap.gateways) == [("default", "ingress"), ("store", "edge")]
    assert [v.name for v in snap.virtual_services_for_gateway("default", "ingress")] == ["a"]
    assert [v.name for v in snap.virtual_services_for_gateway("store", "edge")] == ["b", "c"]
    assert snap.virtual_services_for_gateway("default", "edge") == ()
    assert [g.name for g in snap.gateways_for({"istio": "ingressgateway", "x": "y"})] == ["ingress"]
    assert [g.name for g in snap.gateways_for({"app": "edge"})] == ["edge"]
    assert snap.gateways_for({}) == []


# --- servers and listeners --------------------------------------------------------------


def test_plain_text_listener_per_mapped_port() -> None:
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9090, name: grpc, protocol: GRPC}
    hosts: ["*"]
"""
        )
    )
    # 9090 has no host port on this proxy: skipped.
    (lis,) = gateway_listeners.listeners(snap, PROXY)
    assert lis.name == "gateway|8080"
    assert as_dict(lis.address) == {"socket_address": {"address": "127.0.0.1", "port_value": 18080}}
    m = hcm_of(lis.filter_chains[0])
    assert m.codec_type == hcm_pb2.HttpConnectionManager.AUTO
    assert [f.name for f in m.http_filters] == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    assert m.use_remote_address.value is True
    assert m.strip_any_host_port is True
    assert m.rds.route_config_name == "http.8080"
    assert list(tables(snap)) == ["http.8080"]
    other = Proxy(
        id="x", kind="gateway", labels={"istio": "other"}, gateway_ports=PROXY.gateway_ports
    )
    assert gateway_listeners.listeners(snap, other) == []


def test_gateways_sharing_a_port_share_its_listener_and_table() -> None:
    snap = snapshot(
        gateway()
        + gateway("second")
        + vs("a", "[a.example.com]", "[ingress]", "/a")
        + vs("b", "[b.example.com]", "[second]", "/b")
        + vs("c", "[c.example.com]", "[ingress, second]", "/c")
    )
    assert [lis.name for lis in gateway_listeners.listeners(snap, PROXY)] == ["gateway|8080"]
    # Bound to both Gateways of the port, "c" still gives its routes once.
    assert vhosts(snap) == {
        "a.example.com:8080": ["/a"],
        "c.example.com:8080": ["/c"],
        "b.example.com:8080": ["/b"],
    }


def test_https_servers_get_a_chain_each_by_sni() -> None:
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: /c/a.pem, privateKey: /c/a.key}
  - port: {number: 443, name: https-any, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: /c/any.pem, privateKey: /c/any.key,
          minProtocolVersion: TLSV1_3}
"""
        )
        + gateway(
            "late",
            servers="""
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: /c/b.pem, privateKey: /c/b.key}
""",
        )
    )
    (lis,) = gateway_listeners.listeners(snap, PROXY)
    assert lis.name == "gateway|443"
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    # Gateway "late" asks for SNI a.example.com, already served: its server is skipped.
    assert [list(c.filter_chain_match.server_names) for c in lis.filter_chains] == [
        ["a.example.com"],
        [],
    ]
    assert [hcm_of(c).rds.route_config_name for c in lis.filter_chains] == [
        "https.443.https-a.ingress.default",
        "https.443.https-any.ingress.default",
    ]
    assert list(tables(snap)) == [
        "https.443.https-a.ingress.default",
        "https.443.https-any.ingress.default",
    ]
    socket = lis.filter_chains[1].transport_socket
    assert socket.name == "envoy.transport_sockets.tls"
    ctx = tls_pb2.DownstreamTlsContext()
    assert socket.typed_config.Unpack(ctx)
    assert as_dict(ctx) == {
        "common_tls_context": {
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": "/c/any.pem"},
                    "private_key": {"filename": "/c/any.key"},
                }
            ],
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_3"},
        }
    }


def test_the_first_server_on_a_port_decides_its_protocol() -> None:
    snap = snapshot(
        gateway()
        + gateway(
            "tls",
            servers="""
  - port: {number: 8080, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: /c/a.pem, privateKey: /c/a.key}
""",
        )
    )
    plan = gateway_servers.plan(snap, PROXY)
    assert [(p.port, p.listen_port, p.tls, len(p.servers)) for p in plan] == [
        (8080, 18080, False, 1)
    ]


# --- routes -----------------------------------------------------------------------------


def test_virtual_host_domains_intersect_vs_and_server_hosts() -> None:
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [shop.example.com, "*.api.example.com"]
"""
        )
        + vs("any", '["*"]', "[ingress]", "/any")
        + vs("one", "[v1.api.example.com, other.example.com]", "[ingress]", "/one")
    )
    assert vhosts(snap) == {
        "shop.example.com:8080": ["/any"],
        "*.api.example.com:8080": ["/any"],
        "v1.api.example.com:8080": ["/one"],
    }
    v = tables(snap)["http.8080"].virtual_hosts[0]
    assert list(v.domains) == ["shop.example.com"]
    r = v.routes[0]
    assert r.route.cluster == f"outbound|9080||{SHOP}"
    assert r.metadata.filter_metadata["ami"]["config"] == "VirtualService/default/any"


def test_gateway_and_mesh_bindings_stay_apart() -> None:
    snap = snapshot(
        gateway()
        + vs("edge-only", "[shop]", "[ingress]", "/edge")
        + vs("mesh-only", "[shop]", None, "/mesh")
        + vs("both", "[both.example.com]", "[default/ingress, mesh]", "/both")
    )
    assert vhosts(snap) == {"shop:8080": ["/edge"], "both.example.com:8080": ["/both"]}
    sidecar = routes.outbound(snap, "default", {})
    mesh = {v.name: [r.match.prefix for r in v.routes] for v in sidecar.virtual_hosts}
    assert mesh[f"{SHOP}:9080"] == ["/mesh"]
    assert mesh["both.example.com:80"] == ["/both"]


def test_match_gateways_and_server_host_namespaces() -> None:
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [store/cart.example.com, ./shop.example.com]
"""
        )
        + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [ingress, mesh]
  http:
  - match: [{uri: {prefix: /edge}, gateways: [ingress]}]
    route: [{destination: {host: shop}}]
  - match: [{uri: {prefix: /mesh}, gateways: [mesh]}]
    route: [{destination: {host: shop}}]
"""
        + vs("cart", "[cart.example.com]", "[default/ingress]", "/cart", ns="store", to="cart")
        + vs("stray", "[cart.example.com]", "[ingress]", "/stray")
    )
    assert vhosts(snap) == {"shop.example.com:8080": ["/edge"], "cart.example.com:8080": ["/cart"]}
    cart = tables(snap)["http.8080"].virtual_hosts[1].routes[0]
    # The destination resolves in the VirtualService's namespace.
    assert cart.route.cluster == "outbound|9080||cart.store.svc.cluster.local"


def test_https_redirect_requires_tls_even_without_virtual_services() -> None:
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [shop.example.com, www.example.com]
    tls: {httpsRedirect: true}
"""
        )
        + vs("shop", "[shop.example.com]", "[ingress]")
    )
    table = tables(snap)["http.8080"]
    assert [(v.name, v.require_tls, len(v.routes)) for v in table.virtual_hosts] == [
        ("shop.example.com:8080", rc.VirtualHost.ALL, 1),
        ("www.example.com:8080", rc.VirtualHost.ALL, 0),
    ]


def test_generator_follows_gateway_changes_and_shares_tables() -> None:
    gen = Generator(snapshot(gateway() + vs("a", '["*"]', "[ingress]", "/a")))
    twin = Proxy(
        id="ingress-2", kind="gateway", labels=PROXY.labels, gateway_ports=PROXY.gateway_ports
    )
    one, two = gen.generate(PROXY), gen.generate(twin)
    assert one[LISTENER] is two[LISTENER] and one[ROUTE] is two[ROUTE]
    assert list(one[LISTENER]) == ["gateway|8080"]
    assert f"outbound|9080||{SHOP}" in one[CLUSTER]
    gen.update(snapshot(gateway(servers=HTTPS_ANY) + vs("a", '["*"]', "[ingress]", "/a")))
    after = gen.generate(PROXY)
    assert list(after[LISTENER]) == ["gateway|443"]
    assert list(after[ROUTE]) == ["https.443.https.ingress.default"]


HTTPS_ANY = """
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: /CERT, privateKey: /KEY}
"""


@pytest.mark.envoy
def test_envoy_accepts_gateway_listeners_and_routes(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, "shop.example.com")
    https = HTTPS_ANY.replace("/CERT", str(cert)).replace("/KEY", str(key))
    https = https.replace('["*"]', "[shop.example.com]")
    snap = snapshot(
        gateway(
            servers="""
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
"""
            + https
        )
        + vs("a", '["*"]', "[ingress]", "/a")
    )
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap),
        load_assignments=[
            a for svc in snap.services.values() for a in endpoints.service_assignments(snap, svc)
        ],
        listeners=gateway_listeners.listeners(snap, PROXY),
        routes=gateway_routes.route_configs(snap, PROXY),
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- MUTUAL and credentialName ----------------------------------------------------------

SDS = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [
            {
                "envoy_grpc": {
                    "cluster_name": "sds-grpc",
                    "retry_policy": {
                        "retry_back_off": {"base_interval": "0.100s", "max_interval": "1s"}
                    },
                }
            }
        ],
    },
    "resource_api_version": "V3",
}
TLS_SERVERS = """
  - port: {number: 443, name: https-m, protocol: HTTPS}
    hosts: [m.example.com]
    tls: {mode: MUTUAL, serverCertificate: /CERT, privateKey: /KEY, caCertificates: /CA,
          subjectAltNames: [client.example.com]}
  - port: {number: 443, name: https-c, protocol: HTTPS}
    hosts: [c.example.com]
    tls: {mode: SIMPLE, credentialName: shop-tls}
  - port: {number: 443, name: https-cm, protocol: HTTPS}
    hosts: [cm.example.com]
    tls: {mode: MUTUAL, credentialName: "kubernetes://partner", subjectAltNames: [spiffe://x/y]}
"""


def contexts(snap: Snapshot) -> list[dict[str, Any]]:
    (lis,) = gateway_listeners.listeners(snap, PROXY)
    out = []
    for chain in lis.filter_chains:
        ctx = tls_pb2.DownstreamTlsContext()
        assert chain.transport_socket.typed_config.Unpack(ctx)
        out.append(as_dict(ctx))
    return out


def test_mutual_and_credential_name_contexts() -> None:
    snap = snapshot(gateway(servers=TLS_SERVERS))
    mutual, simple_sds, mutual_sds = contexts(snap)
    assert mutual == {
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [
                {"certificate_chain": {"filename": "/CERT"}, "private_key": {"filename": "/KEY"}}
            ],
            "validation_context": {
                "trusted_ca": {"filename": "/CA"},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "client.example.com"}}
                ],
            },
            "alpn_protocols": ["h2", "http/1.1"],
        },
    }
    assert simple_sds == {
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{"name": "shop-tls", "sds_config": SDS}],
            "alpn_protocols": ["h2", "http/1.1"],
        }
    }
    assert mutual_sds == {
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{"name": "partner", "sds_config": SDS}],
            "combined_validation_context": {
                "default_validation_context": {
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": "spiffe://x/y"}}
                    ]
                },
                "validation_context_sds_secret_config": {
                    "name": "partner-cacert",
                    "sds_config": SDS,
                },
            },
            "alpn_protocols": ["h2", "http/1.1"],
        },
    }
    servers = [s for g in snap.gateways_for(PROXY.labels) for s in g.spec.servers]
    assert gateway_tls.credentials(servers) == ["partner", "partner-cacert", "shop-tls"]


@pytest.mark.envoy
def test_envoy_accepts_mutual_and_sds_credentials(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, "m.example.com")
    servers = TLS_SERVERS.replace("/CERT", str(cert)).replace("/KEY", str(key))
    snap = snapshot(gateway(servers=servers.replace("/CA", str(cert))))
    config = bs.static_bootstrap(
        listeners=gateway_listeners.listeners(snap, PROXY),
        routes=gateway_routes.route_configs(snap, PROXY),
    )
    config["static_resources"]["clusters"].append(bs.sds_cluster(str(tmp_path / "sds.sock")))
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- security policies ------------------------------------------------------------------

EDGE = Proxy(
    id="ingress.istio-system",
    kind="gateway",
    namespace="istio-system",
    labels={"istio": "ingressgateway"},
    gateway_ports=PROXY.gateway_ports,
)
BOTH_PORTS = (
    """
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]"""
    + HTTPS_ANY
)
JWKS = (
    '{"keys": [{"kty": "EC", "crv": "P-256", "x": "y0xqxxMEN0gIFDBMb0Hq6ZkYgsSDf3Y1EWDOWn2MuGA",'
    ' "y": "exsPRVTqZsiEheyUP95g1IbS_iiCx-noFW_hviuSTuk"}]}'
)


def policy(name: str, spec: str, ns: str = "istio-system") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec: {spec}"""


def authn(name: str, selector: str, ns: str = "istio-system") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {selector}
  jwtRules: [{{issuer: edge.example.com, jwks: '{JWKS}'}}]"""


def filter_names(snap: Snapshot, proxy: Proxy = EDGE) -> dict[str, list[str]]:
    """Listener name → the HTTP filters of its first chain, short names."""
    out = {}
    for lis in gateway_listeners.listeners(snap, proxy):
        for chain in lis.filter_chains:
            names = [f.name.removeprefix("envoy.filters.http.") for f in hcm_of(chain).http_filters]
            out.setdefault(lis.name, names)
            assert names == out[lis.name]  # every chain of a port alike
    return out


PLAIN = ["header_mutation", "grpc_web", "cors", "fault", "router"]
SELECTOR = "{matchLabels: {istio: ingressgateway}}"


def test_gateway_without_policies_has_no_security_filters() -> None:
    snap = snapshot(
        gateway(servers=BOTH_PORTS, ns="istio-system")
        # Policies selecting other workloads, or of another namespace, do not apply.
        + policy("other", "{selector: {matchLabels: {app: shop}}}")
        + policy("elsewhere", "{selector: " + SELECTOR + "}", ns="default")
        + authn("elsewhere", SELECTOR, ns="default")
    )
    assert filter_names(snap) == {"gateway|8080": PLAIN, "gateway|443": PLAIN}


def test_selected_gateway_runs_jwt_and_rbac_after_cors_before_fault() -> None:
    snap = snapshot(
        gateway(servers=BOTH_PORTS, ns="istio-system")
        + authn("edge-jwt", SELECTOR)
        + policy("deny-admin", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}")
        + policy("edge-allow", "{selector: " + SELECTOR + ", rules: [{}]}")
    )
    secured = ["header_mutation", "grpc_web", "cors", "jwt_authn", "rbac", "rbac", "fault"]
    assert filter_names(snap) == {
        "gateway|8080": [*secured, "router"],
        "gateway|443": [*secured, "router"],
    }
    m = hcm_of(gateway_listeners.listeners(snap, EDGE)[0].filter_chains[0])
    deny, allow = (as_dict(f.typed_config)["rules"] for f in m.http_filters[4:6])
    assert deny["action"] == "DENY"
    assert list(deny["policies"]) == ["ns[istio-system]-policy[deny-admin]-rule[0]"]
    assert list(allow["policies"]) == ["ns[istio-system]-policy[edge-allow]-rule[0]"]
    jwt = as_dict(m.http_filters[3].typed_config)
    assert list(jwt["providers"]) == ["istio-system/edge-jwt/0"]
    assert jwt["bypass_cors_preflight"] is True


def test_gateway_policies_follow_its_namespace_and_labels() -> None:
    snap = snapshot(
        gateway(servers=BOTH_PORTS, ns="istio-system")
        + gateway("shop-gw", ns="shop", app="shop-gw")
        + policy("shop-only", "{}", ns="shop")
    )
    shop_gw = Proxy(
        id="gw.shop",
        kind="gateway",
        namespace="shop",
        labels={"app": "shop-gw"},
        gateway_ports=PROXY.gateway_ports,
    )
    assert "rbac" in filter_names(snap, shop_gw)["gateway|8080"]
    assert filter_names(snap)["gateway|8080"] == PLAIN
    # A root-namespace policy without a selector is mesh-wide: gateways included.
    mesh_wide = snapshot(
        gateway(ns="istio-system") + policy("mesh", "{action: AUDIT, rules: [{}]}")
    )
    assert filter_names(mesh_wide)["gateway|8080"] == [*PLAIN[:3], "rbac", *PLAIN[3:]]


def test_gateway_port_conditions_use_the_server_port() -> None:
    spec = "{selector: " + SELECTOR + ", rules: [{to: [{operation: {ports: ['8080']}}]}]}"
    snap = snapshot(gateway(servers=BOTH_PORTS, ns="istio-system") + policy("on-8080", spec))
    rules = {}
    for lis in gateway_listeners.listeners(snap, EDGE):
        m = hcm_of(lis.filter_chains[0])
        (rbac,) = (f for f in m.http_filters if f.name == "envoy.filters.http.rbac")
        rules[lis.name] = as_dict(rbac.typed_config)["rules"]["policies"]
    name = "ns[istio-system]-policy[on-8080]-rule[0]"
    assert rules["gateway|8080"][name]["permissions"] == [{"any": True}]
    assert rules["gateway|443"][name]["permissions"] == [{"not_rule": {"any": True}}]


def test_generator_retranslates_gateway_listeners_when_policies_change() -> None:
    base = gateway(ns="istio-system") + vs("a", '["*"]', "[istio-system/ingress]", "/a")
    gen = Generator(snapshot(base))
    before = gen.generate(EDGE)[LISTENER]
    gen.update(snapshot(base + policy("deny-all", "{selector: " + SELECTOR + "}")))
    after = gen.generate(EDGE)[LISTENER]
    assert after["gateway|8080"].serialized != before["gateway|8080"].serialized
    gen.update(snapshot(base))
    assert (
        gen.generate(EDGE)[LISTENER]["gateway|8080"].serialized == before["gateway|8080"].serialized
    )


@pytest.mark.envoy
def test_envoy_accepts_gateway_security_filters(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, "shop.example.com")
    servers = BOTH_PORTS.replace("/CERT", str(cert)).replace("/KEY", str(key))
    when = "[{key: 'request.auth.claims[groups]', values: [admins]}]"
    snap = snapshot(
        gateway(servers=servers, ns="istio-system")
        + vs("a", '["*"]', "[istio-system/ingress]", "/a")
        + authn("edge-jwt", SELECTOR)
        + policy(
            "deny",
            "{action: DENY, rules: [{from: [{source: {notRemoteIpBlocks: [10.0.0.0/8],"
            " ipBlocks: [127.0.0.1]}}], to: [{operation: {hosts: ['*.example.com']}}]}]}",
        )
        + policy("audit", "{action: AUDIT, rules: [{to: [{operation: {methods: [POST]}}]}]}")
        + policy(
            "allow",
            "{rules: [{from: [{source: {requestPrincipals: ['edge.example.com/*']}}],"
            f" when: {when}}}, {{from: [{{source: {{principals: ['*']}}}}]}}]}}",
        )
    )
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap),
        load_assignments=[
            a for svc in snap.services.values() for a in endpoints.service_assignments(snap, svc)
        ],
        listeners=gateway_listeners.listeners(snap, EDGE),
        routes=gateway_routes.route_configs(snap, EDGE),
    )
    assert "rbac" in filter_names(snap)["gateway|443"]
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
