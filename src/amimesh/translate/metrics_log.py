"""Istio's metrics, counted by each proxy as Envoy stats and sent to the control plane.

Every HTTP connection manager and TCP proxy of a proxy has Envoy's stats access logger
(`envoy.access_loggers.stats`), which turns each request (HTTP) or connection (TCP)
into stats in the proxy's own memory: histograms of the request's duration and sizes,
counters of a connection's bytes, openings and closings. Each stat carries a few tags
read from the request (`HTTP_TAGS`, `TCP_TAGS`): the response code, the peer's identity
or address, the upstream cluster. The control plane turns those raw tags into Istio's
labels; the proxy knows nothing of workloads or services.

The proxy's stats sink (`envoy.stat_sinks.open_telemetry`, configured in the bootstrap
from `sink_config`) sends what changed since the last flush, every `FLUSH_INTERVAL_S`,
to the control plane as OTLP metrics (deltas), through the static cluster that reaches
the control plane (`CONTROL_PLANE_CLUSTER`). Only Ami's stats are sent (`METRICS`);
Envoy's own thousands are dropped by the sink. Nothing is sent while nothing changes.

So a request costs the proxy a few stat updates and costs the control plane nothing;
the control plane's work grows with the number of distinct label sets, not with
traffic.

Stat names are `STAT_PREFIX.DIRECTION.METRIC` (`ami.inbound.request_duration_ms`).
The source's proxy counts a `TCP_OPENED` when the upstream connection is made (the TCP
proxy logs an entry then, `flush_access_log_on_connected`), or when the connection ends
without ever having one (`NEVER_CONNECTED` response flags); the destination's proxy
counts it when the connection ends, because it connects upstream before the client's
certificate (which names the source) is known. `TCP_CLOSED` and the byte counters are
counted when the connection ends.

The peer header (`PEER_HEADER`: `WORKLOAD.NAMESPACE`) is set by every outbound
connection manager (overwriting what the app sent), so that the destination's proxy
can say who called.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as accesslog_data_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from google.protobuf import any_pb2

from amimesh.model.proxy import Proxy
from amimesh.translate.names import CONTROL_PLANE_CLUSTER

STATS_LOGGER = "envoy.access_loggers.stats"
OTEL_SINK = "envoy.stat_sinks.open_telemetry"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
PEER_HEADER = "x-ami-peer"
# The gRPC metadata by which the sink's stream names its proxy.
NODE_HEADER = "x-ami-node"
STAT_PREFIX = "ami"
FLUSH_INTERVAL_S = 5
# The longest peer header a stat takes (longer values are cut), so that a client
# cannot make arbitrarily long stat names.
PEER_MAX_LEN = 128

INBOUND = "inbound"
OUTBOUND = "outbound"
DIRECTIONS = (INBOUND, OUTBOUND)

# HTTP metrics: histograms. A request is counted once, in REQUEST_DURATION's count.
REQUEST_DURATION = "request_duration_ms"
REQUEST_BYTES = "request_bytes"
RESPONSE_BYTES = "response_bytes"
# TCP metrics: counters.
TCP_OPENED = "tcp_opened"
TCP_CLOSED = "tcp_closed"
TCP_SENT = "tcp_sent_bytes"
TCP_RECEIVED = "tcp_received_bytes"
HTTP_METRICS = (REQUEST_DURATION, REQUEST_BYTES, RESPONSE_BYTES)
TCP_METRICS = (TCP_OPENED, TCP_CLOSED, TCP_SENT, TCP_RECEIVED)
METRICS = HTTP_METRICS + TCP_METRICS

# Envoy's default histogram buckets (milliseconds), which Istio's duration metric uses.
DURATION_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
BYTES_BUCKETS: tuple[float, ...] = tuple(float(10**i) for i in range(10))

# Tag names, as the control plane reads them back.
CODE = "code"
GRPC = "grpc"
FLAGS = "flags"
HOST = "host"
CLUSTER = "cluster"
PEER = "peer"
PRINCIPAL = "principal"
LOCAL = "local"

_CODE = (CODE, "%RESPONSE_CODE%")
_GRPC = (GRPC, "%GRPC_STATUS_NUMBER%")  # empty unless the request is gRPC
_FLAGS = (FLAGS, "%RESPONSE_FLAGS%")
_HOST = (HOST, "%UPSTREAM_HOST%")
_CLUSTER = (CLUSTER, "%UPSTREAM_CLUSTER%")
_PEER = (PEER, f"%REQ({PEER_HEADER}):{PEER_MAX_LEN}%")
_PRINCIPAL = (PRINCIPAL, "%DOWNSTREAM_PEER_URI_SAN%")
_LOCAL = (LOCAL, "%DOWNSTREAM_LOCAL_ADDRESS%")

# What each kind of stat is tagged with. Outbound (the source's report): where the
# request went. Inbound (the destination's report): who sent it and where it came in.
HTTP_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    OUTBOUND: (_CODE, _GRPC, _FLAGS, _HOST, _CLUSTER),
    INBOUND: (_CODE, _GRPC, _FLAGS, _PEER, _PRINCIPAL, _LOCAL),
}
TCP_TAGS: dict[str, tuple[tuple[str, str], ...]] = {
    OUTBOUND: (_FLAGS, _HOST, _CLUSTER),
    INBOUND: (_FLAGS, _PRINCIPAL, _LOCAL),
}
# Response flags of a TCP connection that ended without an upstream connection.
NEVER_CONNECTED = ("UF", "UO", "UH", "NR", "NC", "URX")

_UNITS = {
    REQUEST_DURATION: stats_pb2.Config.Histogram.Milliseconds,
    REQUEST_BYTES: stats_pb2.Config.Histogram.Bytes,
    RESPONSE_BYTES: stats_pb2.Config.Histogram.Bytes,
}
_VALUES = {
    REQUEST_DURATION: "%DURATION%",
    REQUEST_BYTES: "%DOWNSTREAM_WIRE_BYTES_RECEIVED%",
    RESPONSE_BYTES: "%DOWNSTREAM_WIRE_BYTES_SENT%",
    TCP_SENT: "%BYTES_SENT%",
    TCP_RECEIVED: "%BYTES_RECEIVED%",
}


def stat_name(direction: str, metric: str) -> str:
    """The stat's name under `STAT_PREFIX`, also the metric's name in the sink."""
    return f"{direction}.{metric}"


def metric_name(direction: str, metric: str) -> str:
    """The name the sink gives the metric: `ami.inbound.request_duration_ms`."""
    return f"{STAT_PREFIX}.{stat_name(direction, metric)}"


@dataclass(frozen=True)
class MetricName:
    direction: str
    metric: str


def parse_metric_name(name: str) -> MetricName | None:
    """What `metric_name` made `name` from; None for any other name."""
    prefix, _, rest = name.partition(".")
    direction, _, metric = rest.partition(".")
    if prefix != STAT_PREFIX or direction not in DIRECTIONS or metric not in METRICS:
        return None
    return MetricName(direction, metric)


def _stat(direction: str, metric: str, tags: Sequence[tuple[str, str]]) -> stats_pb2.Config.Stat:
    return stats_pb2.Config.Stat(
        name=stat_name(direction, metric),
        tags=[stats_pb2.Config.Tag(name=n, value_format=v) for n, v in tags],
    )


def _access_log(
    config: stats_pb2.Config, log_filter: accesslog_pb2.AccessLogFilter | None = None
) -> accesslog_pb2.AccessLog:
    typed = any_pb2.Any()
    typed.Pack(config)
    out = accesslog_pb2.AccessLog(name=STATS_LOGGER, typed_config=typed)
    if log_filter is not None:
        out.filter.CopyFrom(log_filter)
    return out


# What each stat counts for Istio's metrics: the duration histogram's count is
# `istio_requests_total`.
STAT_OF = {
    "REQUEST_COUNT": REQUEST_DURATION,
    "REQUEST_DURATION": REQUEST_DURATION,
    "REQUEST_SIZE": REQUEST_BYTES,
    "RESPONSE_SIZE": RESPONSE_BYTES,
    "TCP_OPENED_CONNECTIONS": TCP_OPENED,
    "TCP_CLOSED_CONNECTIONS": TCP_CLOSED,
    "TCP_SENT_BYTES": TCP_SENT,
    "TCP_RECEIVED_BYTES": TCP_RECEIVED,
}
SIDE_OF = {OUTBOUND: "CLIENT", INBOUND: "SERVER"}


def stats_for(off: Collection[tuple[str, str]], direction: str) -> frozenset[str]:
    """The stats a proxy of `direction` counts when the (Istio metric, side) pairs in
    `off` are turned off: a stat stays while any metric it counts for is on."""
    side = SIDE_OF[direction]
    return frozenset(stat for metric, stat in STAT_OF.items() if (metric, side) not in off)


def http_log(
    direction: str, stats: Collection[str] = HTTP_METRICS
) -> accesslog_pb2.AccessLog | None:
    """The stats logger of an HTTP connection manager of `direction` counting `stats`;
    None when it counts none."""
    tags = HTTP_TAGS[direction]
    if not any(m in stats for m in HTTP_METRICS):
        return None
    return _access_log(
        stats_pb2.Config(
            stat_prefix=STAT_PREFIX,
            histograms=[
                stats_pb2.Config.Histogram(
                    stat=_stat(direction, m, tags), unit=_UNITS[m], value_format=_VALUES[m]
                )
                for m in HTTP_METRICS
                if m in stats
            ],
        )
    )


def log_types(*types: int) -> accesslog_pb2.AccessLogFilter:
    """A filter passing only entries of the given `AccessLogType`s."""
    return accesslog_pb2.AccessLogFilter(
        log_type_filter=accesslog_pb2.LogTypeFilter(types=list(types))
    )


def except_connected() -> accesslog_pb2.AccessLogFilter:
    """A filter passing every entry but the TCP proxy's on its upstream connecting."""
    return accesslog_pb2.AccessLogFilter(
        log_type_filter=accesslog_pb2.LogTypeFilter(
            types=[accesslog_data_pb2.TcpUpstreamConnected], exclude=True
        )
    )


