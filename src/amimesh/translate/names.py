"""Names of generated Envoy resources, shared by every translator."""

from __future__ import annotations

# The static cluster of every bootstrap that reaches the control plane (xDS, access log
# streams, traces).
CONTROL_PLANE_CLUSTER = "xds-grpc"

# How soon an Envoy opens a config stream again (ADS to the control plane, SDS to its
# node agent) after the stream ended or could not connect: jittered, doubling from the
# base to the cap. Envoy's default is 0.5 s doubling to 30 s; here a proxy started
# before the control plane listens, or left behind while it restarted, resyncs within
# a second of its coming back. Envoy reads it from the stream's `envoy_grpc` only.
CONFIG_STREAM_RETRY = {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}}

# The explicit-proxy (HTTP_PROXY) listener and its single route table.
OUTBOUND_LISTENER = "outbound"
OUTBOUND_ROUTE = "outbound"


def cluster_name(direction: str, port: int, subset: str | None, host: str) -> str:
    """Istio's cluster naming: `outbound|9080|v1|reviews.default.svc.cluster.local`."""
    return f"{direction}|{port}|{subset or ''}|{host}"


def outbound_cluster(port: int, host: str, subset: str | None = None) -> str:
    return cluster_name("outbound", port, subset, host)


def inbound_cluster(port: int) -> str:
    """The cluster that reaches the local app behind workload port `port`."""
    return cluster_name("inbound", port, None, "")


def inbound_listener(port: int) -> str:
    return f"inbound|{port}"


def parse_cluster_name(name: str) -> tuple[str, int, str, str]:
    """(direction, port, subset, host) of a cluster name made by `cluster_name`."""
    direction, port, subset, host = name.split("|", 3)
    return direction, int(port), subset, host
