"""Istio's `Gateway` (networking.istio.io v1alpha3, v1beta1, v1): the edge of the mesh.

A Gateway selects gateway proxies by their labels and says which ports they open
(`servers`), for which hosts, and with which TLS settings. VirtualServices bind to it by
name (`gateways: [name]` or `[namespace/name]`) to give it routes.

Ami serves HTTP-like servers (HTTP, HTTP2, GRPC, GRPC-WEB), TCP servers (routed by
VirtualServices' `tcp` routes), TLS (or HTTPS) servers with `tls.mode: PASSTHROUGH`
(routed by SNI by `tls` routes, the connection passed through unterminated), and HTTPS
with `tls.mode: SIMPLE` or `MUTUAL`, either from certificate files (`serverCertificate`,
`privateKey`, `caCertificates`: paths that Envoy reads itself, a relative one from
the proxy's working directory) or from a
`credentialName` the gateway's own agent serves by SDS. Field names are Istio's; what
Istio defines and Ami does not implement yet is typed `NotSupported` (or an enum value
marked "not yet").
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import NotSupported, Port, Strict, UnsupportedValues
from amimesh.resources.istio_networking import ISTIO_NETWORKING_VERSIONS
from amimesh.resources.meta import Resource

# Istio reads protocols case-insensitively; they are kept uppercase here.
_PROTOCOL_NOT_YET = UnsupportedValues(("MONGO", "UDP", "HBONE"), uppercase=True)
ServerProtocol = Annotated[
    Literal["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "TCP", "TLS"],
    _PROTOCOL_NOT_YET,
    BeforeValidator(_PROTOCOL_NOT_YET),
]

_MODE_NOT_YET = UnsupportedValues(("ISTIO_MUTUAL", "OPTIONAL_MUTUAL"))
# AUTO_PASSTHROUGH is Istio's east-west gateway between networks: accepted, and the
# server is not served on one network (`ami analyze` says so).
TLSMode = Annotated[
    Literal["SIMPLE", "MUTUAL", "PASSTHROUGH", "AUTO_PASSTHROUGH"],
    _MODE_NOT_YET,
    BeforeValidator(_MODE_NOT_YET),
]

# Istio's gateways also take a credential as `kubernetes://NAME`; both name NAME.
CREDENTIAL_PREFIX = "kubernetes://"

TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]

# Port protocols served by a plain-text HTTP connection manager.
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})


def is_passthrough(server: Server) -> bool:
    """A TLS or HTTPS server whose connections pass through by SNI, not terminated:
    VirtualServices' `tls` routes route them."""
    return (
        server.port.protocol in ("TLS", "HTTPS")
        and server.tls is not None
        and server.tls.mode == "PASSTHROUGH"
    )


class GatewayPort(Strict):
    number: Port
    protocol: ServerProtocol
    name: str = Field(min_length=1)
    targetPort: NotSupported = None


class ServerTLSSettings(Strict):
    httpsRedirect: bool = False
    mode: TLSMode | None = Field(
        default=None,
        description="required on HTTPS and TLS servers; PASSTHROUGH: routed by SNI, "
        "unterminated (TLS servers take only PASSTHROUGH)",
    )
    serverCertificate: str | None = Field(
        default=None, description="path of a PEM certificate chain, read by Envoy"
    )
    privateKey: str | None = Field(
        default=None, description="path of a PEM private key, read by Envoy"
    )
    minProtocolVersion: TLSProtocol | None = None
    maxProtocolVersion: TLSProtocol | None = None
    cipherSuites: list[str] = Field(default_factory=list)
    caCertificates: str | None = Field(
        default=None,
        description="MUTUAL: path of the PEM CAs that client certificates must chain to "
        "(SIMPLE: ignored, as by Istio)",
    )
    caCrl: NotSupported = None
    credentialName: str | None = Field(
        default=None,
        description="the certificate (and, for MUTUAL, `NAME-cacert`) by SDS from the "
        "gateway's agent, instead of files",
    )
    credentialNames: NotSupported = None
    tlsCertificates: NotSupported = None
    subjectAltNames: list[str] = Field(
        default_factory=list, description="MUTUAL: the client certificate must carry one"
    )
    verifyCertificateSpki: NotSupported = None
    verifyCertificateHash: NotSupported = None


class Server(Strict):
    port: GatewayPort
    hosts: list[str] = Field(default_factory=list)
    tls: ServerTLSSettings | None = None
    name: str | None = None
    bind: NotSupported = None
    defaultEndpoint: str | None = Field(
        default=None,
        description="accepted and ignored: Istio does not implement it either "
        "(`ami analyze` says so)",
    )


class GatewaySpec(Strict):
    selector: dict[str, str] = Field(default_factory=dict)
    servers: list[Server] = Field(default_factory=list)


class Gateway(Resource):
    KIND: ClassVar[str] = "Gateway"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_NETWORKING_VERSIONS
    spec: GatewaySpec


def credential(tls: ServerTLSSettings) -> str | None:
    """The secret a server's `credentialName` names (`kubernetes://` removed)."""
    name = tls.credentialName
    if name is None:
        return None
    return name.removeprefix(CREDENTIAL_PREFIX)


def split_host(host: str) -> tuple[str, str]:
    """A server host `ns/host` as (namespace, host); namespace `*` when none is given.

    The namespace says which namespaces' VirtualServices may bind to the host: `*` any,
    `.` the Gateway's own, else that namespace.
    """
    namespace, slash, name = host.partition("/")
    return (namespace or "*", name) if slash else ("*", host)
