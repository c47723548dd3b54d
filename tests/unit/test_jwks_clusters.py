"""https:// `jwksUri`: which cluster fetches the keys, and the clusters for identity
providers outside the mesh (SNI, trusted CAs, SAN), checked by `envoy --mode validate`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model import authz
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import authn_jwt, clusters, inbound_filters, jwks_clusters
from amimesh.translate.built import CLUSTER, LISTENER
from amimesh.translate.generate import Generator
from amimesh.translate.listener_hcm import (
    ROUTER_FILTER,
    hcm,
    hcm_filter,
    http_filter,
    listener,
    single_chain,
)
from amimesh.translate.listeners import inbound_route_config
from tests.e2e.harness import self_signed_cert

PORT = InboundPort(port=8080, listen_port=15006, app_port=8081, name="http")
PROXY = Proxy(id="cart.shop", namespace="shop", labels={"app": "cart"}, inbound=(PORT,))
CA_FILE = "/etc/ami/corp-ca.pem"

RULES = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: shop, namespace: shop}
spec:
  jwtRules:
  - issuer: idp.example
    jwksUri: https://IdP.Example.com/.well-known/jwks.json
  - issuer: corp.example
    jwksUri: https://keys.corp.example:8443/jwks
    timeout: 2s
  - issuer: mesh-https.example
    jwksUri: https://idp.shop.ami/jwks
  - issuer: mesh-name.example
    jwksUri: https://users/jwks
  - issuer: plain.example
    jwksUri: http://keys.example.com/jwks
  - issuer: address.example
    jwksUri: https://192.0.2.10:9443/jwks
  - issuer: again.example
    jwksUri: https://idp.example.com/other-keys.json
"""

RESOURCES = (
    RULES
    + f"""---
apiVersion: v1
kind: Service
metadata: {{name: users, namespace: shop}}
spec:
  selector: {{app: users}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: idp, namespace: shop}}
spec:
  hosts: [idp.shop.ami]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: corp, namespace: shop}}
spec:
  host: keys.corp.example
  trafficPolicy:
    connectionPool: {{tcp: {{connectTimeout: 3s}}}}
    tls: {{mode: SIMPLE, caCertificates: {CA_FILE}}}
"""
)


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def snapshot(text: str = RESOURCES) -> Snapshot:
    result = parse_documents(text, "authn.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def providers(snap: Snapshot) -> dict[str, dict[str, Any]]:
    [f] = inbound_filters.http_filters(snap, PROXY, PORT)
    config = jwt_pb2.JwtAuthentication()
    assert f.typed_config.Unpack(config)
    out: dict[str, dict[str, Any]] = as_dict(config)["providers"]
    return out


def fetched_from(provider: dict[str, Any]) -> str | None:
    """The cluster a provider fetches its keys through; None for keys that verify nothing."""
    if "remote_jwks" in provider:
        cluster: str = provider["remote_jwks"]["http_uri"]["cluster"]
        return cluster
    assert provider["local_jwks"] == {"inline_string": authn_jwt.UNREACHABLE_JWKS}
    return None


def tls_context(c: cluster_pb2.Cluster) -> dict[str, Any]:
    assert c.transport_socket.name == "envoy.transport_sockets.tls"
    ctx = tls_pb2.UpstreamTlsContext()
    assert c.transport_socket.typed_config.Unpack(ctx)
    return as_dict(ctx)


def by_name(snap: Snapshot) -> dict[str, cluster_pb2.Cluster]:
    return {c.name: c for c in jwks_clusters.clusters(snap, PROXY)}


def test_each_uri_is_fetched_through_the_cluster_its_host_calls_for() -> None:
    found = {name: fetched_from(p) for name, p in providers(snapshot()).items()}
    assert found == {
        "shop/shop/0": "jwks|idp.example.com|443",
        "shop/shop/1": "jwks|keys.corp.example|8443",
        # A ServiceEntry names the host: its outbound cluster, TLS by the mesh's rules.
        "shop/shop/2": "outbound|443||idp.shop.ami",
        # A mesh name with no such service port, and http:// outside the mesh: nothing.
        "shop/shop/3": None,
        "shop/shop/4": None,
        "shop/shop/5": "jwks|192.0.2.10|9443",
        "shop/shop/6": "jwks|idp.example.com|443",
    }
    corp = providers(snapshot())["shop/shop/1"]["remote_jwks"]["http_uri"]
    assert corp == {
        "uri": "https://keys.corp.example:8443/jwks",
        "cluster": "jwks|keys.corp.example|8443",
        "timeout": "2s",
    }


def test_the_model_reports_what_cannot_be_fetched() -> None:
    snap = snapshot()
    unresolved = [(ra.name, i, uri) for ra, i, uri in authz.unresolved_jwks_uris(snap)]
    assert unresolved == [
        ("shop", 3, "https://users/jwks"),
        ("shop", 4, "http://keys.example.com/jwks"),
    ]
    assert authz.external_jwks(snap, "https://idp.example.com./k", "shop") == authz.ExternalJwks(
        host="idp.example.com", port=443, rule_host="idp.example.com"
    )
    # Names only the mesh could resolve are not sent to DNS.
    for uri in ("https://users.shop.svc/k", "https://users.shop.svc.cluster.local:8443/k"):
        assert authz.external_jwks(snap, uri, "shop") is None
    assert authz.external_jwks(snap, "https://localhost:8443/k", "shop") == authz.ExternalJwks(
        host="localhost", port=8443, rule_host="localhost.shop.svc.cluster.local"
    )
    assert authz.jwks_service(snap, "https://idp.shop.ami/jwks", "shop") == ("idp.shop.ami", 443)


def test_an_external_idp_gets_a_dns_cluster_verified_against_the_system_cas() -> None:
    c = by_name(snapshot())["jwks|idp.example.com|443"]
    assert c.cluster_type.name == "envoy.cluster.dns"
    endpoints = as_dict(c.load_assignment)["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "idp.example.com", "port_value": 443}
    ]
    assert tls_context(c) == {
        "sni": "idp.example.com",
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": jwks_clusters.SYSTEM_CA_BUNDLE},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "idp.example.com"}}
                ],
            }
        },
    }


