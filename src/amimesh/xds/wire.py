"""xDS requests and responses as plain values, and their protobuf forms.

The state machine speaks these dataclasses, so it can be driven and checked without
protobuf or gRPC; the servicer and the client convert at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.rpc import status_pb2  # type: ignore[import-untyped]

from amimesh.translate.built import Built

WILDCARD = "*"


@dataclass(frozen=True)
class ErrorDetail:
    """Why a client rejected a response (the `error_detail` of a NACK)."""

    message: str
    code: int = 3  # google.rpc.Code INVALID_ARGUMENT, what Envoy sends


@dataclass(frozen=True)
class SotwRequest:
    """A state-of-the-world DiscoveryRequest."""

    type_url: str
    resource_names: tuple[str, ...] = ()
    version_info: str = ""
    response_nonce: str = ""
    error: ErrorDetail | None = None


@dataclass(frozen=True)
class DeltaRequest:
    """An incremental DeltaDiscoveryRequest."""

    type_url: str
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: dict[str, str] = field(default_factory=dict)
    response_nonce: str = ""
    error: ErrorDetail | None = None


@dataclass(frozen=True)
class Response:
    """One response the server decided to send.

    In SotW, `resources` is the whole set for the type (CDS, LDS) or the subscribed
    names (EDS, RDS), and `removed` is empty. In delta, `resources` holds only the
    resources whose version changed and `removed` the names the client must drop.
    """

    type_url: str
    nonce: str
    version: str
    resources: tuple[Built, ...]
    removed: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every name this response mentions, added, changed or removed."""
        return tuple(b.name for b in self.resources) + self.removed


def _error(proto: Any) -> ErrorDetail | None:
    if not proto.HasField("error_detail"):
        return None
    return ErrorDetail(message=proto.error_detail.message, code=proto.error_detail.code)


def sotw_request_from_proto(proto: Any) -> SotwRequest:
    """Decode a `DiscoveryRequest` (the node is read separately, once per stream)."""
    return SotwRequest(
        type_url=proto.type_url,
        resource_names=tuple(proto.resource_names),
        version_info=proto.version_info,
        response_nonce=proto.response_nonce,
        error=_error(proto),
    )


def delta_request_from_proto(proto: Any) -> DeltaRequest:
    """Decode a `DeltaDiscoveryRequest`."""
    return DeltaRequest(
        type_url=proto.type_url,
        subscribe=tuple(proto.resource_names_subscribe),
        unsubscribe=tuple(proto.resource_names_unsubscribe),
        initial_versions=dict(proto.initial_resource_versions),
        response_nonce=proto.response_nonce,
        error=_error(proto),
    )


def error_to_proto(error: ErrorDetail) -> Any:
    """Encode a NACK reason as the `google.rpc.Status` Envoy puts in `error_detail`."""
    return status_pb2.Status(code=error.code, message=error.message)
