"""How an outbound cluster talks to its endpoints: auto mutual TLS or a DestinationRule's `tls`.

- No `tls`, MESH_INTERNAL service: `transport_socket_matches`. Endpoints whose metadata
  says `tlsMode: istio` (they run a sidecar that accepts mutual TLS) get the mesh's
  mutual TLS, the others plain text: Istio's auto mTLS. With no such endpoint at all,
  ready or planned (a Workload the Service selects counts before its first instance is
  ready), simply plain text.
- No `tls`, MESH_EXTERNAL service or a per-request (DFP) cluster: plain text.
- `DISABLE`: plain text. `ISTIO_MUTUAL`: the mesh's mutual TLS to every endpoint.
- `SIMPLE`, `MUTUAL`: TLS from certificate files (`tls.file_upstream`).

The mesh's mutual TLS verifies that the server is one of the service's workloads: its
certificate's SPIFFE ID must be the identity of one of the service port's endpoints or
of a Workload behind it (`identities`: known from config, so a cluster stays the same
while its instances start and become ready), unless the rule lists `subjectAltNames`.
Its SNI names the cluster as Istio does, `outbound_.PORT_.SUBSET_.HOST`. ALPN offers
the protocol the cluster speaks.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import struct_pb2

from amimesh.model import mtls
from amimesh.model.snapshot import MeshService, ServicePort, Snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.translate import tls
from amimesh.translate.cluster_external import Discovery
from amimesh.translate.cluster_policy import H2_PROTOCOLS, HTTP_PROTOCOLS

# The endpoint metadata namespace Envoy matches `transport_socket_matches` against.
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
TLS_MODE_KEY = "tlsMode"
MTLS_MATCH = "tlsMode-istio"
PLAINTEXT_MATCH = "tlsMode-disabled"


def sni(port: int, subset: str | None, host: str) -> str:
    """Istio's SNI for a cluster: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`."""
    return f"outbound_.{port}_.{subset or ''}_.{host}"


def alpn(protocol: str, *, client_protocol: bool = False, upgrade: bool = False) -> tuple[str, ...]:
    """What ALPN offers for a port's protocol. With `client_protocol` (`useClientProtocol`)
    nothing is set: Envoy then offers the protocol of the connection pool the request
    takes (h2 or http/1.1), which follows the client's. With `upgrade`
    (`h2UpgradePolicy: UPGRADE`) an HTTP port offers h2, the protocol it speaks."""
    protocol = protocol.upper()
    if client_protocol:
        return ()
    if protocol in H2_PROTOCOLS or (upgrade and protocol in HTTP_PROTOCOLS):
        return ("h2",)
    if protocol in HTTP_PROTOCOLS:
        return ("http/1.1",)
    return ()


def identities(snap: Snapshot, svc: MeshService, port: int, *, mesh_only: bool) -> list[str]:
    """The SPIFFE IDs of the service port's endpoints, and of its Workloads' whether an
    instance is ready or not (with `mesh_only`, only of those reached with mutual TLS),
    sorted."""
    key = (svc.hostname, port)
    eps = (*snap.endpoints.get(key, ()), *snap.workload_endpoints.get(key, ()))
    return sorted(
        {
            mtls.spiffe_id(snap.domain, e.namespace, e.service_account)
            for e in eps
            if not mesh_only or e.tls_mode == mtls.TLS_MODE_ISTIO
        }
    )


def tls_mode_metadata(tls_mode: str) -> struct_pb2.Struct | None:
    """An endpoint's metadata value under `TRANSPORT_SOCKET_MATCH`, if it has one."""
    if tls_mode != mtls.TLS_MODE_ISTIO:
        return None
    value = struct_pb2.Struct()
    value.update({TLS_MODE_KEY: tls_mode})
    return value


def _mesh_socket(
    snap: Snapshot,
    svc: MeshService,
    port: ServicePort,
    subset: str | None,
    settings: sec.ClientTLSSettings | None,
    *,
    mesh_only: bool,
    offer: tuple[str, ...],
) -> tls.TransportSocket:
    sans = (settings.subjectAltNames if settings else None) or identities(
        snap, svc, port.port, mesh_only=mesh_only
    )
    name = (settings.sni if settings else None) or sni(port.port, subset, svc.hostname)
    return tls.transport_socket(tls.mesh_upstream(sans, name, offer))


def apply(
    cluster: cluster_pb2.Cluster,
    snap: Snapshot,
    svc: MeshService,
    port: ServicePort,
    subset: str | None,
    policy: net.TrafficPolicy | None,
    discovery: Discovery,
) -> None:
    """Set the cluster's transport socket (or socket matches) as the table above says."""
    settings = policy.tls if policy is not None else None
    http = policy.connectionPool.http if policy and policy.connectionPool else None
    offer = alpn(
        port.protocol,
        client_protocol=bool(http and http.useClientProtocol),
        upgrade=bool(http and http.h2UpgradePolicy == "UPGRADE"),
    )
    if settings is None:
        if svc.location == "MESH_EXTERNAL" or discovery == "DFP":
            return
        if not identities(snap, svc, port.port, mesh_only=True):
            # No endpoint runs a sidecar: plain text, and no certificate to wait for (a
            # proxy without an agent would otherwise hold the cluster until SDS times out).
            return
        match = struct_pb2.Struct()
        match.update({TLS_MODE_KEY: mtls.TLS_MODE_ISTIO})
        mesh = cluster_pb2.Cluster.TransportSocketMatch(
            name=MTLS_MATCH,
            match=match,
            transport_socket=_mesh_socket(
                snap, svc, port, subset, None, mesh_only=True, offer=offer
            ),
        )
        plain = cluster_pb2.Cluster.TransportSocketMatch(
            name=PLAINTEXT_MATCH, transport_socket=tls.plaintext_socket()
        )
        cluster.transport_socket_matches.extend([mesh, plain])
    elif settings.mode == "ISTIO_MUTUAL":
        cluster.transport_socket.CopyFrom(
            _mesh_socket(snap, svc, port, subset, settings, mesh_only=False, offer=offer)
        )
    elif settings.mode in ("SIMPLE", "MUTUAL"):
        default_sni = None if "*" in svc.hostname else svc.hostname
        context = tls.file_upstream(settings, default_sni, offer)
        cluster.transport_socket.CopyFrom(tls.transport_socket(context))
