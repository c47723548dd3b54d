"""Istio's mutual TLS settings: `PeerAuthentication` (security.istio.io v1beta1, v1) and a
DestinationRule's client side, `ClientTLSSettings` (its `trafficPolicy.tls`).

`PeerAuthentication` says what a workload's inbound ports accept: mutual TLS only
(STRICT), mutual TLS or plain text (PERMISSIVE) or plain text only (DISABLE); UNSET
inherits from the next broader policy. Without a selector it covers its namespace, and
in the root namespace (`istio-system`) the whole mesh; `portLevelMtls` overrides the
mode per workload port. Which policy applies where is `model.mtls`.

`ClientTLSSettings` is how a client's sidecar talks to a destination: the mesh's own
mutual TLS (ISTIO_MUTUAL), TLS from certificate files (SIMPLE, MUTUAL) or plain text
(DISABLE). Certificate files are read by Envoy itself, as Istio's proxy reads them: a
relative path is relative to the proxy's working directory, which for Ami's proxies is
the mesh's directory (`ami up DIR`). Without `caCertificates`, SIMPLE and MUTUAL verify
the server against the system's trusted CAs, as Istio does. Which fields go with which
mode is checked here, on the field at fault.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from amimesh.resources.fields import NotSupported, OneLine, Strict, show
from amimesh.resources.meta import Resource

ISTIO_SECURITY_VERSIONS = ("v1beta1", "v1")

# The longest server name TLS carries (and Envoy takes).
MAX_SNI_BYTES = 255
MutualTLSMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
ClientTLSMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]

_FILE = "path of a PEM file, read by Envoy (relative: to the proxy's working directory)"


def file_path(value: Any) -> Any:
    """A certificate file's path as Envoy will open it: not empty, one line, no NUL."""
    text = str(value)
    if not text.strip() or any(c in text for c in "\x00\r\n"):
        raise ValueError(f"must be a file path, got {show(value)}")
    return value


class WorkloadSelector(Strict):
    """Istio's `type.v1beta1.WorkloadSelector`: the workloads whose labels match."""

    matchLabels: dict[str, str] = Field(default_factory=dict)


class MutualTLS(Strict):
    mode: MutualTLSMode = "UNSET"


class PeerAuthenticationSpec(Strict):
    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    portLevelMtls: dict[int, MutualTLS] | None = Field(
        default=None, description="keys are workload port numbers; needs a selector"
    )


class PeerAuthentication(Resource):
    KIND: ClassVar[str] = "PeerAuthentication"
    API_GROUP: ClassVar[str] = "security.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ISTIO_SECURITY_VERSIONS
    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)


# --- DestinationRule trafficPolicy.tls -------------------------------------------------

# The fields each mode reads; naming another is an error (it would be silently ignored).
_SERVER_CHECK = frozenset({"caCertificates", "sni", "subjectAltNames", "insecureSkipVerify"})
_FIELDS_OF_MODE: dict[str, frozenset[str]] = {
    "DISABLE": frozenset(),
    "SIMPLE": _SERVER_CHECK,
    "MUTUAL": _SERVER_CHECK | {"clientCertificate", "privateKey"},
    "ISTIO_MUTUAL": frozenset({"sni", "subjectAltNames"}),
}
_REQUIRED_WITH_MODE: dict[str, frozenset[str]] = {
    "MUTUAL": frozenset({"clientCertificate", "privateKey"}),
}


class ClientTLSSettings(Strict):
    mode: ClientTLSMode
    clientCertificate: str | None = Field(
        default=None, validate_default=True, description=_FILE + "; MUTUAL only"
    )
    privateKey: str | None = Field(
        default=None, validate_default=True, description=_FILE + "; MUTUAL only"
    )
    insecureSkipVerify: bool | None = Field(
        default=None,
        validate_default=True,
        description="SIMPLE, MUTUAL: accept any server certificate",
    )
    caCertificates: str | None = Field(
        default=None,
        validate_default=True,
        description=_FILE + "; SIMPLE and MUTUAL; unset: the system's trusted CAs",
    )
    subjectAltNames: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="unset: the SNI (SIMPLE, MUTUAL) or the service's accounts (ISTIO_MUTUAL)",
    )
    sni: OneLine | None = Field(
        default=None,
        validate_default=True,
        description="unset: the service's host name, or the upstream host for wildcards",
    )
    credentialName: NotSupported = None
    caCrl: NotSupported = None

    @field_validator("sni")
    @classmethod
    def _sni_fits(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_SNI_BYTES:
            raise ValueError(f"must be at most {MAX_SNI_BYTES} bytes (a TLS server name)")
        return value

    @field_validator(
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "subjectAltNames",
        "sni",
        "insecureSkipVerify",
    )
    @classmethod
    def _fits_mode(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("mode")
        name = info.field_name or ""
        if mode is None:  # the mode itself is wrong: that error says enough
            return value
        if value in (None, [], False):
            if name in _REQUIRED_WITH_MODE.get(mode, ()):
                raise ValueError(f"is required with mode {mode}")
            return value
        if name == "caCertificates" and info.data.get("insecureSkipVerify"):
            raise ValueError("is not used with insecureSkipVerify: no certificate is verified")
        if name not in _FIELDS_OF_MODE[mode]:
            if mode == "ISTIO_MUTUAL":
                raise ValueError(
                    "is not used with mode ISTIO_MUTUAL: the mesh's own certificates are used"
                )
            raise ValueError(f"is not used with mode {mode}")
        if name in ("clientCertificate", "privateKey", "caCertificates"):
            return file_path(value)
        return value
