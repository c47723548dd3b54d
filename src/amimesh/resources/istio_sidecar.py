"""Istio's per-proxy kinds: Sidecar and ProxyConfig (networking.istio.io).

A `Sidecar` narrows what one proxy imports (its `egress` hosts) and what it does with
calls to hosts it does not know (`outboundTrafficPolicy`); a `ProxyConfig` sets how
the selected proxies' Envoys run (`concurrency`, `environmentVariables`). Which one
applies to a proxy is decided in `model.sidecars`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from amimesh.resources.fields import INT32_MAX, NotSupported, Port, Strict
from amimesh.resources.istio_networking import ISTIO_NETWORKING_VERSIONS, WorkloadSelector
from amimesh.resources.meta import Resource

# Istio's limits are the API server's; these keep one document's cost bounded.
MAX_EGRESS = 64
MAX_HOSTS = 1024


class SidecarPort(Strict):
    number: Port
    protocol: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=63)
    targetPort: Port | None = None


class IstioIngressListener(Strict):
    port: SidecarPort
    bind: str | None = Field(
        default=None,
        max_length=253,
        description="ignored: inbound listeners bind the proxy's address",
    )
    captureMode: Literal["DEFAULT", "IPTABLES", "NONE"] | None = Field(
        default=None, description="ignored: Ami captures no traffic, apps use the proxy explicitly"
    )
    defaultEndpoint: str | None = Field(
        default=None,
        max_length=253,
        description="127.0.0.1:PORT or 0.0.0.0:PORT: the app's port behind this inbound port",
    )
    tls: NotSupported = None
    connectionPool: NotSupported = None


class IstioEgressListener(Strict):
    port: SidecarPort | None = Field(
        default=None, description="only this port of the hosts is imported"
    )
    bind: str | None = Field(
        default=None, max_length=253, description="ignored: one outbound listener on loopback"
    )
    captureMode: Literal["DEFAULT", "IPTABLES", "NONE"] | None = Field(
        default=None, description="ignored: Ami captures no traffic, apps use the proxy explicitly"
    )
    hosts: list[str] = Field(
        min_length=1,
        max_length=MAX_HOSTS,
        description='"namespace/dnsName": namespace `*` (any), `.` (the Sidecar\'s own), '
        "`~` (none); dnsName `*`, `*.suffix` or a full name",
    )


class OutboundTrafficPolicy(Strict):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "ALLOW_ANY"
    egressProxy: NotSupported = None


class SidecarSpec(Strict):
    workloadSelector: WorkloadSelector | None = None
    ingress: list[IstioIngressListener] = Field(default_factory=list, max_length=MAX_EGRESS)
    egress: list[IstioEgressListener] = Field(default_factory=list, max_length=MAX_EGRESS)
    outboundTrafficPolicy: OutboundTrafficPolicy | None = None
    inboundConnectionPool: NotSupported = None


class Sidecar(Resource):
    KIND: ClassVar[str] = "Sidecar"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: SidecarSpec


class ProxyImage(Strict):
    imageType: str | None = Field(default=None, max_length=63)


class ProxyConfigSelector(Strict):
    matchLabels: dict[str, str] = Field(
        default_factory=dict, description="empty: every workload of the namespace"
    )


class ProxyConfigSpec(Strict):
    selector: ProxyConfigSelector | None = None
    concurrency: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Envoy's --concurrency (worker threads); 0: one per core",
    )
    environmentVariables: dict[str, str] = Field(
        default_factory=dict, max_length=256, description="set in the proxy's environment"
    )
    image: ProxyImage | None = Field(
        default=None, description="ignored: one Envoy build runs every proxy (ami analyze says so)"
    )


class ProxyConfig(Resource):
    KIND: ClassVar[str] = "ProxyConfig"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1beta1",)
    spec: ProxyConfigSpec
