"""Kubernetes core kinds that Ami reads in every mode: Service, ConfigMap and Secret (v1)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import NotSupported, Port, PortOrName, Strict, UnsupportedValues
from amimesh.resources.meta import Resource

# Contour's Service annotation: the ports (names or numbers, comma separated) whose
# upstream speaks HTTP/2 in clear text (`h2c`), HTTP/2 over TLS (`h2`) or TLS (`tls`).
# Here, with the Service it annotates: what reads it need not load Contour's kinds.
UPSTREAM_PROTOCOL = "projectcontour.io/upstream-protocol."
UPSTREAM_PROTOCOLS = ("h2c", "h2", "tls")

_NO_IPS = "accepted and ignored: Ami assigns no cluster IPs"
# Accepted and ignored on one machine, which has no node ports and one address family
# (`ami analyze` says so).
_NO_MEANING = "accepted and ignored: it means nothing on one machine (`ami analyze` says so)"
_TYPE_NOT_YET = UnsupportedValues(("ExternalName",))
ServiceType = Annotated[
    Literal["ClusterIP", "NodePort", "LoadBalancer"], _TYPE_NOT_YET, BeforeValidator(_TYPE_NOT_YET)
]
IPFamily = Literal["IPv4", "IPv6"]
IPFamilyPolicy = Literal["SingleStack", "PreferDualStack", "RequireDualStack"]
_AFFINITY_NOT_YET = UnsupportedValues(("ClientIP",))
SessionAffinity = Annotated[Literal["None"], _AFFINITY_NOT_YET, BeforeValidator(_AFFINITY_NOT_YET)]


class ServicePort(Strict):
    name: str | None = None
    port: Port
    targetPort: PortOrName | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    appProtocol: str | None = None
    nodePort: Port | None = Field(default=None, description=_NO_MEANING)


class ServiceSpec(Strict):
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(min_length=1)
    type: ServiceType = Field(
        default="ClusterIP",
        description="NodePort, LoadBalancer: read as ClusterIP; " + _NO_MEANING,
    )
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
    ipFamilies: list[IPFamily] = Field(default_factory=list, max_length=2, description=_NO_MEANING)
    ipFamilyPolicy: IPFamilyPolicy | None = Field(default=None, description=_NO_MEANING)
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


REDACTED = "<redacted>"


def _base64(value: Any) -> Any:
    """A `data` value: base64 of the bytes, as Kubernetes keeps a Secret's data."""
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("illegal base64 data (the value is not shown)") from None
    return value


def _plain(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string (the value is not shown)")
    return value


Base64 = Annotated[str, BeforeValidator(_base64)]
Plain = Annotated[str, BeforeValidator(_plain)]


class Secret(Resource):
    """A Kubernetes Secret: `data` (base64) and `stringData` (plain; it wins on the
    same key). Its values are never shown: the API, `ami get` and logs print them
    redacted. Tekton Triggers' interceptors read their secret tokens from here."""

    KIND: ClassVar[str] = "Secret"
    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    type: str = Field(default="Opaque", description="recorded; Ami reads every type the same")
    data: dict[str, Base64] = Field(default_factory=dict, description="base64 values")
    stringData: dict[str, Plain] = Field(
        default_factory=dict, description="plain values; they win over `data`"
    )
    immutable: bool | None = None

    def value(self, key: str) -> bytes | None:
        """The secret bytes under `key` (stringData first, as Kubernetes merges it)."""
        if key in self.stringData:
            return self.stringData[key].encode()
        if key in self.data:
            return base64.b64decode(self.data[key])
        return None

    def keys(self) -> list[str]:
        return sorted({*self.data, *self.stringData})

    def redacted(self) -> Secret:
        """The same Secret with every value replaced: what may be shown."""
        return self.model_copy(
            update={
                "data": dict.fromkeys(self.data, REDACTED),
                "stringData": dict.fromkeys(self.stringData, REDACTED),
            }
        )

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in ("data", "stringData") and isinstance(value, dict):
                yield name, dict.fromkeys(value, REDACTED)
            else:
                yield name, value
