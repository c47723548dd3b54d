"""The proxy as the control plane sees it: who it is and which ports it owns.

A proxy describes itself in its Envoy node metadata (written by the bootstrap);
the xDS server turns that metadata into a `Proxy` with `proxy_from_metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ProxyKind = Literal["sidecar", "gateway"]

# Keys of the Envoy node metadata that the bootstrap writes and the control plane reads.
META_KIND = "AMI_KIND"
META_WORKLOAD = "AMI_WORKLOAD"
META_NAMESPACE = "AMI_NAMESPACE"
META_LABELS = "AMI_LABELS"
META_SERVICE_ACCOUNT = "AMI_SERVICE_ACCOUNT"
META_OUTBOUND_PORT = "AMI_OUTBOUND_PORT"
META_INBOUND = "AMI_INBOUND"
META_ADDRESS = "AMI_ADDRESS"
META_LOCALITY = "AMI_LOCALITY"
META_UPSTREAMS = "AMI_UPSTREAMS"
META_GATEWAY_PORTS = "AMI_GATEWAY_PORTS"
META_ADMIN_PORT = "AMI_ADMIN_PORT"
META_ACCESS_LOG = "AMI_ACCESS_LOG"
META_ACCESS_LOG_FORMAT = "AMI_ACCESS_LOG_FORMAT"
META_MAX_CONCURRENCY = "AMI_MAX_CONCURRENCY"
META_REQUEST_TIMEOUT = "AMI_REQUEST_TIMEOUT"
META_IDLE_TIMEOUT = "AMI_IDLE_TIMEOUT"

AccessLogFormat = Literal["json", "text"]


@dataclass(frozen=True)
class InboundPort:
    """One port of the workload, fronted by an inbound listener of its sidecar.

    `port` is the workload's declared port (the Kubernetes targetPort / containerPort);
    `listen_port` is where the sidecar's inbound listener accepts mesh traffic;
    `app_port` is where the application really listens (on the same host).
    """

    port: int
    listen_port: int
    app_port: int
    name: str = ""
    protocol: str = "HTTP"


@dataclass(frozen=True)
class Upstream:
    """A local port of a sidecar that reaches one service port (for gRPC and TCP
    clients, which cannot use the HTTP proxy): 127.0.0.1:`listen_port` → `host`:`port`.
    """

    host: str  # fully qualified service host
    port: int  # the service port
    listen_port: int
    protocol: str = "GRPC"


@dataclass(frozen=True)
class GatewayPort:
    """A Gateway server port (`port`, as the Gateway resource names it) and the host
    port where this gateway's Envoy really listens for it (`listen_port`)."""

    port: int
    listen_port: int