def tcp_logs(direction: str, stats: Collection[str] = TCP_METRICS) -> list[accesslog_pb2.AccessLog]:
    """The stats loggers of a TCP proxy of `direction` counting `stats` (it must flush
    an entry when its upstream connects, `flush_access_log_on_connected`)."""
    tags = TCP_TAGS[direction]

    def counter(metric: str) -> stats_pb2.Config.Counter:
        c = stats_pb2.Config.Counter(stat=_stat(direction, metric, tags))
        if metric in _VALUES:
            c.value_format = _VALUES[metric]
        else:
            c.value_fixed.value = 1
        return c

    def config(*metrics: str) -> stats_pb2.Config:
        counters = [counter(m) for m in metrics if m in stats]
        return stats_pb2.Config(stat_prefix=STAT_PREFIX, counters=counters)

    ended = log_types(accesslog_data_pb2.TcpConnectionEnd)
    never = accesslog_pb2.AccessLogFilter(
        and_filter=accesslog_pb2.AndFilter(
            filters=[
                ended,
                accesslog_pb2.AccessLogFilter(
                    response_flag_filter=accesslog_pb2.ResponseFlagFilter(
                        flags=list(NEVER_CONNECTED)
                    )
                ),
            ]
        )
    )
    if direction == INBOUND:
        # The destination's proxy connects upstream before the client's certificate,
        # which names the source, is known; it counts the connection when it ends.
        loggers = [(config(TCP_OPENED, TCP_CLOSED, TCP_SENT, TCP_RECEIVED), ended)]
    else:
        loggers = [
            (config(TCP_OPENED), log_types(accesslog_data_pb2.TcpUpstreamConnected)),
            (config(TCP_OPENED), never),
            (config(TCP_CLOSED, TCP_SENT, TCP_RECEIVED), ended),
        ]
    return [_access_log(c, f) for c, f in loggers if c.counters]


