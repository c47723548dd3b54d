"""Istio's request authentication and authorization kinds (security.istio.io v1beta1, v1).

- `RequestAuthentication`: which JSON Web Tokens a workload accepts (`jwtRules`). A
  request with an invalid token is refused (401); one with no token passes, and is
  left to authorization, as in Istio.
- `AuthorizationPolicy`: ALLOW, DENY and AUDIT rules on who calls (`from.source`), what
  is called (`to.operation`) and conditions (`when`).

Field names are Istio's. `when` keys are parsed by `parse_when_key`, which the checks
and the translators share; strings in rules may use `*` at their start or end
(`pattern`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from amimesh.resources.fields import Duration, NotSupported, OneLine, Strict, UnsupportedValues
from amimesh.resources.meta import Resource

ISTIO_SECURITY_VERSIONS = ("v1beta1", "v1")
ISTIO_SECURITY_GROUP = "security.istio.io"
# The longest JWKS fetch timeout Envoy takes (its HttpUri timeout is below 2^32 s).
MAX_FETCH_TIMEOUT_S = 2**32 - 1


def _fetch_timeout(seconds: float) -> float:
    if seconds > MAX_FETCH_TIMEOUT_S:
        raise ValueError(f"must be at most {MAX_FETCH_TIMEOUT_S}s")
    return seconds


FetchTimeout = Annotated[Duration, AfterValidator(_fetch_timeout)]


def _numbers_as_strings(value: Any) -> Any:
    """Istio types ports as strings; YAML users often write numbers."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


# A list of strings where numbers are read as their decimal text (ports, values).
StringList = Annotated[list[str], BeforeValidator(_numbers_as_strings)]


class WorkloadSelector(Strict):
    matchLabels: dict[str, str] = Field(
        default_factory=dict, description="empty: every workload of the namespace"
    )


class PolicyTargetReference(Strict):
    """Istio's `type.v1beta1.PolicyTargetReference`: the resource a policy attaches to
    instead of selecting workloads by label (`model.authz.attached`)."""

    group: str = Field(default="", max_length=253, description='"" or "core": the core group')
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(
        default=None, description="must be unset: cross-namespace references are not supported"
    )


_TARGET_REF = "deprecated by Istio for targetRefs; read as a one-item targetRefs"
_TARGET_REFS = (
    "instead of a selector: a Gateway API Gateway (or, for waypoints, a Service, "
    "ServiceEntry or GatewayClass); sidecars and Istio Gateways ignore such a policy"
)


# --- RequestAuthentication -----------------------------------------------------------


class JWTHeader(Strict):
    name: str = Field(min_length=1)
    prefix: OneLine = Field(default="", description='e.g. "Bearer "; the token follows it')


class ClaimToHeader(Strict):
    header: str = Field(min_length=1)
    claim: str = Field(min_length=1)


class JWTRule(Strict):
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(default_factory=list)
    jwksUri: str | None = Field(
        default=None,
        description="fetched by the sidecar: http:// or https:// to a service of the mesh "
        "(its outbound cluster), or https:// to a host outside the mesh (a cluster of its "
        "own, TLS verified against the system CAs or a DestinationRule for the host); "
        "http:// outside the mesh: tokens refused",
    )
    jwks: str | None = Field(default=None, description="a JSON Web Key Set, inline")
    fromHeaders: list[JWTHeader] = Field(
        default_factory=list, description="default: Authorization: Bearer"
    )
    fromParams: list[str] = Field(default_factory=list, description="default: access_token")
    fromCookies: list[str] = Field(default_factory=list)
    outputPayloadToHeader: str | None = None
    outputClaimToHeaders: list[ClaimToHeader] = Field(default_factory=list)
    forwardOriginalToken: bool = False
    timeout: FetchTimeout | None = Field(default=None, description="JWKS fetch; default 5s")


class RequestAuthenticationSpec(Strict):
    selector: WorkloadSelector | None = None
    jwtRules: list[JWTRule] = Field(default_factory=list)
    targetRef: PolicyTargetReference | None = Field(default=None, description=_TARGET_REF)
    targetRefs: list[PolicyTargetReference] = Field(
        default_factory=list, max_length=16, description=_TARGET_REFS
    )

    def target_refs(self) -> list[PolicyTargetReference]:
        """`targetRefs`, or the deprecated `targetRef` alone, as Istio reads them."""
        return self.targetRefs or ([self.targetRef] if self.targetRef is not None else [])


class RequestAuthentication(Resource):
    KIND: ClassVar[str] = "RequestAuthentication"
    API_GROUP: ClassVar[str] = ISTIO_SECURITY_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_SECURITY_VERSIONS
    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)


# --- AuthorizationPolicy -------------------------------------------------------------


