"""Snapshot → ClusterLoadAssignments, one per EDS cluster (see `cluster_external.discovery`).

Every EDS cluster gets a load assignment, even an empty one: Envoy keeps a cluster
warming (and routes to it fail) until its assignment arrives.

An endpoint reached with mutual TLS carries the metadata
`envoy.transport_socket_match: {tlsMode: istio}`, which picks its cluster's mutual TLS
transport socket (`cluster_tls`).

Endpoints are grouped by locality (`region/zone/subzone`); each group's weight is the
sum of its endpoints' weights. Locality priorities and weights depend on where the
proxy is (see `cluster_locality`): `load_assignments(snap)` arranges them for a proxy
with no locality, which is right for every proxy as long as workloads carry no
locality; `load_assignments(snap, locality=...)` arranges them for one locality.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from amimesh.model.snapshot import Endpoint, MeshService, Snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources.fields import is_ip
from amimesh.translate import (
    cluster_external,
    cluster_lb,
    cluster_locality,
    cluster_policy,
    cluster_tls,
    names,
)
from amimesh.translate.cluster_locality import Group, Locality

ClusterLoadAssignment: TypeAlias = endpoint_pb2.ClusterLoadAssignment


def address(host: str, port: int) -> address_pb2.Address:
    """A socket address, or a Unix socket for `unix:///path` (WorkloadEntry style)."""
    if host.startswith("unix://"):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=host[len("unix://") :]))
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def _lb_endpoint(ep: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    lbe = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address(ep.address, ep.port))
    )
    lbe.load_balancing_weight.value = max(ep.weight, 1)
    tls_mode = cluster_tls.tls_mode_metadata(ep.tls_mode)
    if tls_mode is not None:
        lbe.metadata.filter_metadata[cluster_tls.TRANSPORT_SOCKET_MATCH].CopyFrom(tls_mode)
    return lbe


def _groups(endpoints: Iterable[Endpoint]) -> list[Group[Endpoint]]:
    by_locality: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_locality.setdefault(ep.locality, []).append(ep)
    return [
        Group(Locality.parse(loc), tuple(eps), sum(max(e.weight, 1) for e in eps))
        for loc, eps in sorted(by_locality.items())
    ]


def load_assignment(
    cluster_name: str,
    endpoints: Sequence[Endpoint],
    policy: net.TrafficPolicy | None = None,
    *,
    locality: str = "",
) -> ClusterLoadAssignment:
    """The assignment of `endpoints` to `cluster_name`, arranged for a proxy in `locality`."""
    lb = policy.loadBalancer if policy is not None else None
    groups = cluster_locality.arrange(
        _groups(endpoints),
        locality,
        cluster_lb.locality_setting(lb),
        outlier_detection=policy is not None and policy.outlierDetection is not None,
    )
    cla = ClusterLoadAssignment(cluster_name=cluster_name)
    for g in groups:
        lle = cla.endpoints.add()
        if g.locality != Locality():
            lle.locality.CopyFrom(
                base_pb2.Locality(
                    region=g.locality.region, zone=g.locality.zone, sub_zone=g.locality.subzone
                )
            )
        lle.priority = g.priority
        lle.load_balancing_weight.value = g.weight
        lle.lb_endpoints.extend(_lb_endpoint(e) for e in g.items)
    return cla


def eds_endpoints(
    snap: Snapshot, svc: MeshService, port: int, subset: str | None
) -> list[Endpoint]:
    """The endpoints of an EDS cluster: those of the subset, with an IP or Unix address."""
    labels = snap.subset_labels(svc.hostname, subset) if subset else None
    if subset and labels is None:
        return []
    return [
        e
        for e in snap.endpoints_for(svc.hostname, port, labels)
        if is_ip(e.address) or e.address.startswith("unix://")
    ]


def service_assignments(
    snap: Snapshot, svc: MeshService, *, locality: str = ""
) -> list[ClusterLoadAssignment]:
    """One assignment per EDS cluster of one service (none if it is not EDS).

    Reads only `svc`, its DestinationRule and its endpoints (see `generate.inputs`).
    """
    if cluster_external.discovery(snap, svc) != "EDS":
        return []
    host = svc.hostname
    return [
        load_assignment(
            names.outbound_cluster(sp.port, host, subset),
            eds_endpoints(snap, svc, sp.port, subset),
            cluster_policy.effective_policy(snap, host, subset, sp.port),
            locality=locality,
        )
        for sp in svc.ports
        for subset in cluster_policy.subsets(snap, host)
    ]


def load_assignments(snap: Snapshot, *, locality: str = "") -> list[ClusterLoadAssignment]:
    """One assignment per EDS cluster of `clusters.outbound_clusters(snap)`."""
    return [
        cla
        for host in sorted(snap.services)
        for cla in service_assignments(snap, snap.services[host], locality=locality)
    ]
