"""Contour's `HTTPProxy` (projectcontour.io/v1): ingress with cross-namespace delegation.

A root proxy names a virtual host (`virtualhost.fqdn`, with `tls.secretName` for
HTTPS); it has `routes` of its own and `includes` other HTTPProxies, in its namespace or
another, under `conditions` (a path prefix, headers) that prefix every route of the
included proxy. A proxy without `virtualhost` is served only through a root's include
(else it is "orphaned"). How Ami serves them (as Istio resources on the ingress
gateway) is `model.httpproxy`. Field names are Contour's; fields Contour defines that
Ami does not implement are `NotSupported`.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from amimesh.resources import kube
from amimesh.resources.fields import (
    DNS_LABEL,
    INT32_MAX,
    Duration,
    NotSupported,
    OneLine,
    Port,
    Strict,
)
from amimesh.resources.meta import Resource

CONTOUR_GROUP = "projectcontour.io"
# The Service annotation naming upstream protocols (defined beside the Service).
UPSTREAM_PROTOCOL = kube.UPSTREAM_PROTOCOL
UPSTREAM_PROTOCOLS = kube.UPSTREAM_PROTOCOLS
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")


def _header_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise ValueError(f'"{name}" is not a valid HTTP header name')
    return name


# Contour reads header names in any case (HTTP's are case-insensitive).
HeaderName = Annotated[str, AfterValidator(_header_name)]


class HeaderMatch(Strict):
    """Exactly one test of the header `name` (`present`, `notpresent`, `contains`,
    `notcontains`, `exact`, `notexact`)."""

    name: HeaderName
    present: bool | None = None
    notpresent: bool | None = None
    contains: str | None = None
    notcontains: str | None = None
    exact: str | None = None
    notexact: str | None = None
    ignoreCase: NotSupported = None
    treatMissingAsEmpty: NotSupported = None
    regex: NotSupported = None

    @model_validator(mode="after")
    def _one_test(self) -> HeaderMatch:
        tests = [
            k
            for k in ("present", "notpresent", "contains", "notcontains", "exact", "notexact")
            if getattr(self, k) not in (None, False)
        ]
        if len(tests) != 1:
            raise ValueError(
                "set exactly one of present, notpresent, contains, notcontains, exact, "
                f"notexact (got {', '.join(tests) or 'none'})"
            )
        return self


class MatchCondition(Strict):
    """A path prefix or a header test (one of them per condition, as in Contour)."""

    prefix: OneLine | None = Field(default=None, description="a path prefix, starting with /")
    header: HeaderMatch | None = None
    exact: NotSupported = None
    regex: NotSupported = None
    queryParameter: NotSupported = None

    @model_validator(mode="after")
    def _one_kind(self) -> MatchCondition:
        if (self.prefix is None) == (self.header is None):
            raise ValueError("set exactly one of prefix, header")
        if self.prefix is not None and not self.prefix.startswith("/"):
            raise ValueError(f'prefix must start with "/", got "{self.prefix}"')
        return self


class HeaderValue(Strict):
    name: HeaderName
    value: OneLine


class HeadersPolicy(Strict):
    set: list[HeaderValue] = Field(default_factory=list)
    remove: list[HeaderName] = Field(default_factory=list)


class Service(Strict):
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    port: Port
    weight: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="relative; unset on every service: equal shares; unset beside set ones: 0",
    )
    protocol: NotSupported = None
    mirror: NotSupported = None
    requestHeadersPolicy: HeadersPolicy | None = None
    responseHeadersPolicy: HeadersPolicy | None = None
    validation: NotSupported = None
    slowStartPolicy: NotSupported = None
    healthPort: NotSupported = None
    cookieRewritePolicies: NotSupported = None


class ReplacePrefix(Strict):
    prefix: OneLine | None = Field(
        default=None, description="the route's full prefix it applies to; unset: any"
    )
    replacement: OneLine = Field(min_length=1)


class PathRewritePolicy(Strict):
    replacePrefix: list[ReplacePrefix] = Field(default_factory=list)


class TimeoutPolicy(Strict):
    response: str | None = Field(
        default=None, description='a duration, or "infinity" (no timeout); unset: 15s'
    )
    idle: NotSupported = None
    idleConnection: NotSupported = None


class RetryPolicy(Strict):
    count: int = Field(default=1, ge=0, le=INT32_MAX, description="unset: 1")
    perTryTimeout: Duration | None = None
    retryOn: list[str] = Field(default_factory=list, description="Envoy's conditions")
    retriableStatusCodes: NotSupported = None


class Route(Strict):
    conditions: list[MatchCondition] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    timeoutPolicy: TimeoutPolicy | None = None
    retryPolicy: RetryPolicy | None = None
    pathRewritePolicy: PathRewritePolicy | None = None
    requestHeadersPolicy: HeadersPolicy | None = None
    responseHeadersPolicy: HeadersPolicy | None = None
    permitInsecure: bool | None = Field(
        default=None, description="true: served over plain HTTP too when the host has TLS"
    )
    enableWebsockets: bool | None = Field(
        default=None, description="accepted: every route upgrades websockets"
    )
    healthCheckPolicy: NotSupported = None
    loadBalancerPolicy: NotSupported = None
    requestRedirectPolicy: NotSupported = None
    directResponsePolicy: NotSupported = None
    authPolicy: NotSupported = None
    rateLimitPolicy: NotSupported = None
    mirrorPolicy: NotSupported = None
    ipAllowPolicy: NotSupported = None
    ipDenyPolicy: NotSupported = None
    jwtVerificationPolicy: NotSupported = None
    cookieRewritePolicies: NotSupported = None
    internalRedirectPolicy: NotSupported = None


class Include(Strict):
    name: str = Field(min_length=1)
    namespace: str | None = Field(default=None, description="unset: the including proxy's")
    conditions: list[MatchCondition] = Field(default_factory=list)


class VirtualHostTLS(Strict):
    secretName: str = Field(
        min_length=1, description="`NAME` or `NAMESPACE/NAME`: the gateway credential NAME"
    )
    minimumProtocolVersion: Literal["1.2", "1.3", "auto"] | None = None
    maximumProtocolVersion: NotSupported = None
    passthrough: NotSupported = None
    clientValidation: NotSupported = None
    enableFallbackCertificate: NotSupported = None


class VirtualHost(Strict):
    fqdn: str = Field(min_length=1, max_length=253)
    tls: VirtualHostTLS | None = None
    corsPolicy: NotSupported = None
    rateLimitPolicy: NotSupported = None
    authorization: NotSupported = None
    jwtProviders: NotSupported = None
    ipAllowPolicy: NotSupported = None
    ipDenyPolicy: NotSupported = None


class HTTPProxySpec(Strict):
    virtualhost: VirtualHost | None = Field(default=None, description="set: a root proxy")
    routes: list[Route] = Field(default_factory=list)
    includes: list[Include] = Field(default_factory=list)
    ingressClassName: str | None = Field(default=None, description="accepted and ignored")
    tcpproxy: NotSupported = None


class HTTPProxy(Resource):
    KIND: ClassVar[str] = "HTTPProxy"
    API_GROUP: ClassVar[str] = CONTOUR_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: HTTPProxySpec = Field(default_factory=HTTPProxySpec)