class Source(Strict):
    principals: list[str] = Field(
        default_factory=list, description="cluster.local/ns/NS/sa/SA; mutual TLS only"
    )
    notPrincipals: list[str] = Field(default_factory=list)
    requestPrincipals: list[str] = Field(default_factory=list, description="ISSUER/SUBJECT")
    notRequestPrincipals: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list, description="mutual TLS only")
    notNamespaces: list[str] = Field(default_factory=list)
    serviceAccounts: list[str] = Field(default_factory=list, description="NS/SA")
    notServiceAccounts: list[str] = Field(default_factory=list)
    ipBlocks: list[str] = Field(default_factory=list, description="the peer's address")
    notIpBlocks: list[str] = Field(default_factory=list)
    remoteIpBlocks: list[str] = Field(default_factory=list, description="X-Forwarded-For aware")
    notRemoteIpBlocks: list[str] = Field(default_factory=list)


class Operation(Strict):
    hosts: list[str] = Field(default_factory=list, description="with or without :port")
    notHosts: list[str] = Field(default_factory=list)
    ports: StringList = Field(default_factory=list, description="workload ports")
    notPorts: StringList = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    notMethods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list, description="without the query string")
    notPaths: list[str] = Field(default_factory=list)


class RuleFrom(Strict):
    source: Source | None = Field(default=None, description="required")


class RuleTo(Strict):
    operation: Operation | None = Field(default=None, description="required")


class Condition(Strict):
    key: str = Field(min_length=1)
    values: StringList = Field(default_factory=list)
    notValues: StringList = Field(default_factory=list)


class Rule(Strict):
    from_: list[RuleFrom] = Field(default_factory=list, alias="from")
    to: list[RuleTo] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)


_ACTION_NOT_YET = UnsupportedValues(("CUSTOM",))
Action = Annotated[
    Literal["ALLOW", "DENY", "AUDIT"], _ACTION_NOT_YET, BeforeValidator(_ACTION_NOT_YET)
]


class AuthorizationPolicySpec(Strict):
    selector: WorkloadSelector | None = None
    rules: list[Rule] = Field(
        default_factory=list, description="none: an ALLOW policy matches nothing (denies all)"
    )
    action: Action = "ALLOW"
    provider: NotSupported = None
    targetRef: PolicyTargetReference | None = Field(default=None, description=_TARGET_REF)
    targetRefs: list[PolicyTargetReference] = Field(
        default_factory=list, max_length=16, description=_TARGET_REFS
    )

    def target_refs(self) -> list[PolicyTargetReference]:
        """`targetRefs`, or the deprecated `targetRef` alone, as Istio reads them."""
        return self.targetRefs or ([self.targetRef] if self.targetRef is not None else [])


class AuthorizationPolicy(Resource):
    KIND: ClassVar[str] = "AuthorizationPolicy"
    API_GROUP: ClassVar[str] = ISTIO_SECURITY_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_SECURITY_VERSIONS
    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)


# --- shared helpers: `when` keys and wildcard strings --------------------------------

# Keys that take no argument, and what they read.
PLAIN_KEYS = (
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
HEADER_KEY = "request.headers"
CLAIMS_KEY = "request.auth.claims"
SUPPORTED_KEYS = f"{HEADER_KEY}[NAME], {CLAIMS_KEY}[NAME] (nested: [A][B]), " + ", ".join(
    PLAIN_KEYS
)

_BRACKETED = re.compile(r"^(request\.headers|request\.auth\.claims)((?:\[[^\[\]]+\])+)$")


@dataclass(frozen=True)
class WhenKey:
    """A parsed `when` key: `name` is one of PLAIN_KEYS, HEADER_KEY or CLAIMS_KEY;
    `args` the bracketed parts (a header name; a claim path)."""

    name: str
    args: tuple[str, ...] = ()


def parse_when_key(key: str) -> WhenKey | None:
    """The key's meaning, or None when Ami does not know it."""
    if key in PLAIN_KEYS:
        return WhenKey(key)
    m = _BRACKETED.match(key)
    if m is None:
        return None
    args = tuple(m.group(2)[1:-1].split("]["))
    if m.group(1) == HEADER_KEY and len(args) != 1:
        return None
    return WhenKey(m.group(1), args)


PatternKind = Literal["exact", "prefix", "suffix", "any"]


def pattern(value: str) -> tuple[PatternKind, str]:
    """Istio's wildcard strings: `*` (any), `abc*` (prefix), `*abc` (suffix), else exact."""
    if value == "*":
        return "any", ""
    if value.endswith("*"):
        return "prefix", value[:-1]
    if value.startswith("*"):
        return "suffix", value[1:]
    return "exact", value
