"""How a service's endpoints are found: EDS, DNS, or DNS per request (ServiceEntry).

| service | cluster |
|---|---|
| Kubernetes Service, ServiceEntry `STATIC` | `EDS` (endpoints pushed by the control plane) |
| ServiceEntry `DNS` | `STRICT_DNS` over its endpoints' addresses, else its host |
| ServiceEntry `DNS_ROUND_ROBIN` | `LOGICAL_DNS` over its one endpoint (else its host) |
| ServiceEntry `NONE` with endpoints or a workloadSelector | `EDS` |
| ServiceEntry `NONE` otherwise | dynamic forward proxy (`DFP`) |

STATIC goes by EDS, as in Istio, so a WorkloadEntry change is an endpoint update and
not a cluster update (which would reset the cluster's connection pools).

NONE means "the app already knows the address". Istio sends it to the connection's
original destination (ORIGINAL_DST), which only exists with iptables capture. With an
explicit HTTP proxy the address is in the request instead: the absolute URL's host,
i.e. `:authority`. A dynamic forward proxy cluster resolves exactly that, per host,
through a DNS cache shared with the listener's DFP filter (`DNS_CACHE_NAME`). Load
balancing settings do not apply to it (Envoy picks the resolved host).

DNS is resolved with the system resolver (getaddrinfo: /etc/hosts, nsswitch), which is
what a local app would see, preferring IPv4; clusters refresh every 60s, or sooner as
the records' TTL says, as in Istio.
"""

from __future__ import annotations

from typing import Literal

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.clusters.common.dns.v3 import dns_pb2
from envoy.extensions.clusters.dns.v3 import dns_cluster_pb2
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import (
    cluster_pb2 as dfp_cluster_pb2,
)
from envoy.extensions.common.dynamic_forward_proxy.v3 import dns_cache_pb2
from envoy.extensions.network.dns_resolver.getaddrinfo.v3 import (
    getaddrinfo_dns_resolver_pb2,
)
from google.protobuf import any_pb2

from amimesh.model.hosts import is_wildcard
from amimesh.model.snapshot import Endpoint, MeshService, ServicePort, Snapshot
from amimesh.translate.cluster_policy import duration

Discovery = Literal["EDS", "STRICT_DNS", "LOGICAL_DNS", "DFP"]

DNS_CACHE_NAME = "ami_dns_cache"
DNS_REFRESH_SECONDS = 60.0
DFP_CLUSTER_TYPE = "envoy.clusters.dynamic_forward_proxy"
DNS_CLUSTER_TYPE = "envoy.cluster.dns"
_GETADDRINFO = "envoy.network.dns_resolver.getaddrinfo"


def discovery(snap: Snapshot, svc: MeshService) -> Discovery:
    """The kind of cluster for `svc`; fixed by configuration, not by live endpoints."""
    if svc.resolution == "DNS":
        return "STRICT_DNS"
    if svc.resolution == "DNS_ROUND_ROBIN":
        return "LOGICAL_DNS"
    if svc.resolution == "NONE":
        configured = svc.selector is not None or any(
            snap.endpoints.get((svc.hostname, p.port)) for p in svc.ports
        )
        return "EDS" if configured else "DFP"
    return "EDS"


def dns_endpoints(
    snap: Snapshot, svc: MeshService, port: ServicePort, subset_labels: dict[str, str] | None
) -> list[Endpoint]:
    """Names to resolve for a DNS cluster: the endpoints, or the service's own host.

    A wildcard host cannot be resolved: with no endpoints it yields none.
    """
    if snap.endpoints.get((svc.hostname, port.port)):
        return list(snap.endpoints_for(svc.hostname, port.port, subset_labels))
    if is_wildcard(svc.hostname):
        return []
    target = port.target_port if isinstance(port.target_port, int) else port.port
    return [Endpoint(address=svc.hostname, port=target, namespace=svc.namespace)]


def dns_resolver() -> extension_pb2.TypedExtensionConfig:
    packed = any_pb2.Any()
    packed.Pack(getaddrinfo_dns_resolver_pb2.GetAddrInfoDnsResolverConfig())
    return extension_pb2.TypedExtensionConfig(name=_GETADDRINFO, typed_config=packed)


def dns_cache_config() -> dns_cache_pb2.DnsCacheConfig:
    """The DNS cache of every DFP cluster and of the listeners' DFP filter.

    Envoy requires one cache name to carry one configuration everywhere it is used.
    """
    return dns_cache_pb2.DnsCacheConfig(
        name=DNS_CACHE_NAME,
        dns_lookup_family=cluster_pb2.Cluster.V4_PREFERRED,
        typed_dns_resolver_config=dns_resolver(),
    )


def set_dns(cluster: cluster_pb2.Cluster, kind: Literal["STRICT_DNS", "LOGICAL_DNS"]) -> None:
    """Make `cluster` resolve its load assignment's names (the `envoy.cluster.dns` type).

    LOGICAL_DNS keeps one connection target per name (all addresses form one endpoint);
    STRICT_DNS makes every resolved address an endpoint.
    """
    config = dns_cluster_pb2.DnsCluster(
        respect_dns_ttl=True,
        dns_lookup_family=dns_pb2.V4_PREFERRED,
        typed_dns_resolver_config=dns_resolver(),
        all_addresses_in_single_endpoint=kind == "LOGICAL_DNS",
    )
    config.dns_refresh_rate.CopyFrom(duration(DNS_REFRESH_SECONDS))
    packed = any_pb2.Any()
    packed.Pack(config)
    cluster.cluster_type.CopyFrom(
        cluster_pb2.Cluster.CustomClusterType(name=DNS_CLUSTER_TYPE, typed_config=packed)
    )


def set_dfp(cluster: cluster_pb2.Cluster) -> None:
    packed = any_pb2.Any()
    # Ami's DFP clusters carry plaintext HTTP (no TLS origination), so the checks on
    # SNI and SAN that Envoy asks for do not apply.
    config = dfp_cluster_pb2.ClusterConfig(
        dns_cache_config=dns_cache_config(), allow_insecure_cluster_options=True
    )
    packed.Pack(config)
    cluster.cluster_type.CopyFrom(
        cluster_pb2.Cluster.CustomClusterType(name=DFP_CLUSTER_TYPE, typed_config=packed)
    )
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
