"""Istio's standard metric labels, from what an access log entry says and the mesh. Pure.

A proxy reports each request twice, as Istio's do: the client's sidecar as
`reporter="source"` (its outbound listeners, and the gateway) and the server's as
`reporter="destination"` (its inbound listeners). The reporting proxy is one side of
the request; the other side comes from the entry:

- **source reporter**: the destination workload is the endpoint the request went to
  (the upstream address, looked up among the mesh's endpoints); the destination service
  is the host of the upstream cluster (`outbound|PORT|SUBSET|HOST`), else the request's
  authority. `connection_security_policy` is `unknown`, as in Istio.
- **destination reporter**: the source workload is the one named in the peer header
  that the sender's proxy sets (`WORKLOAD.NAMESPACE`), else the one workload running
  as the peer certificate's identity; `source_principal` is the peer certificate's
  SPIFFE ID; `connection_security_policy` is `mutual_tls` when the connection was mutual
  TLS, else `none`. The destination service is the service whose endpoints include
  the listener's port (the authority decides between several).

What cannot be known is `unknown`, as in Istio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from amimesh.identity.spiffe import workload_id
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot

UNKNOWN = "unknown"
SOURCE = "source"
DESTINATION = "destination"
MUTUAL_TLS = "mutual_tls"
NONE = "none"

# The labels of Istio's HTTP and gRPC metrics, in Istio's order.
LABELS: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
# TCP metrics have no response code or gRPC status.
TCP_LABELS: tuple[str, ...] = tuple(
    name for name in LABELS if name not in ("response_code", "grpc_response_status")
)


@dataclass(frozen=True)
class Peer:
    """A workload, as the labels name it."""

    workload: str
    namespace: str
    principal: str
    app: str
    version: str

    def values(self) -> tuple[str, str, str, str, str]:
        return (self.workload, self.namespace, self.principal, self.app, self.version)


UNKNOWN_PEER = Peer(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


@dataclass(frozen=True)
class ServiceName:
    """`destination_service`, `destination_service_name`, `destination_service_namespace`."""

    host: str
    name: str
    namespace: str


UNKNOWN_SERVICE = ServiceName(UNKNOWN, UNKNOWN, UNKNOWN)


def peer_of(
    workload: str,
    namespace: str,
    labels: Mapping[str, str],
    service_account: str,
    trust_domain: str,
) -> Peer:
    try:
        principal = workload_id(namespace, service_account, trust_domain).uri
    except ValueError:
        principal = UNKNOWN
    return Peer(
        workload=workload or UNKNOWN,
        namespace=namespace or UNKNOWN,
        principal=principal,
        app=labels.get("app") or labels.get("app.kubernetes.io/name") or UNKNOWN,
        version=labels.get("version") or labels.get("app.kubernetes.io/version") or UNKNOWN,
    )


def proxy_peer(proxy: Proxy, trust_domain: str) -> Peer:
    return peer_of(
        proxy.workload or proxy.id,
        proxy.namespace,
        proxy.labels,
        proxy.service_account,
        trust_domain,
    )


def split_host_port(address: str) -> tuple[str, int]:
    """("127.0.0.1", 8080) for "127.0.0.1:8080"; port 0 when there is none."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, 0
    return host.strip("[]"), int(port)


class Directory:
    """Who is who in one snapshot and set of connected proxies: workloads by name, by
    endpoint address and by identity, and services by host and by endpoint."""

    def __init__(self, snap: Snapshot, proxies: Iterable[Proxy], trust_domain: str) -> None:
        self.trust_domain = trust_domain
        self.snap = snap
        self.by_name: dict[tuple[str, str], Peer] = {}
        self.by_address: dict[tuple[str, int], Peer] = {}
        self.hosts_at: dict[tuple[str, int], list[str]] = {}
        principals: dict[str, set[Peer]] = {}

        def add(peer: Peer) -> None:
            self.by_name.setdefault((peer.namespace, peer.workload), peer)
            principals.setdefault(peer.principal, set()).add(peer)

        for inst in snap.instances:
            peer = peer_of(
                inst.workload, inst.namespace, inst.labels, inst.service_account, trust_domain
            )
            add(peer)
            for listen_port in inst.ports.values():
                self.by_address[(inst.address, listen_port)] = peer
        for (host, _port), endpoints in snap.endpoints.items():
            for ep in endpoints:
                if ep.workload:
                    peer = peer_of(
                        ep.workload, ep.namespace, ep.labels, ep.service_account, trust_domain
                    )
                    add(peer)
                    self.by_address.setdefault((ep.address, ep.port), peer)
                hosts = self.hosts_at.setdefault((ep.address, ep.port), [])
                if host not in hosts:
                    hosts.append(host)
        for proxy in proxies:
            add(proxy_peer(proxy, trust_domain))
        # An identity names a workload only when one workload runs as it.
        self.by_principal = {p: next(iter(s)) for p, s in principals.items() if len(s) == 1}

    def service(self, host: str) -> ServiceName:
        if not host:
            return UNKNOWN_SERVICE
        svc = self.snap.services.get(host)
        if svc is None:
            return ServiceName(host, host, UNKNOWN)
        if svc.origin == "service-entry":
            return ServiceName(host, host, svc.namespace)
        return ServiceName(host, svc.name, svc.namespace)

    def service_of_cluster(self, cluster: str, authority: str) -> ServiceName:
        """The service of an outbound cluster name (`outbound|PORT|SUBSET|HOST`), else
        of the authority the request named."""
        parts = cluster.split("|")
        if len(parts) == 4 and parts[0] == "outbound" and parts[3]:
            return self.service(parts[3])
        host = split_host_port(authority)[0] if authority else ""
        return self.service(self.snap.resolve(host, "default")) if host else UNKNOWN_SERVICE

    def service_at(self, address: str, port: int, authority: str) -> ServiceName:
        """The service whose endpoints include `address:port` (an inbound listener); the
        authority's first label decides between several."""
        hosts = self.hosts_at.get((address, port), [])
        if not hosts:
            return UNKNOWN_SERVICE
        if len(hosts) > 1 and authority:
            wanted = split_host_port(authority)[0].split(".")[0]
            for host in hosts:
                if host.split(".")[0] == wanted:
                    return self.service(host)
        return self.service(sorted(hosts)[0])

    def peer_named(self, header: str) -> Peer | None:
        """The workload a peer header (`WORKLOAD.NAMESPACE`) names; None if unknown."""
        workload, sep, namespace = header.rpartition(".")
        if not sep:
            return None
        return self.by_name.get((namespace, workload))

    def peer_at(self, address: str) -> Peer:
        return self.by_address.get(split_host_port(address), UNKNOWN_PEER)


def protocol(content_type: str) -> str:
    """Istio's `request_protocol`: `grpc` for gRPC requests, else `http`."""
    return "grpc" if content_type.startswith("application/grpc") else "http"