def sink_config(node_id: str) -> dict[str, Any]:
    """The bootstrap's stats sink (JSON form): OTLP to the control plane, Ami's metrics
    only, as deltas, the stream naming its proxy by `NODE_HEADER`."""
    stat_input = {
        "name": "stat_full_name",
        "typed_config": {
            "@type": "type.googleapis.com/"
            "envoy.extensions.matching.common_inputs.stats.v3.StatFullNameMatchInput"
        },
    }
    sink = "type.googleapis.com/envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig"
    matchers = [
        {
            "predicate": {
                "single_predicate": {
                    "input": stat_input,
                    # A tagged stat's full name is its name, then its tags.
                    "value_match": {"prefix": metric_name(d, m) + "."},
                }
            },
            "on_match": {
                "action": {
                    "name": "keep",
                    "typed_config": {
                        "@type": sink + ".ConversionAction",
                        "metric_name": metric_name(d, m),
                    },
                }
            },
        }
        for d in DIRECTIONS
        for m in METRICS
    ]
    return {
        "name": OTEL_SINK,
        "typed_config": {
            "@type": sink,
            "grpc_service": {
                "envoy_grpc": {"cluster_name": CONTROL_PLANE_CLUSTER},
                "initial_metadata": [{"key": NODE_HEADER, "value": node_id}],
            },
            "report_counters_as_deltas": True,
            "report_histograms_as_deltas": True,
            "custom_metric_conversions": {
                "matcher_list": {"matchers": matchers},
                "on_no_match": {
                    "action": {"name": "drop", "typed_config": {"@type": sink + ".DropAction"}}
                },
            },
        },
    }


def histogram_buckets() -> list[dict[str, Any]]:
    """The bootstrap's `histogram_bucket_settings` for Ami's histograms."""
    out = []
    for d in DIRECTIONS:
        for m in HTTP_METRICS:
            bounds = DURATION_BUCKETS if m == REQUEST_DURATION else BYTES_BUCKETS
            out.append({"match": {"prefix": metric_name(d, m) + "."}, "buckets": list(bounds)})
    return out


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
