"""A Gateway server's `tls` (SIMPLE or MUTUAL) → the TLS transport socket of its chain.

From files, the certificate chain, private key and (MUTUAL) CA bundle are files Envoy
reads itself (`filename` data sources): Envoy, not the control plane, must be able to
read them, and a missing or unreadable file makes Envoy reject the listener (a NACK,
reported by the xDS server). A relative path is passed on as written, and Envoy opens it
from its own working directory, as Istio's proxy does. With mode SIMPLE, a
`caCertificates` is ignored, as Istio ignores it (no client certificate is asked for).

With `credentialName: NAME`, the certificate and key are the SDS secret `NAME` and
(MUTUAL) the client CAs the secret `NAME-cacert`, as Istio names them, both from the
gateway's own agent over the `sds-grpc` cluster: no key travels through the control
plane. MUTUAL requires a client certificate that chains to the CAs and, when
`subjectAltNames` is set, carries one of them. ALPN offers h2 and http/1.1, so HTTP/2
clients (gRPC-Web over h2, browsers) get HTTP/2. `minProtocolVersion`,
`maxProtocolVersion` and `cipherSuites` become Envoy's TLS parameters; unset, Envoy's
defaults hold (TLS 1.2 to 1.3).
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from amimesh.resources import istio_gateway as gw
from amimesh.translate import tls as mesh_tls
from amimesh.translate.listener_hcm import pack

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
ALPN = ("h2", "http/1.1")
CA_CERT_SUFFIX = "-cacert"

_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}


def downstream_tls_context(tls: gw.ServerTLSSettings) -> tls_pb2.DownstreamTlsContext:
    out = tls_pb2.DownstreamTlsContext()
    common = out.common_tls_context
    credential = gw.credential(tls)
    if credential is not None:
        common.tls_certificate_sds_secret_configs.append(mesh_tls.sds_secret(credential))
    else:
        cert = common.tls_certificates.add()
        cert.certificate_chain.filename = tls.serverCertificate or ""
        cert.private_key.filename = tls.privateKey or ""
    if tls.mode == "MUTUAL":
        out.require_client_certificate.value = True
        sans = [mesh_tls.san_matcher(s) for s in tls.subjectAltNames]
        if credential is not None:
            combined = common.combined_validation_context
            combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
            combined.validation_context_sds_secret_config.CopyFrom(
                mesh_tls.sds_secret(credential + CA_CERT_SUFFIX)
            )
        else:
            validation = common.validation_context
            validation.trusted_ca.filename = tls.caCertificates or ""
            validation.match_typed_subject_alt_names.extend(sans)
    common.alpn_protocols.extend(ALPN)
    params = common.tls_params
    if tls.minProtocolVersion is not None:
        params.tls_minimum_protocol_version = _VERSIONS[tls.minProtocolVersion]
    if tls.maxProtocolVersion is not None:
        params.tls_maximum_protocol_version = _VERSIONS[tls.maxProtocolVersion]
    params.cipher_suites.extend(tls.cipherSuites)
    if not params.ListFields():
        common.ClearField("tls_params")
    return out


def credentials(servers: Iterable[gw.Server]) -> list[str]:
    """The SDS secrets the servers' `credentialName`s ask for, sorted (what the gateway's
    agent must serve)."""
    out: set[str] = set()
    for server in servers:
        tls = server.tls
        name = gw.credential(tls) if tls is not None else None
        if name is None or server.port.protocol != "HTTPS":
            continue
        out.add(name)
        if tls is not None and tls.mode == "MUTUAL":
            out.add(name + CA_CERT_SUFFIX)
    return sorted(out)


def transport_socket(tls: gw.ServerTLSSettings) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name=TLS_TRANSPORT_SOCKET, typed_config=pack(downstream_tls_context(tls))
    )