def test_an_address_gets_no_sni_and_an_ip_san() -> None:
    ctx = tls_context(by_name(snapshot())["jwks|192.0.2.10|9443"])
    assert "sni" not in ctx
    validation = ctx["common_tls_context"]["validation_context"]
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "192.0.2.10"}}
    ]


def test_a_destination_rule_for_the_host_sets_its_tls_and_pool() -> None:
    c = by_name(snapshot())["jwks|keys.corp.example|8443"]
    assert c.connect_timeout.seconds == 3
    assert tls_context(c) == {
        "sni": "keys.corp.example",
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": CA_FILE},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "keys.corp.example"}}
                ],
            }
        },
    }


def test_only_proxies_whose_policies_fetch_from_outside_get_the_clusters() -> None:
    snap = snapshot()
    assert sorted(by_name(snap)) == [
        "jwks|192.0.2.10|9443",
        "jwks|idp.example.com|443",
        "jwks|keys.corp.example|8443",
    ]
    other = Proxy(id="cart.default", namespace="default", labels={"app": "cart"}, inbound=(PORT,))
    assert jwks_clusters.clusters(snap, other) == []
    gen = Generator(snap)
    assert "jwks|idp.example.com|443" in gen.generate(PROXY)[CLUSTER]
    assert not any(n.startswith("jwks|") for n in gen.generate(other)[CLUSTER])


def test_a_gateway_the_policy_selects_gets_the_clusters_too() -> None:
    edge = Proxy(
        id="ingress.shop",
        kind="gateway",
        namespace="shop",
        labels={"istio": "ingressgateway"},
        gateway_ports=(GatewayPort(port=8080, listen_port=18080),),
    )
    gen = Generator(snapshot())
    found = sorted(n for n in gen.generate(edge)[CLUSTER] if n.startswith("jwks|"))
    assert found == sorted(by_name(snapshot()))
    gen.update(snapshot(RESOURCES.replace(RULES, "")))
    assert not any(n.startswith("jwks|") for n in gen.generate(edge)[CLUSTER])


def test_the_generator_follows_changes_and_keeps_what_did_not_change() -> None:
    gen = Generator(snapshot())
    first = gen.generate(PROXY)
    gen.update(snapshot())
    again = gen.generate(PROXY)
    assert again[CLUSTER] is first[CLUSTER]
    assert again[LISTENER] is first[LISTENER]
    # Only the DestinationRule changes: the cluster follows, the listeners stay.
    gen.update(snapshot(RESOURCES.replace("connectTimeout: 3s", "connectTimeout: 4s")))
    changed = gen.generate(PROXY)
    assert changed[LISTENER] is first[LISTENER]
    corp = "jwks|keys.corp.example|8443"
    assert changed[CLUSTER][corp].serialized != first[CLUSTER][corp].serialized
    assert (
        changed[CLUSTER]["jwks|idp.example.com|443"] is first[CLUSTER]["jwks|idp.example.com|443"]
    )
    # Without the RequestAuthentication, the clusters go.
    gen.update(snapshot(RESOURCES.replace(RULES, "")))
    assert not any(n.startswith("jwks|") for n in gen.generate(PROXY)[CLUSTER])


@pytest.mark.envoy
def test_envoy_accepts_the_jwks_clusters_and_the_filter(tmp_path: Path) -> None:
    ca, _ = self_signed_cert(tmp_path, "keys.corp.example")
    snap = snapshot(RESOURCES.replace(CA_FILE, str(ca)))
    filters = inbound_filters.http_filters(snap, PROXY, PORT)
    m = hcm("inbound_8080", [*filters, http_filter(ROUTER_FILTER, router_pb2.Router())])
    m.route_config.CopyFrom(inbound_route_config(PORT))
    lis = listener("inbound|8080", "127.0.0.1", PORT.listen_port, 0, single_chain(hcm_filter(m)))
    idp = cluster_pb2.Cluster(name="outbound|443||idp.shop.ami", type=cluster_pb2.Cluster.STATIC)
    idp.load_assignment.cluster_name = idp.name
    config = bs.static_bootstrap(
        clusters=[*clusters.inbound_clusters(PROXY), idp, *jwks_clusters.clusters(snap, PROXY)],
        listeners=[lis],
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
