"""Gateway API documents refused with the file, the resource and the field path."""

from __future__ import annotations

import pytest

from amimesh.resources import parse_documents

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - %s
"""


def errors(text: str) -> list[str]:
    return [str(e) for e in parse_documents(text, "routes.yaml").errors]


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        (
            "filters: [{type: RequestHeaderModifier, responseHeaderModifier: {set: []}}]",
            "spec.rules[0].filters[0].requestHeaderModifier",
            "is required with type RequestHeaderModifier",
        ),
        (
            "matches: [{path: {type: Exact, value: foo}}]",
            "spec.rules[0].matches[0].path.value",
            'must start with "/"',
        ),
        (
            "matches: [{path: {type: RegularExpression, value: '(a'}}]",
            "spec.rules[0].matches[0].path.value",
            "",
        ),
        (
            "matches: [{path: {type: Exact, value: /a}}]\n    filters: [{type: URLRewrite, "
            "urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]",
            "spec.rules[0].filters",
            "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath}}}]",
            "spec.rules[0].filters[0].urlRewrite.path.replaceFullPath",
            "is required with type ReplaceFullPath",
        ),
        (
            "filters: [{type: CORS, cors: {}}]",
            "spec.rules[0].filters[0].cors",
            "not supported by Ami yet",
        ),
        (
            "backendRefs: [{name: a, weight: -1}]",
            "spec.rules[0].backendRefs[0].weight",
            "",
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]",
            "spec.rules[0].filters[0].requestRedirect.statusCode",
            "",
        ),
        (
            "matches: [{headers: [{name: 'x a', value: b}]}]",
            "spec.rules[0].matches[0].headers[0].name",
            "is not a valid HTTP header name",
        ),
        (
            "filters: [{type: ResponseHeaderModifier, responseHeaderModifier: "
            "{set: [{name: Host, value: a}]}}]",
            "spec.rules[0].filters[0].responseHeaderModifier.set[0].name",
            "can only be set on requests",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {hostname: 'a b'}}]",
            "spec.rules[0].filters[0].urlRewrite.hostname",
            "must be a host name",
        ),
        (
            "timeouts: {request: 1s, backendRequest: 2s}",
            "spec.rules[0].timeouts.backendRequest",
            "must not be longer than timeouts.request",
        ),
        (
            "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a}, "
            "fraction: {numerator: 3, denominator: 2}}}]",
            "spec.rules[0].filters[0].requestMirror.fraction.numerator",
            "must not be more than denominator",
        ),
        (
            "retry: {attempts: 2, backoff: 1s}",
            "spec.rules[0].retry.backoff",
            "not supported by Ami yet",
        ),
    ],
)
def test_route_errors_name_the_field(rule: str, field: str, says: str) -> None:
    found = errors(ROUTE % rule)
    assert found and all(e.startswith("routes.yaml: document 0") for e in found)
    assert any(f"HTTPRoute/default/r: {field}: " in e and says in e for e in found), found


def test_gateway_errors_name_the_listener() -> None:
    found = errors(
        """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
  - {name: a, port: 443, protocol: HTTPS}
  - {name: a, port: 80, protocol: HTTP, hostname: "bad_host"}
"""
    )
    ref = "Gateway.gateway.networking.k8s.io/default/gw"
    assert any(f"{ref}: spec.listeners[1].name: " in e for e in found)
    assert any(f"{ref}: spec.listeners[0].tls: an HTTPS listener needs" in e for e in found)
    assert any(f"{ref}: spec.listeners[1].hostname: " in e for e in found)


def test_every_version_istio_samples_use_is_read() -> None:
    for version, kind in (
        ("v1alpha2", "HTTPRoute"),
        ("v1beta1", "HTTPRoute"),
        ("v1", "GRPCRoute"),
        ("v1alpha2", "TCPRoute"),
        ("v1alpha2", "TLSRoute"),
        ("v1beta1", "ReferenceGrant"),
    ):
        spec = (
            "{from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}], "
            "to: [{group: '', kind: Service}]}"
            if kind == "ReferenceGrant"
            else "{rules: [{backendRefs: [{name: a, port: 1}]}]}"
        )
        text = (
            f"apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\n"
            f"metadata: {{name: x}}\nspec: {spec}\n"
        )
        assert errors(text) == [], (version, kind)
    assert (
        "not served"
        in errors("apiVersion: gateway.networking.k8s.io/v1\nkind: Fake\nmetadata: {name: x}\n")[0]
        or "unknown kind"
        in errors("apiVersion: gateway.networking.k8s.io/v1\nkind: Fake\nmetadata: {name: x}\n")[0]
    )
