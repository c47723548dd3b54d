"""HTTPProxy: the kind's checks and the delegation's expansion (`model.httpproxy`), as
pure functions (the traffic itself: tests/e2e/test_httpproxy.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from amimesh.model import httpproxy
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: root}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: team}
spec: {selector: {app: api}, ports: [{port: 8080}]}
"""


def resources(text: str) -> list[Resource]:
    result = parse_documents(SERVICES + "---\n" + text, "test.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return result.resources


def proxy(name: str, namespace: str, spec: str) -> str:
    return (
        "apiVersion: projectcontour.io/v1\nkind: HTTPProxy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}---\n"
    )


def state(out: httpproxy.Expansion, namespace: str, name: str) -> tuple[str, str]:
    s = out.status[(namespace, name)]
    return s["currentStatus"], s["description"]


def vs_of(out: httpproxy.Expansion) -> dict[str, Any]:
    [vs] = [d for d in out.derived if d["kind"] == "VirtualService"]
    return dict(vs["spec"])


ROOT = proxy(
    "main",
    "root",
    """\
  virtualhost: {fqdn: shop.example.com}
  routes: [{services: [{name: web, port: 80}]}]
  includes:
  - name: api
    namespace: team
    conditions: [{prefix: /api}, {header: {name: X-Team, present: true}}]
""",
)


def test_includes_prefix_and_headers_and_order() -> None:
    out = httpproxy.expand(
        resources(
            ROOT
            + proxy(
                "api",
                "team",
                """\
  routes:
  - conditions: [{prefix: /v1/}]
    services: [{name: api, port: 8080}]
    pathRewritePolicy:
      replacePrefix: [{prefix: /api/v1, replacement: /one}, {replacement: /any}]
  - conditions: [{header: {name: X-Beta, notcontains: "a.b"}}]
    services: [{name: api, port: 8080}]
    retryPolicy: {count: 2, retryOn: [reset]}
    timeoutPolicy: {response: infinity}
""",
            )
        )
    )
    http = vs_of(out)["http"]
    # Longest prefix first; the root's own `/` last.
    assert [r["match"][0]["uri"]["prefix"] for r in http] == ["/api/v1/", "/api", "/"]
    first, second, last = http
    assert first["match"][0]["headers"] == {"x-team": {}}
    assert first["rewrite"] == {"uri": "/one"}
    assert first["retries"] == {"attempts": 0} and first["timeout"] == "15s"
    assert second["match"][0]["withoutHeaders"] == {"x-beta": {"regex": ".*a\\.b.*"}}
    assert second["retries"] == {"attempts": 2, "retryOn": "reset"}
    assert second["timeout"] == "0s"
    assert last["route"][0]["destination"]["host"] == "web.root.svc.cluster.local"
    assert state(out, "team", "api") == ("valid", "Valid HTTPProxy")


def test_tls_redirects_plain_http_except_permit_insecure() -> None:
    out = httpproxy.expand(
        resources(
            proxy(
                "main",
                "root",
                """\
  virtualhost: {fqdn: shop.example.com, tls: {secretName: root/shop-cert}}
  routes:
  - conditions: [{prefix: /open}]
    services: [{name: web, port: 80}]
    permitInsecure: true
  - services: [{name: web, port: 80}]
""",
            )
        )
    )
    [gateway] = [d for d in out.derived if d["kind"] == "Gateway"]
    servers = gateway["spec"]["servers"]
    assert [s["port"]["number"] for s in servers] == [80, 443]
    assert servers[1]["tls"] == {"mode": "SIMPLE", "credentialName": "shop-cert"}
    http = vs_of(out)["http"]
    plain = [r for r in http if r["match"][0].get("port") == 80]
    assert [("redirect" in r, r["match"][0]["uri"]["prefix"]) for r in plain] == [
        (False, "/open"),
        (True, "/"),
    ]
    assert all("route" in r for r in http if r["match"][0].get("port") == 443)


@pytest.mark.parametrize(
    ("extra", "who", "description"),
    [
        (
            proxy("api", "team", "  includes: [{name: gone}]\n"),
            ("team", "api"),
            "include team/gone not found",
        ),
        (
            proxy("api", "team", "  includes: [{name: main, namespace: root}]\n"),
            ("team", "api"),
            "root httpproxy cannot include another root httpproxy (root/main)",
        ),
        (
            proxy("api", "team", "  routes: [{services: [{name: api, port: 9}]}]\n"),
            ("team", "api"),
            "Service [api:9] is invalid or missing",
        ),
        (
            proxy("api", "team", "  includes: [{name: b}]\n")
            + proxy("b", "team", "  includes: [{name: api}]\n"),
            ("team", "b"),
            "include creates an include cycle: root/main -> team/api -> team/b -> team/api",
        ),
    ],
)
def test_invalid_includes(extra: str, who: tuple[str, str], description: str) -> None:
    out = httpproxy.expand(resources(ROOT + extra))
    assert state(out, *who) == ("invalid", description)
    # The root still serves its own routes.
    assert [r["match"][0]["uri"]["prefix"] for r in vs_of(out)["http"]] == ["/"]


def test_orphan_and_duplicate_fqdn() -> None:
    again = proxy(
        "again",
        "team",
        "  virtualhost: {fqdn: SHOP.example.com}\n"
        "  routes: [{services: [{name: api, port: 8080}]}]\n",
    )
    orphan = proxy("lost", "team", "  routes: [{services: [{name: api, port: 8080}]}]\n")
    out = httpproxy.expand(resources(ROOT + again + orphan))
    assert out.derived == []
    message = 'fqdn "shop.example.com" is used in multiple HTTPProxies: root/main, team/again'
    assert state(out, "root", "main") == ("invalid", message)
    assert state(out, "team", "again") == ("invalid", message)
    assert state(out, "team", "lost") == ("orphaned", httpproxy.ORPHAN_DESCRIPTION)


def test_the_derived_resources_are_valid_mesh_config() -> None:
    out = httpproxy.expand(resources(ROOT + proxy("api", "team", "  routes: []\n")))
    result = parse_documents(yaml.safe_dump_all(out.derived), "derived.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    assert len(result.resources) == 2


def errors(spec: str) -> list[str]:
    result = parse_documents(proxy("p", "team", spec), "p.yaml")
    return [f"{e.field}: {e.message}" for e in result.errors]


def test_checks() -> None:
    assert errors(
        """\
  includes:
  - {name: p}
  - {name: q, conditions: [{prefix: /a}, {prefix: /b}]}
  - {name: q}
  routes:
  - services: []
    timeoutPolicy: {response: soon}
    retryPolicy: {retryOn: [sometimes]}
    pathRewritePolicy: {replacePrefix: [{replacement: /a}, {replacement: /b}]}
"""
    ) == [
        "spec.includes[0].name: includes itself",
        "spec.includes[1].conditions[1].prefix: a condition list takes one path prefix at most",
        "spec.includes[2].name: includes team/q twice",
        "spec.routes[0].services: must name at least one service",
        'spec.routes[0].timeoutPolicy.response: must be a duration such as "1s", "250ms" or '
        '"1m30s", got "soon", or "infinity"',
        'spec.routes[0].retryPolicy.retryOn[0]: "sometimes" is not a retry condition; use one '
        "of 5xx, cancelled, connect-failure, deadline-exceeded, gateway-error, internal, "
        "refused-stream, reset, resource-exhausted, retriable-4xx, retriable-headers, "
        "retriable-status-codes, unavailable",
        "spec.routes[0].pathRewritePolicy.replacePrefix[1].prefix: names a prefix an earlier "
        "replacement names (ambiguous)",
    ]
    assert errors("  routes: [{conditions: [{prefix: a}], services: [{name: s, port: 1}]}]\n") == [
        'spec.routes[0].conditions[0]: prefix must start with "/", got "a"'
    ]
