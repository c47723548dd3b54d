"""Istio's authorization values → Envoy RBAC principals and permissions, one value each.

Strings use Istio's wildcards (`*`, `abc*`, `*abc`). Peer identities are the SPIFFE URI
in the client certificate (`authenticated.principal_name`), so they match only on
mutual TLS connections. JWT facts are read from the dynamic metadata that
`envoy.filters.http.jwt_authn` writes: the token's payload under `PAYLOAD_KEY`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import TypeAlias

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2

from amimesh.resources import istio_authz as authz

Permission: TypeAlias = rbac_pb2.Permission
Principal: TypeAlias = rbac_pb2.Principal
StringMatcher: TypeAlias = string_pb2.StringMatcher
ValueMatcher: TypeAlias = value_pb2.ValueMatcher

JWT_FILTER = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
SPIFFE = "spiffe://"
_ANY_DOMAIN = "spiffe://[^/]+"


def string(value: str, *, transform: str = "") -> StringMatcher:
    """`value` (Istio wildcards) as a matcher of `transform + value`; `*` matches
    anything, the empty string included."""
    kind, text = authz.pattern(value)
    if kind == "exact":
        return StringMatcher(exact=transform + text)
    if kind == "prefix":
        return StringMatcher(prefix=transform + text)
    if kind == "suffix":
        return StringMatcher(suffix=text)
    return regex(re.escape(transform) + ".*")


def regex(pattern: str) -> StringMatcher:
    return StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


# --- logic ---------------------------------------------------------------------------


_ANY_PRINCIPAL = Principal(any=True)
_ANY_PERMISSION = Permission(any=True)
# Matches nothing (compared against, never handed out: callers get fresh copies).
NEVER = Permission(not_rule=Permission(any=True))


def never() -> Permission:
    return Permission(not_rule=Permission(any=True))


def all_principals(ids: Sequence[Principal]) -> Principal:
    """Matches when every one of `ids` does (`any` parts add nothing and are dropped)."""
    ids = [i for i in ids if i != _ANY_PRINCIPAL]
    if not ids:
        return Principal(any=True)
    if len(ids) == 1:
        return ids[0]
    return Principal(and_ids=Principal.Set(ids=ids))


def any_principal(ids: Sequence[Principal]) -> Principal:
    if len(ids) == 1:
        return ids[0]
    return Principal(or_ids=Principal.Set(ids=list(ids)))


def all_permissions(rules: Sequence[Permission]) -> Permission:
    """Matches when every one of `rules` does (`any` parts add nothing and are dropped)."""
    rules = [r for r in rules if r != _ANY_PERMISSION]
    if not rules:
        return Permission(any=True)
    if NEVER in rules:
        return never()
    if len(rules) == 1:
        return rules[0]
    return Permission(and_rules=Permission.Set(rules=rules))


def any_permission(rules: Sequence[Permission]) -> Permission:
    """Matches when one of `rules` does (parts that never match are dropped)."""
    if _ANY_PERMISSION in rules:
        return Permission(any=True)
    rules = [r for r in rules if r != NEVER]
    if not rules:
        return never()
    if len(rules) == 1:
        return rules[0]
    return Permission(or_rules=Permission.Set(rules=rules))


def no_permission(rule: Permission) -> Permission:
    """Matches when `rule` does not."""
    if rule == _ANY_PERMISSION:
        return never()
    if rule == NEVER:
        return Permission(any=True)
    return Permission(not_rule=rule)


# --- connection facts ----------------------------------------------------------------


def cidr(value: str) -> address_pb2.CidrRange:
    net = ipaddress.ip_network(value, strict=False)
    out = address_pb2.CidrRange(address_prefix=str(net.network_address))
    out.prefix_len.value = net.prefixlen
    return out


def peer_principal(value: str) -> Principal:
    """`cluster.local/ns/NS/sa/SA` (wildcards allowed): the peer certificate's SPIFFE ID.

    `*` is any peer that presented a certificate. Envoy's `authenticated` without a
    name would match any TLS connection, a gateway's one-way HTTPS clients included,
    so it asks for a name that is not empty (the SAN, else the subject)."""
    if authz.pattern(value)[0] == "any":
        return _principal_name(regex(".+"))
    return _principal_name(string(value, transform=SPIFFE))


def peer_namespace(value: str) -> Principal:
    """A peer whose SPIFFE ID is in namespace `value` (wildcards allowed)."""
    kind, text = authz.pattern(value)
    ns = {
        "exact": re.escape(text),
        "prefix": re.escape(text) + "[^/]*",
        "suffix": "[^/]*" + re.escape(text),
        "any": "[^/]+",
    }[kind]
    return _principal_name(regex(f"{_ANY_DOMAIN}/ns/{ns}/sa/.*"))


def peer_service_account(value: str) -> Principal:
    """`NS/SA`: the peer's namespace and service account, in any trust domain."""
    ns, _, sa = value.partition("/")
    return _principal_name(regex(f"{_ANY_DOMAIN}/ns/{re.escape(ns)}/sa/{re.escape(sa)}"))


