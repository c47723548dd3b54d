"""A Gateway server's `tls` (mode SIMPLE) → the TLS transport socket of its filter chain.

The certificate chain and private key are files Envoy reads itself (`filename` data
sources): Envoy, not the control plane, must be able to read them, and a missing or
unreadable file makes Envoy reject the listener (a NACK, reported by the xDS server).
Validation requires absolute paths: the control plane and Envoy need not share a
working directory. ALPN offers h2 and http/1.1, so HTTP/2 clients (gRPC-Web over h2,
browsers) get HTTP/2. `minProtocolVersion`, `maxProtocolVersion` and `cipherSuites`
become Envoy's TLS parameters; unset, Envoy's defaults hold (TLS 1.2 to 1.3).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from amimesh.resources import istio_gateway as gw
from amimesh.translate.listener_hcm import pack

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
ALPN = ("h2", "http/1.1")

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
    cert = common.tls_certificates.add()
    cert.certificate_chain.filename = tls.serverCertificate or ""
    cert.private_key.filename = tls.privateKey or ""
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


def transport_socket(tls: gw.ServerTLSSettings) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name=TLS_TRANSPORT_SOCKET, typed_config=pack(downstream_tls_context(tls))
    )
