"""Kubernetes core kinds that Ami reads in every mode: Service and ConfigMap (v1)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import NotSupported, Port, PortOrName, Strict, UnsupportedValues
from amimesh.resources.meta import Resource

_NO_IPS = "accepted and ignored: Ami assigns no cluster IPs"
_TYPE_NOT_YET = UnsupportedValues(("NodePort", "LoadBalancer", "ExternalName"))
ServiceType = Annotated[Literal["ClusterIP"], _TYPE_NOT_YET, BeforeValidator(_TYPE_NOT_YET)]
_AFFINITY_NOT_YET = UnsupportedValues(("ClientIP",))
SessionAffinity = Annotated[Literal["None"], _AFFINITY_NOT_YET, BeforeValidator(_AFFINITY_NOT_YET)]


class ServicePort(Strict):
    name: str | None = None
    port: Port
    targetPort: PortOrName | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    appProtocol: str | None = None
    nodePort: NotSupported = None


class ServiceSpec(Strict):
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(min_length=1)
    type: ServiceType = "ClusterIP"
    clusterIP: str | None = Field(default=None, description=_NO_IPS)
    clusterIPs: list[str] = Field(default_factory=list, description=_NO_IPS)
    sessionAffinity: SessionAffinity | None = None
    externalName: NotSupported = None
    externalTrafficPolicy: NotSupported = None
    internalTrafficPolicy: NotSupported = None
    loadBalancerIP: NotSupported = None
    loadBalancerClass: NotSupported = None
    loadBalancerSourceRanges: NotSupported = None
    allocateLoadBalancerNodePorts: NotSupported = None
    healthCheckNodePort: NotSupported = None
    externalIPs: NotSupported = None
    ipFamilies: NotSupported = None
    ipFamilyPolicy: NotSupported = None
    publishNotReadyAddresses: NotSupported = None
    sessionAffinityConfig: NotSupported = None
    trafficDistribution: NotSupported = None


class Service(Resource):
    KIND: ClassVar[str] = "Service"
    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ServiceSpec


class ConfigMap(Resource):
    """Settings as Kubernetes keeps them: Knative's `config-domain`, `config-autoscaler`,
    `config-defaults`, ... in `knative-serving` are read from here."""

    KIND: ClassVar[str] = "ConfigMap"
    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    data: dict[str, str] = Field(default_factory=dict)
    binaryData: dict[str, str] = Field(
        default_factory=dict, description="accepted and kept; Ami reads `data` only"
    )
    immutable: bool | None = None
