"""RequestAuthentication → the jwt_authn filter: providers, the requirement, keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.resources.checks_authz import jwks_problem
from amimesh.translate import authn_jwt, clusters, inbound_filters
from amimesh.translate.listener_hcm import (
    ROUTER_FILTER,
    hcm,
    hcm_filter,
    http_filter,
    listener,
    single_chain,
)
from amimesh.translate.listeners import inbound_route_config
from tests.e2e import test_jwt_support as jwt

PORT = InboundPort(port=8080, listen_port=15006, app_port=8081, name="http")
PROXY = Proxy(id="cart.shop", namespace="shop", labels={"app": "cart"}, inbound=(PORT,))
JWKS = jwt.jwks(jwt.signer("ES256"))

RESOURCES = f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: shop, namespace: shop}}
spec:
  jwtRules:
  - issuer: users.shop.ami
    audiences: [shop]
    jwksUri: http://users:8080/.well-known/jwks.json
  - issuer: inline.example
    jwks: '{JWKS}'
    fromHeaders: [{{name: x-jwt-assertion}}, {{name: authorization, prefix: "Token "}}]
    fromParams: [jwt]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
    forwardOriginalToken: true
  - issuer: external.example
    jwksUri: http://keys.example.com/jwks
    timeout: 1.5s
---
apiVersion: v1
kind: Service
metadata: {{name: users, namespace: shop}}
spec:
  selector: {{app: users}}
  ports: [{{name: http, port: 8080}}]
"""


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def snapshot(text: str = RESOURCES) -> Snapshot:
    result = parse_documents(text, "authn.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def jwt_config() -> dict[str, Any]:
    [f] = inbound_filters.http_filters(snapshot(), PROXY, PORT)
    assert f.name == "envoy.filters.http.jwt_authn"
    config = jwt_pb2.JwtAuthentication()
    assert f.typed_config.Unpack(config)
    return as_dict(config)


def test_one_requirement_any_provider_or_no_token() -> None:
    config = jwt_config()
    assert config["bypass_cors_preflight"] is True
    assert config["rules"] == [
        {
            "match": {"prefix": "/"},
            "requires": {
                "requires_any": {
                    "requirements": [
                        {"provider_name": "shop/shop/0"},
                        {"provider_name": "shop/shop/1"},
                        {"provider_name": "shop/shop/2"},
                        {"allow_missing": {}},
                    ]
                }
            },
        }
    ]


def test_keys_from_a_mesh_service_come_through_its_outbound_cluster() -> None:
    provider = jwt_config()["providers"]["shop/shop/0"]
    assert provider == {
        "issuer": "users.shop.ami",
        "audiences": ["shop"],
        "remote_jwks": {
            "http_uri": {
                "uri": "http://users:8080/.well-known/jwks.json",
                "cluster": "outbound|8080||users.shop.svc.cluster.local",
                "timeout": "5s",
            }
        },
        "payload_in_metadata": "payload",
    }


def test_inline_keys_token_locations_and_outputs() -> None:
    provider = jwt_config()["providers"]["shop/shop/1"]
    assert provider == {
        "issuer": "inline.example",
        "local_jwks": {"inline_string": JWKS},
        "forward": True,
        "from_headers": [
            {"name": "x-jwt-assertion"},
            {"name": "authorization", "value_prefix": "Token "},
        ],
        "from_params": ["jwt"],
        "from_cookies": ["session"],
        "forward_payload_header": "x-jwt-payload",
        "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
        "payload_in_metadata": "payload",
    }


def test_keys_nobody_can_fetch_verify_nothing() -> None:
    provider = jwt_config()["providers"]["shop/shop/2"]
    assert provider["local_jwks"] == {"inline_string": authn_jwt.UNREACHABLE_JWKS}
    assert "remote_jwks" not in provider
    # A well-formed key set, so Envoy takes the config and refuses the tokens.
    assert jwks_problem(authn_jwt.UNREACHABLE_JWKS) is None
    assert json.loads(authn_jwt.UNREACHABLE_JWKS)["keys"][0]["kid"] == "ami-unreachable-jwks"


def test_the_jwt_filter_comes_before_rbac() -> None:
    text = RESOURCES + (
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: need-jwt, namespace: shop}\n"
        "spec: {rules: [{from: [{source: {requestPrincipals: ['*']}}]}]}\n"
    )
    names = [f.name for f in inbound_filters.http_filters(snapshot(text), PROXY, PORT)]
    assert names == ["envoy.filters.http.jwt_authn", "envoy.filters.http.rbac"]


def test_other_namespaces_get_no_jwt_filter() -> None:
    other = Proxy(id="cart.default", namespace="default", labels={"app": "cart"}, inbound=(PORT,))
    assert inbound_filters.http_filters(snapshot(), other, PORT) == []


@pytest.mark.envoy
def test_envoy_accepts_the_jwt_filter(tmp_path: Path) -> None:
    filters = inbound_filters.http_filters(snapshot(), PROXY, PORT)
    m = hcm("inbound_8080", [*filters, http_filter(ROUTER_FILTER, router_pb2.Router())])
    m.route_config.CopyFrom(inbound_route_config(PORT))
    lis = listener("inbound|8080", "127.0.0.1", PORT.listen_port, 0, single_chain(hcm_filter(m)))
    users = cluster_pb2.Cluster(
        name="outbound|8080||users.shop.svc.cluster.local", type=cluster_pb2.Cluster.STATIC
    )
    users.load_assignment.cluster_name = users.name
    config = bs.static_bootstrap(
        clusters=[*clusters.inbound_clusters(PROXY), users], listeners=[lis]
    )
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