def _principal_name(matcher: StringMatcher) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=matcher))


# --- request facts -------------------------------------------------------------------


def header(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    if authz.pattern(value)[0] == "any":
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    return route_components_pb2.HeaderMatcher(name=name, string_match=string(value))


def host(value: str) -> route_components_pb2.HeaderMatcher:
    """`:authority` against an Istio host, case-insensitively; a host without a port
    matches the authority with any port too (`reviews` matches `reviews:9080`)."""
    kind, text = authz.pattern(value)
    if kind == "any":
        return route_components_pb2.HeaderMatcher(name=":authority", present_match=True)
    port = "" if re.search(r":[0-9]+$", text) else "(:[0-9]+)?"
    body = {
        "exact": re.escape(text) + port,
        "prefix": re.escape(text) + ".*",
        "suffix": ".*" + re.escape(text) + port,
    }[kind]
    return route_components_pb2.HeaderMatcher(name=":authority", string_match=regex("(?i)" + body))


def path(value: str) -> Permission:
    if authz.pattern(value)[0] == "any":
        return Permission(any=True)
    return Permission(url_path=path_pb2.PathMatcher(path=string(value)))


# --- JWT facts (dynamic metadata of jwt_authn) ---------------------------------------


def claim(path: Sequence[str], value: ValueMatcher) -> Principal:
    """The JWT payload at `path` (claim names, nested) matches `value`."""
    segments = [metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (PAYLOAD_KEY, *path)]
    return Principal(
        metadata=metadata_pb2.MetadataMatcher(filter=JWT_FILTER, path=segments, value=value)
    )


def claim_value(value: str) -> ValueMatcher:
    """A claim equal to `value` (wildcards allowed), or a list of strings holding one."""
    if authz.pattern(value)[0] == "any":
        return ValueMatcher(present_match=True)
    text = ValueMatcher(string_match=string(value))
    listed = ValueMatcher(list_match=value_pb2.ListMatcher(one_of=text))
    return ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=[text, listed]))


def _present() -> ValueMatcher:
    return ValueMatcher(present_match=True)


def _text(matcher: StringMatcher) -> ValueMatcher:
    return ValueMatcher(string_match=matcher)


def request_principal(value: str) -> Principal:
    """`ISSUER/SUBJECT` (wildcards allowed) against the token's `iss` and `sub`.

    Envoy keeps the two claims apart, and an issuer may hold `/` itself, so the string is
    matched as every way of cutting it at a `/` into issuer and subject."""
    kind, text = authz.pattern(value)
    if kind == "any":
        return claim(["iss"], _present())
    cuts = [i for i, c in enumerate(text) if c == "/"]
    ways: list[Principal] = []
    if kind == "prefix":
        ways.append(claim(["iss"], _text(StringMatcher(prefix=text))))
    if kind == "suffix":
        ways.append(claim(["sub"], _text(StringMatcher(suffix=text))))
    for k in cuts:
        iss, sub = text[:k], text[k + 1 :]
        if kind == "exact":
            pair = (StringMatcher(exact=iss), StringMatcher(exact=sub))
            ways.append(_issuer_and_subject(_text(pair[0]), _text(pair[1])))
        elif kind == "prefix":
            rest = _text(StringMatcher(prefix=sub)) if sub else _present()
            ways.append(_issuer_and_subject(_text(StringMatcher(exact=iss)), rest))
        else:
            head = _text(StringMatcher(suffix=iss)) if iss else _present()
            ways.append(_issuer_and_subject(head, _text(StringMatcher(exact=sub))))
    if not ways:  # an exact value without "/" names no issuer/subject pair
        return Principal(not_id=Principal(any=True))
    return any_principal(ways)


def _issuer_and_subject(iss: ValueMatcher, sub: ValueMatcher) -> Principal:
    return all_principals([claim(["iss"], iss), claim(["sub"], sub)])
