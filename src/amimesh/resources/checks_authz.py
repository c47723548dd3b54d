"""RequestAuthentication and AuthorizationPolicy checks beyond the schema.

They follow Istio's validation, and go further where Envoy would otherwise take the
config and misbehave quietly: a JWKS is parsed (every key must be a usable public key),
`when` keys must be ones Ami translates, addresses must be IPs or CIDRs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from amimesh.resources import istio_authz as authz
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import NOT_SUPPORTED_MESSAGE, show

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_ALGS = tuple(
    "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA HS256 HS384 HS512".split()
)
DRY_RUN = "istio.io/dry-run"
_EXAMPLE_URI = "https://idp.example.com/.well-known/jwks.json"
_IP_KEYS = frozenset({"source.ip", "remote.ip", "destination.ip"})
_SOURCE_FIELDS = tuple(authz.Source.model_fields)
_OPERATION_FIELDS = tuple(authz.Operation.model_fields)


# The (group, kind) pairs a policy may attach to, as Istio's validation lists them.
TARGET_KINDS = frozenset(
    {
        ("core", "Service"),
        ("networking.istio.io", "ServiceEntry"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
    }
)


def target_group(ref: authz.PolicyTargetReference) -> str:
    """The reference's group, the core group named `core` as Istio canonicalizes it."""
    return ref.group or "core"


def _target_issues(
    spec: authz.RequestAuthenticationSpec | authz.AuthorizationPolicySpec,
) -> Iterator[Issue]:
    given = [
        name
        for name, value in (
            ("selector", spec.selector),
            ("targetRef", spec.targetRef),
            ("targetRefs", spec.targetRefs),
        )
        if value
    ]
    if len(given) > 1:
        yield Issue(
            ("spec", given[1]),
            f"set only one of selector, targetRef, targetRefs (got {' and '.join(given)})",
        )
    refs: list[tuple[str, int | None, authz.PolicyTargetReference]] = [
        ("targetRefs", i, r) for i, r in enumerate(spec.targetRefs)
    ]
    if spec.targetRef is not None:
        refs.insert(0, ("targetRef", None, spec.targetRef))
    for field, i, ref in refs:
        loc: Loc = ("spec", field) if i is None else ("spec", field, i)
        if ref.namespace:
            yield Issue(
                (*loc, "namespace"),
                "must not be set: cross-namespace references are not supported (as in Istio)",
            )
        if (target_group(ref), ref.kind) not in TARGET_KINDS:
            kinds = ", ".join(f"{k} ({g})" for g, k in sorted(TARGET_KINDS))
            yield Issue(
                (*loc, "kind"),
                f"a policy attaches to one of {kinds}; got {show(ref.kind)} in group "
                f"{show(ref.group)}",
            )


# --- RequestAuthentication ------------------------------------------------------------


def check_request_authentication(ra: authz.RequestAuthentication) -> Iterator[Issue]:
    yield from _target_issues(ra.spec)
    for i, rule in enumerate(ra.spec.jwtRules):
        yield from _jwt_rule_issues(rule, ("spec", "jwtRules", i))


def _jwt_rule_issues(rule: authz.JWTRule, loc: Loc) -> Iterator[Issue]:
    if rule.jwks is None and rule.jwksUri is None:
        yield Issue(
            loc,
            "set jwks or jwksUri (finding the keys from the issuer by OpenID discovery "
            f"{NOT_SUPPORTED_MESSAGE})",
        )
    if rule.jwks is not None and rule.jwksUri is not None:
        yield Issue((*loc, "jwksUri"), "set either jwks or jwksUri, not both")
    if rule.jwks is not None:
        problem = jwks_problem(rule.jwks)
        if problem is not None:
            yield Issue((*loc, "jwks"), f"is not a usable JSON Web Key Set: {problem}")
    if rule.jwksUri is not None:
        problem = _jwks_uri_problem(rule.jwksUri)
        if problem is not None:
            yield Issue((*loc, "jwksUri"), problem)
    for j, header in enumerate(rule.fromHeaders):
        yield from _header_name_issues(header.name, (*loc, "fromHeaders", j, "name"))
    for j, param in enumerate(rule.fromParams):
        if not param:
            yield Issue((*loc, "fromParams", j), "must not be empty")
    for j, cookie in enumerate(rule.fromCookies):
        if not cookie:
            yield Issue((*loc, "fromCookies", j), "must not be empty")
    if rule.outputPayloadToHeader is not None:
        yield from _header_name_issues(rule.outputPayloadToHeader, (*loc, "outputPayloadToHeader"))
    for j, out in enumerate(rule.outputClaimToHeaders):
        yield from _header_name_issues(out.header, (*loc, "outputClaimToHeaders", j, "header"))


