"""AuthorizationPolicy → RBAC filters: order, actions, and each kind of match."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import istio_authz as authz
from amimesh.resources import parse_documents
from amimesh.translate import authz_match, authz_rules, clusters, inbound_filters
from amimesh.translate.listener_hcm import (
    ROUTER_FILTER,
    hcm,
    hcm_filter,
    http_filter,
    listener,
    single_chain,
)
from amimesh.translate.listeners import inbound_route_config

PORT = InboundPort(port=9080, listen_port=15006, app_port=8081, name="http")
PROXY = Proxy(id="reviews.shop", namespace="shop", labels={"app": "reviews"}, inbound=(PORT,))


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def snapshot(text: str) -> Snapshot:
    result = parse_documents(text, "policies.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


def policy_doc(name: str, spec: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + "\n".join("  " + line for line in spec.strip().splitlines())
        + "\n---\n"
    )


def rule(yaml_rule: str) -> dict[str, Any]:
    """The Envoy policy for one rule (flow YAML) on PORT."""
    snap = snapshot(policy_doc("p", f"rules: [{yaml_rule}]"))
    p = next(r for r in snap.resources.values() if isinstance(r, authz.AuthorizationPolicy))
    return as_dict(authz_rules.policy(p.spec.rules[0], PORT))


def rbac(f: Any) -> dict[str, Any]:
    config = rbac_pb2.RBAC()
    assert f.typed_config.Unpack(config)
    return as_dict(config)


ANY = {"any": True}
NEVER = {"not_rule": {"any": True}}


def test_filters_come_in_istio_order_one_per_action() -> None:
    snap = snapshot(
        policy_doc("allow-get", "rules: [{to: [{operation: {methods: [GET]}}]}]")
        + policy_doc("deny-admin", "action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]")
        + policy_doc("audit", "action: AUDIT\nrules: [{}]")
        + policy_doc("deny-all-but", "{}")
        + policy_doc("other", "selector: {matchLabels: {app: ratings}}\nrules: [{}]")
    )
    filters = inbound_filters.http_filters(snap, PROXY, PORT)
    assert [f.name for f in filters] == ["envoy.filters.http.rbac"] * 3
    deny, audit, allow = (rbac(f) for f in filters)
    assert deny["rules"]["action"] == "DENY"
    assert (deny["rules_stat_prefix"], deny["track_per_rule_stats"]) == ("deny", True)
    assert (audit["rules_stat_prefix"], allow["rules_stat_prefix"]) == ("audit", "allow")
    assert list(deny["rules"]["policies"]) == ["ns[shop]-policy[deny-admin]-rule[0]"]
    assert audit["rules"].get("action") == "LOG"
    assert allow["rules"].get("action", "ALLOW") == "ALLOW"
    # The `{}` policy adds no rule; the other selects another workload.
    assert list(allow["rules"]["policies"]) == ["ns[shop]-policy[allow-get]-rule[0]"]


def test_an_allow_policy_without_rules_denies_everything() -> None:
    filters = inbound_filters.http_filters(snapshot(policy_doc("deny-all", "{}")), PROXY, PORT)
    assert [rbac(f) for f in filters] == [
        {"rules": {}, "rules_stat_prefix": "allow", "track_per_rule_stats": True}
    ]


def test_no_policy_no_filter() -> None:
    assert inbound_filters.http_filters(build_snapshot([]), PROXY, PORT) == []


def test_an_empty_rule_matches_everything() -> None:
    assert rule("{}") == {"permissions": [ANY], "principals": [ANY]}


def test_operation_fields_are_and_values_are_or() -> None:
    got = rule(
        "{to: [{operation: {methods: [GET, HEAD], paths: [/x]}}, {operation: {paths: [/y]}}]}"
    )
    method = [
        {"header": {"name": ":method", "string_match": {"exact": m}}} for m in ("GET", "HEAD")
    ]
    first = {"and_rules": {"rules": [{"or_rules": {"rules": method}}, _path(exact="/x")]}}
    assert got["permissions"] == [{"or_rules": {"rules": [first, _path(exact="/y")]}}]
    # "*" matches every path: it adds nothing to the operation.
    assert rule("{to: [{operation: {methods: [GET], paths: [/x, '*']}}]}")["permissions"] == [
        method[0]
    ]


def _path(**match: str) -> dict[str, Any]:
    return {"url_path": {"path": match}}


def test_paths_use_the_path_without_query() -> None:
    got = rule("{to: [{operation: {paths: [/api/*, '*.css', /x], notPaths: [/api/admin]}}]}")
    paths = [_path(prefix="/api/"), _path(suffix=".css"), _path(exact="/x")]
    assert got["permissions"] == [
        {
            "and_rules": {
                "rules": [
                    {"or_rules": {"rules": paths}},
                    {"not_rule": _path(exact="/api/admin")},
                ]
            }
        }
    ]
    assert rule("{to: [{operation: {paths: ['*']}}]}")["permissions"] == [ANY]


def test_ports_are_workload_ports_decided_per_listener() -> None:
    assert rule("{to: [{operation: {ports: [9080, 9090]}}]}")["permissions"] == [ANY]
    assert rule("{to: [{operation: {ports: [9090]}}]}")["permissions"] == [NEVER]
    assert rule("{to: [{operation: {notPorts: [9080]}}]}")["permissions"] == [NEVER]
    assert rule("{to: [{operation: {notPorts: [1]}}]}")["permissions"] == [ANY]
    when = "{when: [{key: destination.port, values: ['9080']}]}"
    assert rule(when)["permissions"] == [ANY]


def test_hosts_ignore_case_and_port() -> None:
    def regex(host: str) -> str:
        got = rule(f"{{to: [{{operation: {{hosts: ['{host}']}}}}]}}")["permissions"][0]
        assert got["header"]["name"] == ":authority"
        value: str = got["header"]["string_match"]["safe_regex"]["regex"]
        return value

    assert regex("reviews.shop") == r"(?i)reviews\.shop(:[0-9]+)?"
    assert regex("reviews:9080") == r"(?i)reviews:9080"
    assert regex("*.example.com") == r"(?i).*\.example\.com(:[0-9]+)?"
    assert regex("api.*") == r"(?i)api\..*"
    for host, ok, bad in (
        ("reviews.shop", ["Reviews.Shop", "reviews.shop:9080"], ["reviews.shop.x", "reviews"]),
        ("*.example.com", ["a.example.com:80", "A.EXAMPLE.COM"], ["example.com"]),
    ):
        pattern = regex(host)
        for value in ok:
            assert re.fullmatch(pattern, value), (host, value)
        for value in bad:
            assert not re.fullmatch(pattern, value), (host, value)


def test_peers_are_spiffe_identities() -> None:
    got = rule(
        "{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend, 'cluster.local/ns/x/*',"
        " '*'], namespaces: [shop], serviceAccounts: [shop/cart]}}]}"
    )
    [p] = got["principals"]
    principals, namespaces, accounts = p["and_ids"]["ids"]
    names = [i.get("authenticated", {}).get("principal_name") for i in principals["or_ids"]["ids"]]
    assert names == [
        {"exact": "spiffe://cluster.local/ns/shop/sa/frontend"},
        {"prefix": "spiffe://cluster.local/ns/x/"},
        {"safe_regex": {"regex": ".+"}},  # "*": any peer with a certificate
    ]
    assert namespaces["authenticated"]["principal_name"] == {
        "safe_regex": {"regex": "spiffe://[^/]+/ns/shop/sa/.*"}
    }
    assert accounts["authenticated"]["principal_name"] == {
        "safe_regex": {"regex": "spiffe://[^/]+/ns/shop/sa/cart"}
    }


def test_ip_blocks() -> None:
    got = rule("{from: [{source: {ipBlocks: [10.1.2.3/8], notRemoteIpBlocks: ['::1']}}]}")
    assert got["principals"] == [
        {
            "and_ids": {
                "ids": [
                    {"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}},
                    {"not_id": {"remote_ip": {"address_prefix": "::1", "prefix_len": 128}}},
                ]
            }
        }
    ]


def _claim(path: list[str], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": k} for k in ["payload", *path]],
            "value": value,
        }
    }


def test_claims_match_strings_and_lists_nested_too() -> None:
    got = rule("{when: [{key: 'request.auth.claims[realm][roles]', values: [admin]}]}")
    text = {"string_match": {"exact": "admin"}}
    assert got["principals"] == [
        _claim(
            ["realm", "roles"],
            {"or_match": {"value_matchers": [text, {"list_match": {"one_of": text}}]}},
        )
    ]
    present = rule("{when: [{key: 'request.auth.claims[groups]', notValues: ['*']}]}")
    assert present["principals"] == [{"not_id": _claim(["groups"], {"present_match": True})}]


def test_request_principals_cut_at_every_slash() -> None:
    def ids(value: str) -> list[dict[str, Any]]:
        return [as_dict(authz_match.request_principal(value))]

    def pair(iss: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
        return {"and_ids": {"ids": [_claim(["iss"], iss), _claim(["sub"], sub)]}}

    def s(**kw: str) -> dict[str, Any]:
        return {"string_match": kw}

    assert ids("issuer.example/jason") == [pair(s(exact="issuer.example"), s(exact="jason"))]
    assert ids("https://a/x/jason") == [
        {
            "or_ids": {
                "ids": [
                    pair(s(exact="https:"), s(exact="/a/x/jason")),
                    pair(s(exact="https:/"), s(exact="a/x/jason")),
                    pair(s(exact="https://a"), s(exact="x/jason")),
                    pair(s(exact="https://a/x"), s(exact="jason")),
                ]
            }
        }
    ]
    assert ids("*") == [_claim(["iss"], {"present_match": True})]
    assert ids("iss/*") == [
        {
            "or_ids": {
                "ids": [
                    _claim(["iss"], s(prefix="iss/")),
                    pair(s(exact="iss"), {"present_match": True}),
                ]
            }
        }
    ]
    assert ids("*/jason") == [
        {
            "or_ids": {
                "ids": [
                    _claim(["sub"], s(suffix="/jason")),
                    pair({"present_match": True}, s(exact="jason")),
                ]
            }
        }
    ]
    assert ids("no-slash") == [{"not_id": {"any": True}}]


def test_request_keys() -> None:
    got = rule(
        "{when: [{key: 'request.headers[x-user]', values: [jason, 'adm*']},"
        " {key: request.auth.audiences, values: [shop]},"
        " {key: source.ip, values: [127.0.0.1]},"
        " {key: connection.sni, values: ['*.shop']},"
        " {key: destination.ip, notValues: [10.0.0.0/8]}]}"
    )
    header, audience, source_ip = got["principals"][0]["and_ids"]["ids"]
    assert header == {
        "or_ids": {
            "ids": [
                {"header": {"name": "x-user", "string_match": {"exact": "jason"}}},
                {"header": {"name": "x-user", "string_match": {"prefix": "adm"}}},
            ]
        }
    }
    assert audience["metadata"]["path"] == [{"key": "payload"}, {"key": "aud"}]
    assert source_ip == {"direct_remote_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}
    assert got["permissions"] == [
        {
            "and_rules": {
                "rules": [
                    {"requested_server_name": {"suffix": ".shop"}},
                    {
                        "not_rule": {
                            "destination_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}
                        }
                    },
                ]
            }
        }
    ]


@pytest.mark.envoy
def test_envoy_accepts_every_kind_of_rule(tmp_path: Path) -> None:
    snap = snapshot(
        policy_doc(
            "everything",
            """