@dataclass(frozen=True)
class Proxy:
    """A connected Envoy: a workload's sidecar or a gateway."""

    id: str
    kind: ProxyKind = "sidecar"
    workload: str = ""
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    address: str = "127.0.0.1"
    # Port of the explicit-proxy (HTTP_PROXY) outbound listener; 0 means none.
    outbound_port: int = 0
    inbound: tuple[InboundPort, ...] = ()
    # `region/zone/subzone`, for locality-aware load balancing; "" when unknown.
    locality: str = ""
    upstreams: tuple[Upstream, ...] = ()
    gateway_ports: tuple[GatewayPort, ...] = ()
    # The Envoy admin port (loopback), for tools such as `ami proxy-config`; 0 unknown.
    admin_port: int = 0
    # File where Envoy writes its access log; "" means no access log.
    access_log: str = ""
    # How each line is written: one JSON object ("json") or Istio's text line ("text").
    access_log_format: AccessLogFormat = "json"
    # The most requests in flight to the app per HTTP port (the Workload's
    # `ami.dev/max-concurrency`); 0: no limit.
    max_concurrency: int = 0
    # Seconds a request to the app may run (`ami.dev/request-timeout`) and stay
    # without a byte (`ami.dev/idle-timeout`) at its inbound listeners; 0: no limit.
    request_timeout_s: int = 0
    idle_timeout_s: int = 0

    def metadata(self) -> dict[str, Any]:
        """The node metadata a bootstrap writes for this proxy (JSON-compatible)."""
        return {
            META_KIND: self.kind,
            META_WORKLOAD: self.workload,
            META_NAMESPACE: self.namespace,
            META_LABELS: dict(self.labels),
            META_SERVICE_ACCOUNT: self.service_account,
            META_ADDRESS: self.address,
            META_OUTBOUND_PORT: str(self.outbound_port),
            META_ADMIN_PORT: str(self.admin_port),
            META_LOCALITY: self.locality,
            META_ACCESS_LOG: self.access_log,
            META_ACCESS_LOG_FORMAT: self.access_log_format,
            META_MAX_CONCURRENCY: str(self.max_concurrency),
            META_REQUEST_TIMEOUT: str(self.request_timeout_s),
            META_IDLE_TIMEOUT: str(self.idle_timeout_s),
            META_UPSTREAMS: [
                {
                    "host": u.host,
                    "port": str(u.port),
                    "listen_port": str(u.listen_port),
                    "protocol": u.protocol,
                }
                for u in self.upstreams
            ],
            META_GATEWAY_PORTS: [
                {"port": str(g.port), "listen_port": str(g.listen_port)} for g in self.gateway_ports
            ],
            META_INBOUND: [
                {
                    "port": str(p.port),
                    "listen_port": str(p.listen_port),
                    "app_port": str(p.app_port),
                    "name": p.name,
                    "protocol": p.protocol,
                }
                for p in self.inbound
            ],
        }


def proxy_from_metadata(node_id: str, metadata: Mapping[str, Any]) -> Proxy:
    """Rebuild a `Proxy` from node metadata (as decoded from a protobuf Struct).

    Numbers travel as strings because a protobuf Struct keeps only doubles.
    Missing keys take the defaults, so a bare Envoy still gets a (minimal) proxy.
    """
    kind = str(metadata.get(META_KIND, "sidecar"))
    inbound = tuple(
        InboundPort(
            port=int(float(p["port"])),
            listen_port=int(float(p["listen_port"])),
            app_port=int(float(p["app_port"])),
            name=str(p.get("name", "")),
            protocol=str(p.get("protocol", "HTTP")),
        )
        for p in metadata.get(META_INBOUND, []) or []
    )
    labels = metadata.get(META_LABELS, {}) or {}
    return Proxy(
        id=node_id,
        kind="gateway" if kind == "gateway" else "sidecar",
        workload=str(metadata.get(META_WORKLOAD, "")),
        namespace=str(metadata.get(META_NAMESPACE, "default")),
        labels={str(k): str(v) for k, v in labels.items()},
        service_account=str(metadata.get(META_SERVICE_ACCOUNT, "default")),
        address=str(metadata.get(META_ADDRESS, "127.0.0.1")),
        outbound_port=int(float(metadata.get(META_OUTBOUND_PORT, 0) or 0)),
        admin_port=int(float(metadata.get(META_ADMIN_PORT, 0) or 0)),
        inbound=inbound,
        locality=str(metadata.get(META_LOCALITY, "")),
        access_log=str(metadata.get(META_ACCESS_LOG, "")),
        access_log_format="text" if metadata.get(META_ACCESS_LOG_FORMAT) == "text" else "json",
        max_concurrency=int(float(metadata.get(META_MAX_CONCURRENCY, 0) or 0)),
        request_timeout_s=int(float(metadata.get(META_REQUEST_TIMEOUT, 0) or 0)),
        idle_timeout_s=int(float(metadata.get(META_IDLE_TIMEOUT, 0) or 0)),
        upstreams=tuple(
            Upstream(
                host=str(u["host"]),
                port=int(float(u["port"])),
                listen_port=int(float(u["listen_port"])),
                protocol=str(u.get("protocol", "GRPC")),
            )
            for u in metadata.get(META_UPSTREAMS, []) or []
        ),
        gateway_ports=tuple(
            GatewayPort(port=int(float(g["port"])), listen_port=int(float(g["listen_port"])))
            for g in metadata.get(META_GATEWAY_PORTS, []) or []
        ),
    )
