"""Istio networking kinds (networking.istio.io v1alpha3, v1beta1, v1).

Field names are Istio's own (camelCase), so a user's YAML maps one to one. Fields that
Istio defines but Ami does not implement yet are typed `NotSupported`: naming one is a
validation error that says so.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from amimesh.resources.fields import (
    INT32_MAX,
    UINT32_MAX,
    Duration,
    MatchHeaderName,
    NotSupported,
    OneLine,
    Port,
    PositiveDuration,
    RE2Regex,
    RetryOn,
    Strict,
    UnsupportedValues,
)
from amimesh.resources.istio_security import ClientTLSSettings
from amimesh.resources.meta import Resource

ISTIO_NETWORKING_VERSIONS = ("v1alpha3", "v1beta1", "v1")
# Envoy's largest hash ring (its `maximum_ring_size` default, and the most it takes).
RING_SIZE_MAX = 8_388_608


class StringMatch(Strict):
    """At most one of exact, prefix, regex. None set (`{}`) on a header or query
    parameter means "is present" (in withoutHeaders: "is absent"), as in Istio."""

    exact: str | None = None
    prefix: str | None = None
    regex: RE2Regex | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StringMatch:
        set_ = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(set_) > 1:
            raise ValueError(f"set only one of exact, prefix, regex (got {' and '.join(set_)})")
        return self


class Percent(Strict):
    value: float = Field(ge=0, le=100)


class PortSelector(Strict):
    number: Port


class Destination(Strict):
    host: str = Field(min_length=1)
    subset: str | None = None
    port: PortSelector | None = None


class HeaderOperations(Strict):
    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(Strict):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPMatchRequest(Strict):
    name: str | None = None
    uri: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[MatchHeaderName, StringMatch] = Field(default_factory=dict)
    queryParams: dict[str, StringMatch] = Field(default_factory=dict)
    port: Port | None = None
    sourceLabels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    ignoreUriCase: bool = False
    withoutHeaders: dict[MatchHeaderName, StringMatch] = Field(default_factory=dict)
    sourceNamespace: str | None = None
    scheme: NotSupported = None
    statPrefix: NotSupported = None


class HTTPRouteDestination(Strict):
    destination: Destination
    weight: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="relative: a destination gets weight/sum of the traffic (Istio 1.15+)",
    )
    headers: Headers | None = None


class HTTPRedirect(Strict):
    uri: OneLine | None = None
    authority: OneLine | None = None
    port: Port | None = None
    scheme: str | None = None
    redirectCode: int | None = Field(default=None, ge=300, le=399)
    derivePort: NotSupported = None
    prefixRewrite: NotSupported = None


class RegexRewrite(Strict):
    match: RE2Regex
    rewrite: OneLine


class HTTPRewrite(Strict):
    uri: OneLine | None = None
    authority: OneLine | None = None
    uriRegexRewrite: RegexRewrite | None = None


class HTTPBody(Strict):
    string: str | None = None
    bytes: str | None = None  # base64, as Istio encodes it


class HTTPDirectResponse(Strict):
    status: int = Field(ge=200, le=599)
    body: HTTPBody | None = None


class FaultDelay(Strict):
    fixedDelay: PositiveDuration
    percentage: Percent | None = None
    percent: int | None = Field(default=None, ge=0, le=100, description="deprecated by Istio")
    exponentialDelay: NotSupported = None


class FaultAbort(Strict):
    httpStatus: int | None = Field(default=None, ge=200, le=599)
    grpcStatus: str | None = None
    percentage: Percent | None = None
    http2Error: NotSupported = None

    @model_validator(mode="after")
    def _one_error(self) -> FaultAbort:
        if (self.httpStatus is None) == (self.grpcStatus is None):
            raise ValueError("must set exactly one of httpStatus, grpcStatus")
        return self


class HTTPFaultInjection(Strict):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class HTTPRetry(Strict):
    attempts: int = Field(ge=0, le=INT32_MAX)
    perTryTimeout: Duration | None = None
    retryOn: RetryOn | None = None
    retryRemoteLocalities: bool | None = None
    retryIgnorePreviousHosts: NotSupported = None
    backoff: NotSupported = None


class CorsPolicy(Strict):
    allowOrigins: list[StringMatch] = Field(default_factory=list)
    allowOrigin: list[str] = Field(default_factory=list, description="deprecated by Istio")
    allowMethods: list[str] = Field(default_factory=list)
    allowHeaders: list[str] = Field(default_factory=list)
    exposeHeaders: list[str] = Field(default_factory=list)
    maxAge: Duration | None = None
    allowCredentials: bool | None = None
    unmatchedPreflights: NotSupported = None


class Delegate(Strict):
    name: str
    namespace: str | None = None


class HTTPMirrorPolicy(Strict):
    destination: Destination
    percentage: Percent | None = Field(default=None, description="unset: 100")


class HTTPRoute(Strict):
    name: str | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    directResponse: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrorPercentage: Percent | None = None
    mirrorPercent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        validation_alias=AliasChoices("mirrorPercent", "mirror_percent"),
        description="deprecated by Istio; also read as `mirror_percent`, its proto name",
    )
    corsPolicy: CorsPolicy | None = None
    headers: Headers | None = None
    websocketUpgrade: bool | None = Field(
        default=None,
        description="accepted: a field Istio removed; every route upgrades websockets",
    )
    mirrors: list[HTTPMirrorPolicy] = Field(
        default_factory=list, description="each destination gets its percentage of copies"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_mirror_percent(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mirrorPercent" in data and "mirror_percent" in data:
            raise ValueError(
                "set only one of mirrorPercent and mirror_percent: they are one field "
                "(its JSON and its proto name)"
            )
        return data


class RouteDestination(Strict):
    destination: Destination
    weight: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="relative, as in http routes"
    )


class L4MatchAttributes(Strict):
    destinationSubnets: list[str] = Field(
        default_factory=list,
        description="IPv4/IPv6 addresses or CIDRs the connection's destination is in "
        "(on a sidecar: the local address it dialled)",
    )
    port: Port | None = None
    sourceLabels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    sourceNamespace: str | None = None
    sourceSubnet: NotSupported = None


class TLSMatchAttributes(L4MatchAttributes):
    sniHosts: list[str] = Field(min_length=1, description="SNI names; `*.example.com` too")


class TCPRoute(Strict):
    match: list[L4MatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)


class TLSRoute(Strict):
    match: list[TLSMatchAttributes] = Field(min_length=1)
    route: list[RouteDestination] = Field(default_factory=list)


class VirtualServiceSpec(Strict):
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    exportTo: list[str] = Field(default_factory=list)
    tls: list[TLSRoute] = Field(
        default_factory=list, description="TLS passthrough, routed by SNI (not terminated)"
    )
    tcp: list[TCPRoute] = Field(default_factory=list, description="opaque TCP")


class VirtualService(Resource):
    KIND: ClassVar[str] = "VirtualService"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: VirtualServiceSpec


# --- DestinationRule -------------------------------------------------------------------


class HTTPCookie(Strict):
    name: str = Field(min_length=1)
    path: str | None = None
    ttl: Duration | None = None
    attributes: NotSupported = None


class ConsistentHash(Strict):
    httpHeaderName: OneLine | None = None
    httpCookie: HTTPCookie | None = None
    useSourceIp: bool | None = None
    httpQueryParameterName: str | None = None
    minimumRingSize: int | None = Field(
        default=None, ge=1, le=RING_SIZE_MAX, description="deprecated by Istio"
    )
    ringHash: NotSupported = None
    maglev: NotSupported = None


class LocalityFailover(Strict):
    from_: str = Field(alias="from")
    to: str


class LocalityDistribute(Strict):
    from_: str = Field(alias="from")
    to: dict[str, int]


class LocalityLbSetting(Strict):
    enabled: bool | None = None
    failover: list[LocalityFailover] = Field(default_factory=list)
    distribute: list[LocalityDistribute] = Field(default_factory=list)
    failoverPriority: NotSupported = None


# PASSTHROUGH (connect to the address the caller dialled, no balancing) is accepted and
# means nothing here: callers dial their sidecar, never an endpoint's address; the
# default balancing stays (`ami analyze` says so).
SimpleLB = Literal[
    "UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", "PASSTHROUGH"
]


class WarmupConfiguration(Strict):
    duration: PositiveDuration = Field(description="how long a new endpoint ramps up")
    minimumPercent: float | None = Field(
        default=None, ge=0, le=100, description="its weight at the start; unset: 10"
    )
    aggression: float | None = Field(
        default=None, gt=0, description="the ramp's curve; unset: 1.0, linear"
    )


class LoadBalancerSettings(Strict):
    simple: SimpleLB | None = None
    consistentHash: ConsistentHash | None = None
    localityLbSetting: LocalityLbSetting | None = None
    warmupDurationSecs: PositiveDuration | None = Field(
        default=None,
        description="slow start: a new endpoint's share ramps up over this long "
        "(ROUND_ROBIN and LEAST_REQUEST; deprecated by Istio for `warmup`)",
    )
    warmup: WarmupConfiguration | None = Field(
        default=None, description="slow start (ROUND_ROBIN and LEAST_REQUEST)"
    )
    zoneAwareLbSetting: NotSupported = None


class TCPSettings(Strict):
    maxConnections: int | None = Field(default=None, ge=1, le=INT32_MAX)
    connectTimeout: PositiveDuration | None = None
    tcpKeepalive: NotSupported = None
    maxConnectionDuration: NotSupported = None
    idleTimeout: NotSupported = None


class HTTPSettings(Strict):
    http1MaxPendingRequests: int | None = Field(default=None, ge=1, le=INT32_MAX)
    http2MaxRequests: int | None = Field(default=None, ge=1, le=INT32_MAX)
    maxRequestsPerConnection: int | None = Field(default=None, ge=0, le=INT32_MAX)
    maxRetries: int | None = Field(default=None, ge=0, le=INT32_MAX)
    idleTimeout: Duration | None = None
    h2UpgradePolicy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = Field(
        default=None,
        description="UPGRADE: an HTTP/1.1 port's upstream speaks HTTP/2 (unless "
        "useClientProtocol); DEFAULT and DO_NOT_UPGRADE: it does not",
    )
    useClientProtocol: bool | None = Field(
        default=None,
        description="HTTP/1.1 or HTTP/2 upstream as the client spoke (HTTP-like ports)",
    )
    maxConcurrentStreams: NotSupported = None
    http2KeepAlive: NotSupported = None


class ConnectionPoolSettings(Strict):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(Strict):
    consecutive5xxErrors: int | None = Field(default=None, ge=0, le=UINT32_MAX)
    consecutiveGatewayErrors: int | None = Field(default=None, ge=0, le=UINT32_MAX)
    interval: PositiveDuration | None = None
    baseEjectionTime: PositiveDuration | None = None
    maxEjectionPercent: int | None = Field(default=None, ge=0, le=100)
    minHealthPercent: int | None = Field(default=None, ge=0, le=100)
    consecutiveErrors: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="deprecated by Istio: read as consecutiveGatewayErrors (5xx ejection "
        "off) when neither consecutive5xxErrors nor consecutiveGatewayErrors is set",
    )
    consecutiveLocalOriginFailures: NotSupported = None
    splitExternalLocalOriginErrors: NotSupported = None
    outlierDetectionHttpErrorCodes: NotSupported = None


class PortTrafficPolicy(Strict):
    port: PortSelector
    loadBalancer: LoadBalancerSettings | None = None
    connectionPool: ConnectionPoolSettings | None = None
    outlierDetection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(Strict):
    loadBalancer: LoadBalancerSettings | None = None
    connectionPool: ConnectionPoolSettings | None = None
    outlierDetection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    portLevelSettings: list[PortTrafficPolicy] = Field(
        default_factory=list,
        description="per destination port: replaces loadBalancer, connectionPool, "
        "outlierDetection and tls for that port's clusters (unset ones default)",
    )
    tunnel: NotSupported = None
    proxyProtocol: NotSupported = None
    retryBudget: NotSupported = None


class Subset(Strict):
    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    trafficPolicy: TrafficPolicy | None = None


class DestinationRuleSpec(Strict):
    host: str = Field(min_length=1)
    trafficPolicy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    exportTo: list[str] = Field(default_factory=list)
    workloadSelector: NotSupported = None


class DestinationRule(Resource):
    KIND: ClassVar[str] = "DestinationRule"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: DestinationRuleSpec


# --- ServiceEntry and WorkloadEntry ------------------------------------------------------

# Istio reads protocols case-insensitively; they are kept uppercase here.
_PROTOCOL_NOT_YET = UnsupportedValues(
    ("GRPC-WEB", "HTTP_PROXY", "REDIS", "MYSQL", "HBONE"), uppercase=True
)
Protocol = Annotated[
    Literal["HTTP", "HTTPS", "GRPC", "HTTP2", "TCP", "TLS", "MONGO", "UDP"],
    _PROTOCOL_NOT_YET,
    BeforeValidator(_PROTOCOL_NOT_YET),
]
_RESOLUTION_NOT_YET = UnsupportedValues(("DYNAMIC_DNS",))
Resolution = Annotated[
    Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"],
    _RESOLUTION_NOT_YET,
    BeforeValidator(_RESOLUTION_NOT_YET),
]


class WorkloadEntrySpec(Strict):
    address: str | None = None
    ports: dict[str, Port] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    locality: str | None = None
    weight: int | None = Field(default=None, ge=1, le=UINT32_MAX)
    serviceAccount: str | None = None
    network: NotSupported = None


class WorkloadEntry(Resource):
    KIND: ClassVar[str] = "WorkloadEntry"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: WorkloadEntrySpec


class WorkloadSelector(Strict):
    labels: dict[str, str] = Field(default_factory=dict)


class ServicePort(Strict):
    number: Port
    protocol: Protocol = "TCP"
    name: str = Field(min_length=1)
    targetPort: Port | None = None


class ServiceEntrySpec(Strict):
    hosts: list[str] = Field(min_length=1)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] = "MESH_EXTERNAL"
    resolution: Resolution = "NONE"
    endpoints: list[WorkloadEntrySpec] = Field(default_factory=list)
    workloadSelector: WorkloadSelector | None = None
    exportTo: list[str] = Field(default_factory=list)
    subjectAltNames: NotSupported = None


class ServiceEntry(Resource):
    KIND: ClassVar[str] = "ServiceEntry"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: ServiceEntrySpec