def _header_name_issues(name: str, loc: Loc) -> Iterator[Issue]:
    if not _TOKEN.match(name):
        yield Issue(loc, f"{show(name)} is not a valid HTTP header name")


def _jwks_uri_problem(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
    except ValueError as err:
        return f"must be a URL such as {_EXAMPLE_URI} ({err}), got {show(uri)}"
    try:
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        port = 0
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL such as {_EXAMPLE_URI}, got {show(uri)}"
    if not parts.hostname:
        return f"names no host: use a URL such as {_EXAMPLE_URI}, got {show(uri)}"
    if port == 0:
        return f"port must be a number from 1 to 65535, got {show(uri)}"
    if parts.username is not None or parts.password is not None:
        return f"must not carry credentials (user:password@), got {show(uri)}"
    return None


def jwks_problem(text: str) -> str | None:
    """Why `text` is not a JSON Web Key Set whose keys Envoy can verify with, or None."""
    try:
        data = json.loads(text)
    except ValueError as err:
        return f"not JSON ({err})"
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        return 'must be a JSON object with a "keys" list'
    if not data["keys"]:
        return '"keys" is empty'
    for i, key in enumerate(data["keys"]):
        problem = _jwk_problem(key)
        if problem is not None:
            return f"keys[{i}]: {problem}"
    return None


def _jwk_problem(key: Any) -> str | None:
    if not isinstance(key, dict):
        return "must be a JSON object"
    alg = key.get("alg")
    if alg is not None and alg not in _ALGS:
        return f'unknown "alg" {show(alg)} (use one of {", ".join(_ALGS)})'
    kty = key.get("kty")
    try:
        if kty == "RSA":
            rsa.RSAPublicNumbers(_int(key, "e"), _int(key, "n")).public_key()
        elif kty == "EC":
            curve = _CURVES.get(str(key.get("crv")))
            if curve is None:
                return f'EC "crv" must be one of {", ".join(_CURVES)}, got {show(key.get("crv"))}'
            x, y = _int(key, "x"), _int(key, "y")
            try:
                ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
            except ValueError:
                return f'the EC point ("x", "y") is not on curve {key["crv"]}'
        elif kty == "OKP":
            if key.get("crv") != "Ed25519" or len(_bytes(key, "x")) != 32:
                return 'an OKP key must be Ed25519 with a 32-byte "x"'
        elif kty == "oct":
            _bytes(key, "k")
        else:
            return f'"kty" must be RSA, EC, OKP or oct, got {show(kty)}'
    except ValueError as err:
        return f"{kty} key: {err}"
    return None


def _bytes(key: dict[str, Any], member: str) -> bytes:
    value = key.get(member)
    if not isinstance(value, str) or not value:
        raise ValueError(f'"{member}" is missing')
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError(f'"{member}" is not base64url') from err


def _int(key: dict[str, Any], member: str) -> int:
    return int.from_bytes(_bytes(key, member), "big")


# --- AuthorizationPolicy --------------------------------------------------------------


def check_authorization_policy(policy: authz.AuthorizationPolicy) -> Iterator[Issue]:
    if policy.metadata.annotations.get(DRY_RUN, "").lower() == "true":
        yield Issue(
            ("metadata", "annotations", DRY_RUN),
            "dry-run policies are not supported by Ami yet: remove the annotation "
            "(the policy would be enforced)",
        )
    yield from _target_issues(policy.spec)
    for i, rule in enumerate(policy.spec.rules):
        loc: Loc = ("spec", "rules", i)
        for j, f in enumerate(rule.from_):
            yield from _source_issues(f.source, (*loc, "from", j, "source"))
        for j, t in enumerate(rule.to):
            yield from _operation_issues(t.operation, (*loc, "to", j, "operation"))
        for j, cond in enumerate(rule.when):
            yield from _condition_issues(cond, (*loc, "when", j))


def _source_issues(source: authz.Source | None, loc: Loc) -> Iterator[Issue]:
    if source is None:
        yield Issue(loc, "is required")
        return
    if not any(getattr(source, name) for name in _SOURCE_FIELDS):
        yield Issue(loc, "must set at least one of " + ", ".join(_SOURCE_FIELDS))
    for name in ("principals", "requestPrincipals", "namespaces"):
        for negated in (name, "not" + name[0].upper() + name[1:]):
            yield from _wildcard_issues(getattr(source, negated), (*loc, negated))
    for name in ("serviceAccounts", "notServiceAccounts"):
        for j, value in enumerate(getattr(source, name)):
            ns, slash, sa = value.partition("/")
            if not (slash and ns and sa) or "/" in sa or "*" in value:
                yield Issue(
                    (*loc, name, j), f'must be "NAMESPACE/SERVICEACCOUNT", got {show(value)}'
                )
    for name in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"):
        yield from _ip_issues(getattr(source, name), (*loc, name))


def _operation_issues(operation: authz.Operation | None, loc: Loc) -> Iterator[Issue]:
    if operation is None:
        yield Issue(loc, "is required")
        return
    if not any(getattr(operation, name) for name in _OPERATION_FIELDS):
        yield Issue(loc, "must set at least one of " + ", ".join(_OPERATION_FIELDS))
    for name in ("hosts", "notHosts", "methods", "notMethods"):
        yield from _wildcard_issues(getattr(operation, name), (*loc, name))
    for name in ("paths", "notPaths"):
        for j, value in enumerate(getattr(operation, name)):
            if "{" in value:
                yield Issue(
                    (*loc, name, j), f"path templates ({{*}}, {{**}}) {NOT_SUPPORTED_MESSAGE}"
                )
            else:
                yield from _wildcard_issues([value], (*loc, name), first=j)
    for name in ("ports", "notPorts"):
        yield from _port_issues(getattr(operation, name), (*loc, name))


def _condition_issues(cond: authz.Condition, loc: Loc) -> Iterator[Issue]:
    key = authz.parse_when_key(cond.key)
    if key is None:
        yield Issue(
            (*loc, "key"), f"unknown key {show(cond.key)}; Ami supports {authz.SUPPORTED_KEYS}"
        )
        return
    if not cond.values and not cond.notValues:
        yield Issue(loc, "set values or notValues")
    if key.name == authz.HEADER_KEY:
        yield from _header_name_issues(key.args[0], (*loc, "key"))
    for name in ("values", "notValues"):
        values = getattr(cond, name)
        if key.name in _IP_KEYS:
            yield from _ip_issues(values, (*loc, name))
        elif key.name == "destination.port":
            yield from _port_issues(values, (*loc, name))
        else:
            yield from _wildcard_issues(values, (*loc, name))


def _wildcard_issues(values: Sequence[str], loc: Loc, first: int = 0) -> Iterator[Issue]:
    for j, value in enumerate(values, first):
        if not value:
            yield Issue((*loc, j), "must not be empty")
        elif "*" in value[1:-1] or value.count("*") > 1:
            yield Issue(
                (*loc, j),
                f'{show(value)}: "*" may only be the whole value, its first or its last character',
            )


def _ip_issues(values: Sequence[str], loc: Loc) -> Iterator[Issue]:
    for j, value in enumerate(values):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            yield Issue((*loc, j), f"must be an IP address or a CIDR range, got {show(value)}")


def _port_issues(values: Sequence[str], loc: Loc) -> Iterator[Issue]:
    for j, value in enumerate(values):
        if not (value.isdigit() and 1 <= int(value) <= 65535):
            yield Issue((*loc, j), f"must be a port number from 1 to 65535, got {show(value)}")
