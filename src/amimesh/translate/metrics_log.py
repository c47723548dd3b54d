"""Access log streams to the control plane, from which it builds Istio's metrics.

Every HTTP connection manager and TCP proxy of a proxy streams one entry per request
(HTTP) or connection (TCP) to the control plane over gRPC (Envoy's access log service,
`envoy.service.accesslog.v3`), through the static cluster that reaches the control
plane (`CONTROL_PLANE_CLUSTER`). Envoy batches entries (`FLUSH_INTERVAL_S`, or a full
buffer) and keeps one stream per log name, so the log name carries what the entry is:
`LOG_PREFIX` + `http.inbound`, `http.outbound`, `tcp.inbound` or `tcp.outbound`.

What the control plane needs beyond Envoy's common fields is logged too: the peer
header (`PEER_HEADER`: which workload sent the request; set by the sender's outbound
connection managers), `content-type` (gRPC or plain HTTP), and `grpc-status` (a response
header for trailers-only responses, else a trailer).
"""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from amimesh.model.proxy import Proxy
from amimesh.translate.names import CONTROL_PLANE_CLUSTER

HTTP_GRPC_LOGGER = "envoy.access_loggers.http_grpc"
TCP_GRPC_LOGGER = "envoy.access_loggers.tcp_grpc"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
LOG_PREFIX = "ami."
PEER_HEADER = "x-ami-peer"
FLUSH_INTERVAL_S = 1
# Envoy's default (16 KiB) sends a message every ~50 entries; a larger buffer makes the
# flush interval the rule, so fewer, larger messages cost both sides less.
BUFFER_BYTES = 1 << 20
REQUEST_HEADERS = (PEER_HEADER, "content-type")
RESPONSE_HEADERS = ("grpc-status",)
RESPONSE_TRAILERS = ("grpc-status",)


def log_name(kind: str, direction: str) -> str:
    """`ami.http.inbound` and the like: what a stream's entries are."""
    return f"{LOG_PREFIX}{kind}.{direction}"


def parse_log_name(name: str) -> tuple[str, str] | None:
    """(kind, direction) of a name made by `log_name`; None for any other."""
    if not name.startswith(LOG_PREFIX):
        return None
    kind, _, direction = name[len(LOG_PREFIX) :].partition(".")
    if kind not in ("http", "tcp") or direction not in ("inbound", "outbound"):
        return None
    return kind, direction


def _common(kind: str, direction: str) -> als_pb2.CommonGrpcAccessLogConfig:
    return als_pb2.CommonGrpcAccessLogConfig(
        log_name=log_name(kind, direction),
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=CONTROL_PLANE_CLUSTER)
        ),
        transport_api_version=config_source_pb2.V3,
        buffer_flush_interval=duration_pb2.Duration(seconds=FLUSH_INTERVAL_S),
        buffer_size_bytes=wrappers_pb2.UInt32Value(value=BUFFER_BYTES),
    )


def _access_log(
    name: str, config: als_pb2.HttpGrpcAccessLogConfig | als_pb2.TcpGrpcAccessLogConfig
) -> accesslog_pb2.AccessLog:
    typed = any_pb2.Any()
    typed.Pack(config)
    return accesslog_pb2.AccessLog(name=name, typed_config=typed)


def http_log(direction: str) -> accesslog_pb2.AccessLog:
    """The access log stream of an HTTP connection manager of `direction`."""
    return _access_log(
        HTTP_GRPC_LOGGER,
        als_pb2.HttpGrpcAccessLogConfig(
            common_config=_common("http", direction),
            additional_request_headers_to_log=list(REQUEST_HEADERS),
            additional_response_headers_to_log=list(RESPONSE_HEADERS),
            additional_response_trailers_to_log=list(RESPONSE_TRAILERS),
        ),
    )


def tcp_log(direction: str) -> accesslog_pb2.AccessLog:
    """The access log stream of a TCP proxy of `direction`."""
    return _access_log(
        TCP_GRPC_LOGGER, als_pb2.TcpGrpcAccessLogConfig(common_config=_common("tcp", direction))
    )


def peer_value(proxy: Proxy) -> str:
    """What `proxy` sends in `PEER_HEADER`: `WORKLOAD.NAMESPACE`."""
    return f"{proxy.workload or proxy.id}.{proxy.namespace}"


def peer_header_config(value: str) -> header_mutation_pb2.HeaderMutation:
    """A header mutation filter's config that sets `PEER_HEADER` to `value`, replacing
    whatever the app sent."""
    option = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=PEER_HEADER, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
    out = header_mutation_pb2.HeaderMutation()
    out.mutations.request_mutations.add(append=option)
    return out
