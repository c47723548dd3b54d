"""AuthorizationPolicy on TCP ports: rules without their HTTP-only parts, network RBAC."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import istio_authz as authz
from amimesh.resources import parse_documents
from amimesh.translate import authz_tcp, clusters, inbound_filters, names
from amimesh.translate.listener_hcm import FilterChain, listener, tcp_proxy_filter

PORT = InboundPort(port=5432, listen_port=15010, app_port=5433, protocol="TCP")
PROXY = Proxy(id="db.shop", namespace="shop", labels={"app": "db"}, inbound=(PORT,))


def policy(spec: str, name: str = "p") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: shop}}\nspec:\n"
        + "\n".join("  " + line for line in spec.strip().splitlines())
        + "\n---\n"
    )


def snapshot(text: str) -> Snapshot:
    result = parse_documents(text, "tcp.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def first_rule(text: str) -> authz.Rule:
    snap = snapshot(policy(text))
    p = next(r for r in snap.resources.values() if isinstance(r, authz.AuthorizationPolicy))
    return p.spec.rules[0]


def dump(rule: authz.Rule | None) -> Any:
    return None if rule is None else rule.model_dump(by_alias=True, exclude_defaults=True)


ALLOW = rbac_pb2.RBAC.ALLOW
DENY = rbac_pb2.RBAC.DENY

MIXED = """
rules:
- from: [{source: {namespaces: [shop], requestPrincipals: ["*"]}}]
  to: [{operation: {ports: ["5432"], methods: [GET]}}]
  when:
  - {key: "request.headers[x-a]", values: [a]}
  - {key: "request.auth.claims[groups]", values: [a]}
  - {key: source.ip, values: [127.0.0.1]}
"""


def test_rules_without_http_parts_are_kept_as_they_are() -> None:
    rule = first_rule("rules: [{from: [{source: {ipBlocks: [127.0.0.1]}}]}]")
    assert authz_tcp.tcp_rule(rule, ALLOW) is rule
    assert authz_tcp.tcp_rule(rule, DENY) is rule


def test_an_allow_rule_naming_http_cannot_match() -> None:
    assert authz_tcp.tcp_rule(first_rule(MIXED), ALLOW) is None
    only_paths = first_rule("rules: [{to: [{operation: {notPaths: [/x]}}]}]")
    assert authz_tcp.tcp_rule(only_paths, ALLOW) is None


def test_a_deny_rule_loses_its_http_parts_and_denies_more() -> None:
    assert dump(authz_tcp.tcp_rule(first_rule(MIXED), DENY)) == {
        "from": [{"source": {"namespaces": ["shop"]}}],
        "to": [{"operation": {"ports": ["5432"]}}],
        "when": [{"key": "source.ip", "values": ["127.0.0.1"]}],
    }


def network_rbac(text: str) -> list[dict[str, Any]]:
    out = []
    for f in inbound_filters.network_filters(snapshot(text), PROXY, PORT):
        assert f.name == "envoy.filters.network.rbac"
        config = network_rbac_pb2.RBAC()
        assert f.typed_config.Unpack(config)
        out.append(json_format.MessageToDict(config, preserving_proto_field_name=True))
    return out


def test_network_filters_per_action() -> None:
    got = network_rbac(
        policy(MIXED, "mixed")
        + policy("action: DENY\n" + MIXED, "deny")
        + policy("rules: [{from: [{source: {ipBlocks: [127.0.0.1]}}]}]", "local")
    )
    deny, allow = got
    assert deny["stat_prefix"] == "inbound_5432.deny."
    assert deny["rules"]["action"] == "DENY"
    assert list(deny["rules"]["policies"]) == ["ns[shop]-policy[deny]-rule[0]"]
    assert allow["stat_prefix"] == "inbound_5432.allow."
    # The HTTP-only ALLOW rule is gone; the other stays.
    assert list(allow["rules"]["policies"]) == ["ns[shop]-policy[local]-rule[0]"]


def test_an_http_only_allow_policy_refuses_every_connection() -> None:
    [allow] = network_rbac(policy("rules: [{to: [{operation: {methods: [GET]}}]}]"))
    assert allow["rules"] == {}


def test_no_policy_no_network_filter() -> None:
    assert inbound_filters.network_filters(build_snapshot([]), PROXY, PORT) == []


@pytest.mark.envoy
def test_envoy_accepts_the_network_filters(tmp_path: Path) -> None:
    snap = snapshot(
        policy("action: DENY\n" + MIXED, "deny")
        + policy("action: AUDIT\nrules: [{}]", "audit")
        + policy(MIXED, "allow")
    )
    filters = inbound_filters.network_filters(snap, PROXY, PORT)
    assert len(filters) == 3
    chain = FilterChain(filters=[*filters, tcp_proxy_filter(names.inbound_cluster(PORT.port))])
    lis = listener("inbound|5432", "127.0.0.1", PORT.listen_port, 0, [chain])
    config = bs.static_bootstrap(clusters=clusters.inbound_clusters(PROXY), listeners=[lis])
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
