"""RequestAuthentication and AuthorizationPolicy: what loads, and the exact errors of
what does not."""

from __future__ import annotations

import json
import textwrap

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from amimesh.resources import istio_authz as authz
from amimesh.resources import parse_documents

SOURCE = "security.yaml"
P = f"{SOURCE}: document 0 (line 1)"
RA = f"{P}: RequestAuthentication/default/jwt"
AP = f"{P}: AuthorizationPolicy/default/policy"

KEY = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()


def _b64(n: int) -> str:
    import base64

    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


GOOD_JWKS = json.dumps(
    {"keys": [{"kty": "EC", "crv": "P-256", "x": _b64(KEY.x), "y": _b64(KEY.y)}]}
)


def ra(rules: str, version: str = "v1") -> str:
    return (
        f"apiVersion: security.istio.io/{version}\nkind: RequestAuthentication\n"
        "metadata: {name: jwt}\nspec:\n  jwtRules:\n"
        + textwrap.indent(textwrap.dedent(rules), "  ")
    )


def ap(spec: str, version: str = "v1") -> str:
    return (
        f"apiVersion: security.istio.io/{version}\nkind: AuthorizationPolicy\n"
        "metadata: {name: policy}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def errors(text: str) -> list[str]:
    return [str(e) for e in parse_documents(text, SOURCE).errors]


def test_both_versions_load_a_full_request_authentication() -> None:
    for version in ("v1beta1", "v1"):
        text = ra(
            f"""\
            - issuer: issuer.example
              audiences: [shop]
              jwks: '{GOOD_JWKS}'
              fromHeaders: [{{name: x-jwt, prefix: "Bearer "}}]
              fromParams: [token]
              fromCookies: [session]
              outputPayloadToHeader: x-jwt-payload
              outputClaimToHeaders: [{{header: x-sub, claim: sub}}]
              forwardOriginalToken: true
            - issuer: users.shop.ami
              jwksUri: http://users.default.svc.cluster.local:8080/.well-known/jwks.json
              timeout: 2s
            """,
            version,
        )
        result = parse_documents(text, SOURCE)
        assert result.ok, [str(e) for e in result.errors]
        res = result.resources[0]
        assert isinstance(res, authz.RequestAuthentication)
        assert res.spec.jwtRules[0].fromHeaders[0].prefix == "Bearer "
        assert res.spec.jwtRules[1].timeout == 2.0


def test_a_full_authorization_policy_loads() -> None:
    text = ap("""\
        selector: {matchLabels: {app: reviews}}
        action: DENY
        rules:
        - from:
          - source:
              principals: [cluster.local/ns/default/sa/frontend]
              notPrincipals: ["*/sa/evil"]
              requestPrincipals: ["issuer.example/*"]
              namespaces: [shop]
              serviceAccounts: [shop/frontend]
              ipBlocks: [10.0.0.0/8, 127.0.0.1]
              remoteIpBlocks: ["::1"]
          to:
          - operation:
              hosts: ["*.example.com"]
              ports: [9080, "9081"]
              methods: [GET]
              paths: [/api/*, "*.css", /exact]
              notPaths: [/api/admin]
          when:
          - {key: "request.auth.claims[groups]", values: [admins]}
          - {key: "request.auth.claims[realm][roles]", notValues: [guest]}
          - {key: "request.headers[x-user]", values: ["*"]}
          - {key: destination.port, values: [9080]}
          - {key: source.ip, values: [127.0.0.0/8]}
        """)
    result = parse_documents(text, SOURCE)
    assert result.ok, [str(e) for e in result.errors]
    policy = result.resources[0]
    assert isinstance(policy, authz.AuthorizationPolicy)
    assert policy.spec.rules[0].to[0].operation is not None
    assert policy.spec.rules[0].to[0].operation.ports == ["9080", "9081"]
    assert policy.spec.rules[0].when[3].values == ["9080"]


def test_empty_spec_is_an_allow_policy_without_rules() -> None:
    text = "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
    text += "metadata: {name: deny-all}\nspec: {}\n"
    result = parse_documents(text, SOURCE)
    assert result.ok
    policy = result.resources[0]
    assert isinstance(policy, authz.AuthorizationPolicy)
    assert (policy.spec.action, policy.spec.rules) == ("ALLOW", [])


KEYS = (
    "request.headers[NAME], request.auth.claims[NAME] (nested: [A][B]), "
    "request.auth.principal, request.auth.audiences, request.auth.presenter, source.ip, "
    "remote.ip, source.namespace, source.principal, destination.ip, destination.port, "
    "connection.sni"
)

CASES: list[tuple[str, str, list[str]]] = [
    (
        "CUSTOM is not supported yet",
        ap("action: CUSTOM\nprovider: {name: opa}\n"),
        [
            f'{AP}: spec.action: "CUSTOM" is not supported by Ami yet',
            f"{AP}: spec.provider: is not supported by Ami yet",
        ],
    ),
    (
        "unknown action",
        ap("action: REJECT\n"),
        [f'{AP}: spec.action: must be one of "ALLOW", "DENY", "AUDIT", got "REJECT"'],
    ),
    (
        "empty source and missing operation",
        ap("rules:\n- from: [{source: {}}]\n  to: [{}]\n"),
        [
            f"{AP}: spec.rules[0].from[0].source: must set at least one of principals, "
            "notPrincipals, requestPrincipals, notRequestPrincipals, namespaces, notNamespaces, "
            "serviceAccounts, notServiceAccounts, ipBlocks, notIpBlocks, remoteIpBlocks, "
            "notRemoteIpBlocks",
            f"{AP}: spec.rules[0].to[0].operation: is required",
        ],
    ),
    (
        "unknown field in a source",
        ap("rules:\n- from: [{source: {principal: [a]}}]\n"),
        [
            f"{AP}: spec.rules[0].from[0].source.principal: unknown field (Ami does not know "
            '"principal" on Source; did you mean "principals"?)'
        ],
    ),
    (
        "unknown when key lists the supported ones",
        ap('rules:\n- when: [{key: "request.header[x-user]", values: [a]}]\n'),
        [
            f'{AP}: spec.rules[0].when[0].key: unknown key "request.header[x-user]"; '
            f"Ami supports {KEYS}"
        ],
    ),
    (
        "an Istio key Ami does not translate",
        ap('rules:\n- when: [{key: "experimental.envoy.filters.a.b[c]", values: [a]}]\n'),
        [
            f'{AP}: spec.rules[0].when[0].key: unknown key "experimental.envoy.filters.a.b[c]"; '
            f"Ami supports {KEYS}"
        ],
    ),
    (
        "a condition without values",
        ap('rules:\n- when: [{key: "request.auth.claims[groups]"}]\n'),
        [f"{AP}: spec.rules[0].when[0]: set values or notValues"],
    ),
    (
        "addresses, ports and wildcards",
        ap(
            "rules:\n- from: [{source: {ipBlocks: [10.0.0/8], principals: ['a*b']}}]\n"
            "  to: [{operation: {ports: ['http', 0], paths: ['/a/{*}', '*a*']}}]\n"
            "  when: [{key: destination.port, values: [x]}, {key: remote.ip, notValues: [me]}]\n"
        ),
        [
            f'{AP}: spec.rules[0].from[0].source.principals[0]: "a*b": "*" may only be the '
            "whole value, its first or its last character",
            f"{AP}: spec.rules[0].from[0].source.ipBlocks[0]: must be an IP address or a CIDR "
            'range, got "10.0.0/8"',
            f"{AP}: spec.rules[0].to[0].operation.paths[0]: path templates ({{*}}, {{**}}) is "
            "not supported by Ami yet",
            f'{AP}: spec.rules[0].to[0].operation.paths[1]: "*a*": "*" may only be the whole '
            "value, its first or its last character",
            f"{AP}: spec.rules[0].to[0].operation.ports[0]: must be a port number from 1 to "
            '65535, got "http"',
            f"{AP}: spec.rules[0].to[0].operation.ports[1]: must be a port number from 1 to "
            '65535, got "0"',
            f"{AP}: spec.rules[0].when[0].values[0]: must be a port number from 1 to 65535, "
            'got "x"',
            f"{AP}: spec.rules[0].when[1].notValues[0]: must be an IP address or a CIDR range, "
            'got "me"',
        ],
    ),
    (
        "service accounts and header names",
        ap(
            "rules:\n- from: [{source: {serviceAccounts: [frontend]}}]\n"
            '  when: [{key: "request.headers[bad name]", values: [a]}]\n'
        ),
        [
            f"{AP}: spec.rules[0].from[0].source.serviceAccounts[0]: must be "
            '"NAMESPACE/SERVICEACCOUNT", got "frontend"',
            f'{AP}: spec.rules[0].when[0].key: "bad name" is not a valid HTTP header name',
        ],
    ),
    (
        "dry run is not supported yet",
        ap("{}").replace(
            "metadata: {name: policy}",
            "metadata:\n  name: policy\n  annotations: {istio.io/dry-run: 'true'}",
        ),
        [
            f'{AP}: metadata.annotations["istio.io/dry-run"]: dry-run policies are not '
            "supported by Ami yet: remove the annotation (the policy would be enforced)"
        ],
    ),
    (
        "targetRefs as Istio validates them",
        ap(
            "selector: {matchLabels: {app: a}}\n"
            "targetRefs:\n"
            "- {kind: Gateway, group: gateway.networking.k8s.io, name: edge, namespace: other}\n"
            "- {kind: Deployment, group: apps, name: web}\n"
        ),
        [
            f"{AP}: spec.targetRefs: set only one of selector, targetRef, targetRefs (got "
            "selector and targetRefs)",
            f"{AP}: spec.targetRefs[0].namespace: must not be set: cross-namespace references "
            "are not supported (as in Istio)",
            f"{AP}: spec.targetRefs[1].kind: a policy attaches to one of Service (core), "
            "Gateway (gateway.networking.k8s.io), GatewayClass (gateway.networking.k8s.io), "
            'ServiceEntry (networking.istio.io); got "Deployment" in group "apps"',
        ],
    ),
    (
        "a jwks that is not JSON",
        ra("- issuer: a\n  jwks: '{keys: []}'\n"),
        [
            f"{RA}: spec.jwtRules[0].jwks: is not a usable JSON Web Key Set: not JSON "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
        ],
    ),
    (
        "a jwks without keys",
        ra("- issuer: a\n  jwks: '{\"keys\": []}'\n- issuer: b\n  jwks: '[]'\n"),
        [
            f'{RA}: spec.jwtRules[0].jwks: is not a usable JSON Web Key Set: "keys" is empty',
            f"{RA}: spec.jwtRules[1].jwks: is not a usable JSON Web Key Set: must be a JSON "
            'object with a "keys" list',
        ],
    ),
    (
        "a jwks whose keys are not usable",
        ra(
            '- issuer: a\n  jwks: \'{"keys": [{"kty": "EC", "crv": "P-256", '
            '"x": "AAAA", "y": "AAAA"}]}\'\n'
            '- issuer: b\n  jwks: \'{"keys": [{"kty": "RSA", "e": "AQAB"}]}\'\n'
            '- issuer: c\n  jwks: \'{"keys": [{"kty": "EC", "crv": "P-192"}]}\'\n'
            '- issuer: d\n  jwks: \'{"keys": [{"kty": "DSA"}]}\'\n'
            '- issuer: e\n  jwks: \'{"keys": [{"kty": "RSA", "alg": "RS1"}]}\'\n'
        ),
        [
            f"{RA}: spec.jwtRules[0].jwks: is not a usable JSON Web Key Set: keys[0]: the EC "
            'point ("x", "y") is not on curve P-256',
            f"{RA}: spec.jwtRules[1].jwks: is not a usable JSON Web Key Set: keys[0]: RSA key: "
            '"n" is missing',
            f"{RA}: spec.jwtRules[2].jwks: is not a usable JSON Web Key Set: keys[0]: EC "
            '"crv" must be one of P-256, P-384, P-521, got "P-192"',
            f"{RA}: spec.jwtRules[3].jwks: is not a usable JSON Web Key Set: keys[0]: "
            '"kty" must be RSA, EC, OKP or oct, got "DSA"',
            f"{RA}: spec.jwtRules[4].jwks: is not a usable JSON Web Key Set: keys[0]: unknown "
            '"alg" "RS1" (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, '
            "ES512, EdDSA, HS256, HS384, HS512)",
        ],
    ),
    (
        "where the keys come from",
        ra(
            "- issuer: a\n"
            "- issuer: b\n  jwks: '{\"keys\": []}'\n  jwksUri: http://users:8080/jwks\n"
            "- issuer: c\n  jwksUri: https://www.googleapis.com/oauth2/v3/certs\n"
            "- issuer: d\n  jwksUri: users/jwks.json\n"
            "- issuer: e\n  jwksUri: http://users:99999/jwks.json\n"
            "- issuer: f\n  jwksUri: ftp://idp.example.com/jwks.json\n"
            "- issuer: g\n  jwksUri: https:///jwks.json\n"
            "- issuer: h\n  jwksUri: https://idp.example.com:0/jwks.json\n"
            "- issuer: i\n  jwksUri: https://idp.example.com:https/jwks.json\n"
            "- issuer: j\n  jwksUri: https://me:secret@idp.example.com/jwks.json\n"
            "- issuer: k\n  jwksUri: 'https://[::1/jwks.json'\n"
            "- issuer: l\n  jwksUri: https://[::1]:8443/jwks.json\n"
        ),
        [
            f"{RA}: spec.jwtRules[0]: set jwks or jwksUri (finding the keys from the issuer "
            "by OpenID discovery is not supported by Ami yet)",
            f"{RA}: spec.jwtRules[1].jwksUri: set either jwks or jwksUri, not both",
            f'{RA}: spec.jwtRules[1].jwks: is not a usable JSON Web Key Set: "keys" is empty',
            f"{RA}: spec.jwtRules[3].jwksUri: must be an http:// or https:// URL such as "
            'https://idp.example.com/.well-known/jwks.json, got "users/jwks.json"',
            f"{RA}: spec.jwtRules[4].jwksUri: port must be a number from 1 to 65535, got "
            '"http://users:99999/jwks.json"',
            f"{RA}: spec.jwtRules[5].jwksUri: must be an http:// or https:// URL such as "
            'https://idp.example.com/.well-known/jwks.json, got "ftp://idp.example.com/jwks.json"',
            f"{RA}: spec.jwtRules[6].jwksUri: names no host: use a URL such as "
            'https://idp.example.com/.well-known/jwks.json, got "https:///jwks.json"',
            f"{RA}: spec.jwtRules[7].jwksUri: port must be a number from 1 to 65535, got "
            '"https://idp.example.com:0/jwks.json"',
            f"{RA}: spec.jwtRules[8].jwksUri: port must be a number from 1 to 65535, got "
            '"https://idp.example.com:https/jwks.json"',
            f"{RA}: spec.jwtRules[9].jwksUri: must not carry credentials (user:password@), got "
            '"https://me:secret@idp.example.com/jwks.json"',
            f"{RA}: spec.jwtRules[10].jwksUri: must be a URL such as "
            "https://idp.example.com/.well-known/jwks.json (Invalid IPv6 URL), got "
            '"https://[::1/jwks.json"',
        ],
    ),
    (
        "token locations and output headers",
        ra(
            "- issuer: a\n  jwksUri: http://users:8080/jwks\n"
            "  fromHeaders: [{name: 'x jwt'}, {prefix: Bearer}]\n  fromParams: ['']\n"
            "  outputPayloadToHeader: 'x:payload'\n"
        ),
        [
            f"{RA}: spec.jwtRules[0].fromHeaders[1].name: is required",
        ],
    ),
    (
        "token locations and output headers, once the schema holds",
        ra(
            "- issuer: a\n  jwksUri: http://users:8080/jwks\n"
            "  fromHeaders: [{name: 'x jwt'}]\n  fromParams: ['']\n"
            "  outputPayloadToHeader: 'x:payload'\n"
        ),
        [
            f'{RA}: spec.jwtRules[0].fromHeaders[0].name: "x jwt" is not a valid HTTP header name',
            f"{RA}: spec.jwtRules[0].fromParams[0]: must not be empty",
            f'{RA}: spec.jwtRules[0].outputPayloadToHeader: "x:payload" is not a valid HTTP '
            "header name",
        ],
    ),
    (
        "an issuer is required",
        ra("- jwksUri: http://users:8080/jwks\n"),
        [f"{RA}: spec.jwtRules[0].issuer: is required"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_document(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_when_keys_parse() -> None:
    parse = authz.parse_when_key
    assert parse("request.headers[x-user]") == authz.WhenKey("request.headers", ("x-user",))
    assert parse("request.auth.claims[a][b]") == authz.WhenKey("request.auth.claims", ("a", "b"))
    assert parse("request.auth.claims[a.b]") == authz.WhenKey("request.auth.claims", ("a.b",))
    assert parse("source.ip") == authz.WhenKey("source.ip")
    for bad in ("request.headers[a][b]", "request.headers[]", "request.auth.claims", "source"):
        assert parse(bad) is None


def test_patterns() -> None:
    assert authz.pattern("*") == ("any", "")
    assert authz.pattern("/api/*") == ("prefix", "/api/")
    assert authz.pattern("*.css") == ("suffix", ".css")
    assert authz.pattern("/exact") == ("exact", "/exact")