rules:
- from:
  - source: {principals: [cluster.local/ns/shop/sa/frontend], notNamespaces: [evil-ns, "a.b-*"],
             requestPrincipals: ["https://issuer/x/*"], serviceAccounts: [shop/cart],
             ipBlocks: [127.0.0.1], notRemoteIpBlocks: ["10.0.0.0/8"]}
  to:
  - operation: {hosts: ["*.shop-x.com", "api.example.com:8080"], notPorts: ["1"],
                methods: [GET], paths: [/a/*], notPaths: ["*.png"]}
  when:
  - {key: "request.auth.claims[groups]", values: [a, "b*"]}
  - {key: "request.headers[x-a]", notValues: ["*"]}
  - {key: request.auth.principal, values: ["*/jason"]}
  - {key: request.auth.presenter, values: [web]}
  - {key: remote.ip, values: [127.0.0.0/8]}
  - {key: source.principal, values: ["*"]}
  - {key: source.namespace, values: ["sh*"]}
  - {key: destination.ip, values: [127.0.0.1]}
  - {key: connection.sni, values: [shop]}
""",
        )
        + policy_doc("deny", "action: DENY\nrules: [{from: [{source: {notNamespaces: [shop]}}]}]")
        + policy_doc("audit", "action: AUDIT\nrules: [{}]")
    )
    filters = inbound_filters.http_filters(snap, PROXY, PORT)
    assert len(filters) == 3
    from envoy.extensions.filters.http.router.v3 import router_pb2

    m = hcm("inbound_9080", [*filters, http_filter(ROUTER_FILTER, router_pb2.Router())])
    m.route_config.CopyFrom(inbound_route_config(PORT))
    lis = listener("inbound|9080", "127.0.0.1", PORT.listen_port, 0, single_chain(hcm_filter(m)))
    config = bs.static_bootstrap(clusters=clusters.inbound_clusters(PROXY), listeners=[lis])
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
