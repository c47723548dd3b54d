"""Snapshot → Envoy clusters: outbound (shared by every sidecar) and inbound (per proxy).

Outbound: one cluster per service port, `outbound|PORT||HOST`, and one per
DestinationRule subset, `outbound|PORT|SUBSET|HOST`, with the rule's traffic policy
(`cluster_policy`, `cluster_lb`), the kind of discovery its resolution calls for
(`cluster_external`) and its transport: auto mutual TLS or the rule's `tls`
(`cluster_tls`). HTTP2 and GRPC ports talk HTTP/2 upstream, HTTP ports HTTP/1.1.

Inbound: `inbound|PORT||`, the local app behind each of the proxy's inbound ports. A
proxy with a `max_concurrency` (the Workload's `ami.dev/max-concurrency`) gets circuit
breakers on its HTTP ports' clusters that keep at most that many requests in flight to
the app and queue 10 times as many (`cluster_policy.concurrency_limit`); HTTP2, GRPC
and TCP ports are not limited.

Envoy hashes for consistent-hash balancing on the route: routes call
`hash_policy_for` to get the hash policy matching a cluster's `consistentHash`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Endpoint, MeshService, ServicePort, Snapshot
from amimesh.translate import (
    cluster_external,
    cluster_lb,
    cluster_policy,
    cluster_tls,
    endpoints,
    names,
)
from amimesh.translate.cluster_lb import HashPolicy

Cluster: TypeAlias = cluster_pb2.Cluster

LOCALHOST = "127.0.0.1"


def ads_config_source() -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    return source


def _outbound(snap: Snapshot, svc: MeshService, port: ServicePort, subset: str | None) -> Cluster:
    name = names.outbound_cluster(port.port, svc.hostname, subset)
    policy = cluster_policy.effective_policy(snap, svc.hostname, subset, port.port)
    kind = cluster_external.discovery(snap, svc)
    c = Cluster(name=name)
    if kind == "EDS":
        c.type = Cluster.EDS
        c.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
        c.eds_cluster_config.service_name = name
    elif kind == "DFP":
        cluster_external.set_dfp(c)
    else:
        labels = dict(snap.subset_labels(svc.hostname, subset) or {}) if subset else None
        eps = cluster_external.dns_endpoints(snap, svc, port, labels)
        if kind == "LOGICAL_DNS" and len(eps) != 1:
            # Envoy's LOGICAL_DNS takes exactly one name; anything else resolves all.
            kind = "STRICT_DNS"
        cluster_external.set_dns(c, kind)
        c.load_assignment.CopyFrom(endpoints.load_assignment(name, eps, policy))
    cluster_policy.apply(c, policy, port.protocol)
    cluster_tls.apply(c, snap, svc, port, subset, policy, kind)
    if kind != "DFP":
        cluster_lb.apply(
            c,
            policy.loadBalancer if policy is not None else None,
            outlier_detection=policy is not None and policy.outlierDetection is not None,
        )
    return c


def service_clusters(snap: Snapshot, svc: MeshService) -> list[Cluster]:
    """The outbound clusters of one service, by port and subset.

    Reads only `svc`, its DestinationRule and its endpoints (see `generate.inputs`).
    """
    return [
        _outbound(snap, svc, port, subset)
        for port in svc.ports
        for subset in cluster_policy.subsets(snap, svc.hostname)
    ]


def outbound_clusters(snap: Snapshot) -> list[Cluster]:
    """Every outbound cluster of the mesh, in a stable order (by host, port, subset)."""
    return [
        c for host in sorted(snap.services) for c in service_clusters(snap, snap.services[host])
    ]


def _inbound(p: InboundPort, max_concurrency: int) -> Cluster:
    name = names.inbound_cluster(p.port)
    c = Cluster(name=name, type=Cluster.STATIC)
    app = Endpoint(address=LOCALHOST, port=p.app_port)
    c.load_assignment.CopyFrom(endpoints.load_assignment(name, [app]))
    cluster_policy.apply(c, None, p.protocol)
    if max_concurrency > 0 and p.protocol.upper() == "HTTP":
        c.circuit_breakers.CopyFrom(cluster_policy.concurrency_limit(max_concurrency))
    return c


def inbound_clusters(proxy: Proxy, ingress: Iterable[tuple[int, int]] = ()) -> list[Cluster]:
    """One cluster per inbound port of a sidecar: the app on 127.0.0.1:app_port, or on
    the port a Sidecar's `ingress` `defaultEndpoint` names for that port (`ingress`:
    (port, app port) pairs)."""
    if proxy.kind != "sidecar":
        return []
    moved = dict(ingress)
    return [
        _inbound(
            dataclasses.replace(p, app_port=moved[p.port]) if p.port in moved else p,
            proxy.max_concurrency,
        )
        for p in proxy.inbound
    ]


def hash_policy_for(snap: Snapshot, host: str, subset: str | None, port: int) -> list[HashPolicy]:
    """The `RouteAction.hash_policy` for a route to `outbound|port|subset|host`.

    Non-empty only when the (merged) DestinationRule policy uses `consistentHash`;
    empty for DNS-per-request (NONE) services, which do not balance.
    """
    svc = snap.service(host)
    if svc is not None and cluster_external.discovery(snap, svc) == "DFP":
        return []
    policy = cluster_policy.effective_policy(snap, host, subset, port)
    return cluster_lb.hash_policies(policy.loadBalancer if policy is not None else None)
