"""Kubernetes core kinds that Ami reads in every mode: Service (v1)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from amimesh.resources.fields import NotSupported, Port, Strict
from amimesh.resources.meta import Resource


class ServicePort(Strict):
    name: str | None = None
    port: Port
    targetPort: Port | str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    appProtocol: str | None = None
    nodePort: NotSupported = None


class ServiceSpec(Strict):
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(min_length=1)
    type: Literal["ClusterIP"] = "ClusterIP"
    clusterIP: str | None = None
    clusterIPs: list[str] = Field(default_factory=list)
    sessionAffinity: Literal["None"] | None = None
    externalName: NotSupported = None
    externalTrafficPolicy: NotSupported = None
    internalTrafficPolicy: NotSupported = None
    loadBalancerIP: NotSupported = None


class Service(Resource):
    KIND: ClassVar[str] = "Service"
    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ServiceSpec
