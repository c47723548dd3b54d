"""Istio's EnvoyFilter (networking.istio.io/v1alpha3): patches on the generated Envoy
config of the selected proxies.

The model keeps `patch.value` as the user wrote it (Envoy's JSON/YAML form);
`checks_envoyfilter` parses it into the Envoy message its `applyTo` names, and
`translate.envoy_filter` applies it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from amimesh.resources.fields import INT32_MAX, NotSupported, Port, Strict
from amimesh.resources.istio_authz import PolicyTargetReference
from amimesh.resources.istio_networking import WorkloadSelector
from amimesh.resources.meta import Resource

MAX_PATCHES = 64

ApplyTo = Literal[
    "LISTENER",
    "FILTER_CHAIN",
    "NETWORK_FILTER",
    "HTTP_FILTER",
    "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST",
    "HTTP_ROUTE",
    "CLUSTER",
]
Context = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]
Operation = Literal[
    "MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"
]


class SubFilterMatch(Strict):
    name: str | None = Field(default=None, max_length=253)


class FilterMatch(Strict):
    name: str | None = Field(default=None, max_length=253)
    subFilter: SubFilterMatch | None = None


class FilterChainMatch(Strict):
    name: str | None = Field(default=None, max_length=253)
    sni: str | None = Field(default=None, max_length=253)
    transportProtocol: Literal["raw_buffer", "tls"] | None = None
    applicationProtocols: str | None = Field(default=None, max_length=253)
    filter: FilterMatch | None = None
    destinationPort: Port | None = None


class ListenerMatch(Strict):
    portNumber: Port | None = None
    portName: NotSupported = None
    filterChain: FilterChainMatch | None = None
    listenerFilter: str | None = Field(default=None, max_length=253)
    name: str | None = Field(default=None, max_length=253)


class RouteMatch(Strict):
    name: str | None = Field(default=None, max_length=253)
    action: Literal["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"] = "ANY"


class VirtualHostMatch(Strict):
    name: str | None = Field(default=None, max_length=253)
    domainName: str | None = Field(default=None, max_length=253)
    route: RouteMatch | None = None


class RouteConfigurationMatch(Strict):
    portNumber: Port | None = None
    portName: NotSupported = None
    gateway: str | None = Field(default=None, max_length=253)
    vhost: VirtualHostMatch | None = None
    name: str | None = Field(default=None, max_length=253)


class ClusterMatch(Strict):
    portNumber: Port | None = None
    service: str | None = Field(default=None, max_length=253)
    subset: str | None = Field(default=None, max_length=253)
    name: str | None = Field(default=None, max_length=253)


class ProxyMatch(Strict):
    proxyVersion: str | None = Field(
        default=None, max_length=253, description="ignored: every proxy runs one Envoy build"
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="not supported: must be empty"
    )


class ObjectMatch(Strict):
    context: Context = "ANY"
    proxy: ProxyMatch | None = None
    listener: ListenerMatch | None = None
    routeConfiguration: RouteConfigurationMatch | None = None
    cluster: ClusterMatch | None = None


class Patch(Strict):
    operation: Operation
    value: dict[str, Any] | None = Field(
        default=None,
        description="Envoy's JSON form of what applyTo names; `@type` for typed configs",
    )
    filterClass: Literal["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"] | None = Field(
        default=None,
        description="with ADD on HTTP_FILTER: AUTHN before the authorization filters, "
        "AUTHZ and STATS after them, all before the router",
    )


class EnvoyConfigObjectPatch(Strict):
    applyTo: ApplyTo
    match: ObjectMatch | None = None
    patch: Patch
    listener: dict[str, Any] | None = Field(
        default=None,
        description="not part of Istio's schema (a match belongs under `match`); dropped, as "
        "the Kubernetes API server prunes it",
    )


class EnvoyFilterSpec(Strict):
    workloadSelector: WorkloadSelector | None = None
    targetRefs: list[PolicyTargetReference] = Field(
        default_factory=list, max_length=16, description="not supported: must be empty"
    )
    configPatches: list[EnvoyConfigObjectPatch] = Field(
        default_factory=list, max_length=MAX_PATCHES
    )
    priority: int = Field(default=0, ge=-INT32_MAX - 1, le=INT32_MAX)


class EnvoyFilter(Resource):
    KIND: ClassVar[str] = "EnvoyFilter"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1alpha3",)
    spec: EnvoyFilterSpec
