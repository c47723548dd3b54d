"""The Kubernetes Gateway API (gateway.networking.k8s.io): GatewayClass, Gateway,
HTTPRoute, GRPCRoute, TCPRoute, TLSRoute and ReferenceGrant, at v1 and at the
v1beta1/v1alpha2 versions older YAML still names.

Field names are the Gateway API's own. Ami runs them by converting them into the
mesh's Istio-model resources (`amimesh.gatewayapi`); what the API defines and Ami
does not implement yet is typed `NotSupported`, so naming it is an error that says so.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from amimesh.resources.fields import (
    DNS_LABEL,
    Duration,
    NotSupported,
    OneLine,
    Port,
    PositiveDuration,
    Strict,
)
from amimesh.resources.meta import Resource

GROUP = "gateway.networking.k8s.io"
V1 = ("v1", "v1beta1", "v1alpha2")
ROUTE_V1ALPHA = ("v1alpha2", "v1alpha3", "v1")

Name = Annotated[str, Field(min_length=1, max_length=253)]
SectionName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_LABEL)]
Hostname = Annotated[str, Field(min_length=1, max_length=253)]
Weight = Annotated[int, Field(ge=0, le=1_000_000)]


# --- shared ----------------------------------------------------------------------------


class ParentReference(Strict):
    group: str | None = Field(default=None, description=f"unset: {GROUP}; `` for a Service")
    kind: str | None = Field(default=None, description="unset: Gateway; Service for the mesh")
    namespace: str | None = Field(default=None, description="unset: the route's namespace")
    name: Name
    sectionName: SectionName | None = None
    port: Port | None = None


class BackendObjectReference(Strict):
    group: str | None = Field(default=None, description="unset or ``: a Service")
    kind: str | None = Field(default=None, description="unset: Service")
    name: Name
    namespace: str | None = Field(
        default=None, description="another namespace needs a ReferenceGrant there"
    )
    port: Port | None = None


class SecretObjectReference(Strict):
    group: str | None = None
    kind: str | None = Field(default=None, description="unset: Secret")
    name: Name
    namespace: str | None = Field(
        default=None, description="another namespace needs a ReferenceGrant there"
    )


class HTTPHeader(Strict):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[OneLine, Field(max_length=4096)]


class HTTPHeaderFilter(Strict):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16
    )


class Fraction(Strict):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)


class HTTPRequestMirrorFilter(Strict):
    backendRef: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None


# --- GatewayClass ----------------------------------------------------------------------


class GatewayClassSpec(Strict):
    controllerName: Annotated[str, Field(min_length=1, max_length=253)]
    description: str | None = None
    parametersRef: NotSupported = None


class GatewayClass(Resource):
    KIND: ClassVar[str] = "GatewayClass"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = V1
    spec: GatewayClassSpec


# --- Gateway ---------------------------------------------------------------------------


class LabelSelector(Strict):
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: NotSupported = None


class RouteNamespaces(Strict):
    from_: Literal["All", "Same", "Selector"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = Field(
        default=None,
        description="with `from: Selector`; a namespace's label on one machine is "
        "`kubernetes.io/metadata.name`",
    )


class RouteGroupKind(Strict):
    group: str | None = None
    kind: Annotated[str, Field(min_length=1)]


class AllowedRoutes(Strict):
    namespaces: RouteNamespaces | None = None
    kinds: list[RouteGroupKind] = Field(default_factory=list, max_length=8)


class GatewayTLSConfig(Strict):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificateRefs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: dict[str, str] = Field(default_factory=dict)
    frontendValidation: NotSupported = None


class Listener(Strict):
    name: SectionName
    hostname: Hostname | None = None
    port: Port
    protocol: Literal["HTTP", "HTTPS", "TLS", "TCP", "UDP", "HBONE"]
    tls: GatewayTLSConfig | None = None
    allowedRoutes: AllowedRoutes | None = None


class GatewayAddress(Strict):
    type: str | None = None
    value: str


class GatewaySpec(Strict):
    gatewayClassName: Name
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewayAddress] = Field(
        default_factory=list, description="accepted; Ami's gateway listens where it runs"
    )
    infrastructure: NotSupported = None
    backendTLS: NotSupported = None


class Gateway(Resource):
    KIND: ClassVar[str] = "Gateway"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = V1
    QUALIFIED: ClassVar[bool] = True  # Istio has a Gateway too
    spec: GatewaySpec


# --- HTTPRoute -------------------------------------------------------------------------


class HTTPPathMatch(Strict):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[OneLine, Field(max_length=1024)] = "/"


class HTTPHeaderMatch(Strict):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[str, Field(max_length=4096)]


class HTTPQueryParamMatch(Strict):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[str, Field(min_length=1, max_length=1024)]


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(Strict):
    path: HTTPPathMatch | None = Field(default=None, description="unset: PathPrefix /")
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    queryParams: list[HTTPQueryParamMatch] = Field(default_factory=list, max_length=16)
    method: HTTPMethod | None = None


class HTTPPathModifier(Strict):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replaceFullPath: Annotated[OneLine, Field(max_length=1024)] | None = None
    replacePrefixMatch: Annotated[OneLine, Field(max_length=1024)] | None = None


class HTTPRequestRedirectFilter(Strict):
    scheme: Literal["http", "https"] | None = None
    hostname: Hostname | None = None
    path: HTTPPathModifier | None = None
    port: Port | None = None
    statusCode: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(Strict):
    hostname: Hostname | None = None
    path: HTTPPathModifier | None = None


FilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
]


class HTTPRouteFilter(Strict):
    type: FilterType
    requestHeaderModifier: HTTPHeaderFilter | None = None
    responseHeaderModifier: HTTPHeaderFilter | None = None
    requestMirror: HTTPRequestMirrorFilter | None = None
    requestRedirect: HTTPRequestRedirectFilter | None = None
    urlRewrite: HTTPURLRewriteFilter | None = None
    extensionRef: NotSupported = None
    cors: NotSupported = None


class BackendRef(Strict):
    """A route's backend with its weight (HTTP and gRPC routes add their own filters)."""

    group: str | None = None
    kind: str | None = None
    name: Name
    namespace: str | None = None
    port: Port | None = None
    weight: Weight = 1

    @property
    def ref(self) -> BackendObjectReference:
        return BackendObjectReference(
            group=self.group,
            kind=self.kind,
            name=self.name,
            namespace=self.namespace,
            port=self.port,
        )


