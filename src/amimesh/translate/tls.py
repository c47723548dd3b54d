"""TLS contexts and transport sockets: the mesh's mutual TLS, and TLS from files.

The mesh's certificates come by SDS from the proxy's own agent: every sidecar and
gateway Envoy has a static cluster `sds-grpc` (a Unix socket) that serves the secret
`default` (the proxy's certificate chain and key, for its SPIFFE identity) and
`ROOTCA` (the trust bundle). The control plane never sees a private key.

- Upstream (client side), `mesh_upstream`: present `default`, verify the server with
  `ROOTCA` and require its certificate's URI SAN to be one of the expected SPIFFE IDs.
- Downstream (a sidecar's inbound), `mesh_downstream`: present `default`, require a
  client certificate verified with `ROOTCA` (any identity of the trust bundle: who may
  call is authorization's business).
- `file_upstream`: a DestinationRule's SIMPLE or MUTUAL TLS, with certificate files
  Envoy reads itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from amimesh.resources import istio_security as sec
from amimesh.resources.fields import is_ip
from amimesh.translate import names

UpstreamTlsContext: TypeAlias = tls_pb2.UpstreamTlsContext
DownstreamTlsContext: TypeAlias = tls_pb2.DownstreamTlsContext
TransportSocket: TypeAlias = base_pb2.TransportSocket

SDS_CLUSTER = "sds-grpc"
CERTIFICATE_SECRET = "default"
ROOT_CA_SECRET = "ROOTCA"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_TRANSPORT_SOCKET = "envoy.transport_sockets.raw_buffer"
# Where Debian and Ubuntu keep the system's trusted CAs (ca-certificates): what TLS to a
# server verifies against when no CA bundle is named.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# What a sidecar's inbound offers; clients offer the one their cluster speaks.
INBOUND_ALPN = ("h2", "http/1.1")

_SAN = common_pb2.SubjectAltNameMatcher
_STREAM_RETRY = json_format.ParseDict(names.CONFIG_STREAM_RETRY, base_pb2.RetryPolicy())


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def sds_config() -> config_source_pb2.ConfigSource:
    """SDS from the agent, over the static `sds-grpc` cluster."""
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    api = source.api_config_source
    api.api_type = config_source_pb2.ApiConfigSource.GRPC
    api.transport_api_version = config_source_pb2.V3
    api.grpc_services.append(
        grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                cluster_name=SDS_CLUSTER, retry_policy=_STREAM_RETRY
            )
        )
    )
    return source


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=sds_config())


def san_matcher(name: str) -> common_pb2.SubjectAltNameMatcher:
    """An exact SAN: a URI for SPIFFE IDs, an IP address for IPs, else a DNS name."""
    if name.startswith("spiffe://"):
        san_type = _SAN.URI
    elif is_ip(name):
        san_type = _SAN.IP_ADDRESS
    else:
        san_type = _SAN.DNS
    return _SAN(san_type=san_type, matcher=string_pb2.StringMatcher(exact=name))


def _mesh_common(context: common_pb2.CommonTlsContext, alpn: Sequence[str]) -> None:
    context.tls_certificate_sds_secret_configs.append(sds_secret(CERTIFICATE_SECRET))
    context.alpn_protocols.extend(alpn)


def mesh_upstream(sans: Sequence[str], sni: str, alpn: Sequence[str]) -> UpstreamTlsContext:
    """Mutual TLS toward a sidecar whose identity is one of `sans` (any, when empty)."""
    ctx = UpstreamTlsContext(sni=sni)
    common = ctx.common_tls_context
    _mesh_common(common, alpn)
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(
        san_matcher(s) for s in sans
    )
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_CA_SECRET))
    return ctx


def mesh_downstream(alpn: Sequence[str]) -> DownstreamTlsContext:
    """A sidecar's inbound side of mutual TLS: a client certificate is required."""
    ctx = DownstreamTlsContext()
    ctx.require_client_certificate.value = True
    common = ctx.common_tls_context
    _mesh_common(common, alpn)
    common.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_CA_SECRET))
    return ctx


def file_upstream(
    tls: sec.ClientTLSSettings, default_sni: str | None, alpn: Sequence[str]
) -> UpstreamTlsContext:
    """SIMPLE or MUTUAL TLS from files.

    SNI is `tls.sni`, else `default_sni`; with neither, the upstream host's own name
    (DNS and per-request clusters know it). The server's certificate must chain to
    `caCertificates`, or without it to the system's trusted CAs (`SYSTEM_CA_BUNDLE`, as
    Istio verifies against the OS CAs), and carry one of `subjectAltNames`, or by
    default the name sent as SNI; `insecureSkipVerify` turns both checks off.
    """
    ctx = UpstreamTlsContext()
    sni = tls.sni or default_sni
    if sni:
        ctx.sni = sni
    else:
        ctx.auto_host_sni = True
    common = ctx.common_tls_context
    common.alpn_protocols.extend(alpn)
    if tls.mode == "MUTUAL":
        cert = common.tls_certificates.add()
        cert.certificate_chain.filename = tls.clientCertificate or ""
        cert.private_key.filename = tls.privateKey or ""
    if tls.insecureSkipVerify:
        return ctx
    validation = common.validation_context
    validation.trusted_ca.filename = tls.caCertificates or SYSTEM_CA_BUNDLE
    if tls.subjectAltNames:
        validation.match_typed_subject_alt_names.extend(san_matcher(s) for s in tls.subjectAltNames)
    elif sni:
        validation.match_typed_subject_alt_names.append(san_matcher(sni))
    else:
        ctx.auto_sni_san_validation = True
    return ctx


def transport_socket(ctx: UpstreamTlsContext | DownstreamTlsContext) -> TransportSocket:
    return TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=_pack(ctx))


def plaintext_socket() -> TransportSocket:
    return TransportSocket(
        name=RAW_BUFFER_TRANSPORT_SOCKET, typed_config=_pack(raw_buffer_pb2.RawBuffer())
    )