class HTTPBackendRef(BackendRef):
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)


class HTTPRouteTimeouts(Strict):
    request: Duration | None = Field(default=None, description="0s: no timeout")
    backendRequest: PositiveDuration | None = Field(default=None, description="each try's timeout")


class HTTPRouteRetry(Strict):
    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=list)
    attempts: int | None = Field(default=None, ge=0, le=2**31 - 1)
    backoff: NotSupported = None


class HTTPRouteRule(Strict):
    name: SectionName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=list, max_length=64)
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backendRefs: list[HTTPBackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    sessionPersistence: NotSupported = None


class HTTPRouteSpec(Strict):
    parentRefs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=list, max_length=64)


class HTTPRoute(Resource):
    KIND: ClassVar[str] = "HTTPRoute"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = V1
    spec: HTTPRouteSpec


# --- GRPCRoute -------------------------------------------------------------------------


class GRPCMethodMatch(Strict):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    method: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class GRPCHeaderMatch(Strict):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class GRPCRouteMatch(Strict):
    method: GRPCMethodMatch | None = None
    headers: list[GRPCHeaderMatch] = Field(default_factory=list, max_length=16)


class GRPCRouteFilter(Strict):
    type: Literal[
        "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"
    ]
    requestHeaderModifier: HTTPHeaderFilter | None = None
    responseHeaderModifier: HTTPHeaderFilter | None = None
    requestMirror: HTTPRequestMirrorFilter | None = None
    extensionRef: NotSupported = None


class GRPCBackendRef(BackendRef):
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)


class GRPCRouteRule(Strict):
    name: SectionName | None = None
    matches: list[GRPCRouteMatch] = Field(default_factory=list, max_length=64)
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)
    backendRefs: list[GRPCBackendRef] = Field(default_factory=list, max_length=16)
    sessionPersistence: NotSupported = None


class GRPCRouteSpec(Strict):
    parentRefs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[GRPCRouteRule] = Field(default_factory=list, max_length=16)


class GRPCRoute(Resource):
    KIND: ClassVar[str] = "GRPCRoute"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1alpha2")
    spec: GRPCRouteSpec


# --- TCPRoute and TLSRoute ---------------------------------------------------------------


class StreamRouteRule(Strict):
    name: SectionName | None = None
    backendRefs: list[BackendRef] = Field(min_length=1, max_length=16)


class TCPRouteSpec(Strict):
    parentRefs: list[ParentReference] = Field(default_factory=list, max_length=32)
    rules: list[StreamRouteRule] = Field(min_length=1, max_length=16)


class TCPRoute(Resource):
    KIND: ClassVar[str] = "TCPRoute"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ROUTE_V1ALPHA
    spec: TCPRouteSpec


class TLSRouteSpec(Strict):
    parentRefs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[StreamRouteRule] = Field(min_length=1, max_length=16)


class TLSRoute(Resource):
    KIND: ClassVar[str] = "TLSRoute"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ROUTE_V1ALPHA
    spec: TLSRouteSpec


# --- ReferenceGrant ----------------------------------------------------------------------


class ReferenceGrantFrom(Strict):
    group: str
    kind: Annotated[str, Field(min_length=1)]
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class ReferenceGrantTo(Strict):
    group: str
    kind: Annotated[str, Field(min_length=1)]
    name: Name | None = Field(default=None, description="unset: every object of the kind")


class ReferenceGrantSpec(Strict):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    KIND: ClassVar[str] = "ReferenceGrant"
    API_GROUP: ClassVar[str] = GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1beta1", "v1alpha2", "v1")
    spec: ReferenceGrantSpec
