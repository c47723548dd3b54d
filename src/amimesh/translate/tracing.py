"""Proxy × Telemetry → the tracing of its HTTP connection managers.

`config` says how a proxy traces (None: it does not); `hcm_tracing` turns that into
the `tracing` block of one connection manager of a direction (`inbound` or `outbound`;
Envoy takes the span kind from the listener's direction: server spans inbound, client
spans outbound and on gateways).

Two tracers, as the deciding Telemetry's provider says (`model.telemetry`):

- **otel** (default): Envoy's OpenTelemetry tracer. It reads and writes W3C trace
  context (`traceparent`, `tracestate`) only: Envoy 1.40's `OpenTelemetryConfig` has no
  propagator setting. Spans go by OTLP/gRPC to the control plane through the static
  cluster every bootstrap has (`CONTROL_PLANE_CLUSTER`), named after the workload's
  `app` label (else the workload; a gateway: its workload).
- **zipkin**: Envoy's Zipkin tracer, for B3: it reads B3 headers (`x-b3-*`, `b3`), else
  W3C, and writes both (`USE_B3_WITH_W3C_PROPAGATION`). Spans go as Zipkin v2 JSON to
  the control plane's span receiver through the static cluster `ZIPKIN_CLUSTER` (the
  bootstrap has it when the runtime gives it the receiver's port). Each hop gets its
  own span id (`shared_span_context: false`), as with the OpenTelemetry tracer.

Both sample `sampling` percent of the requests that come without a sampling decision;
a request that carries one (a `traceparent` flag, `x-b3-sampled`) keeps it. The proxy
is one span per request and direction: no separate upstream span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from envoy.config.core.v3 import grpc_service_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.tracing.v3 import custom_tag_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.model.telemetry import TraceTag, TracingPolicy
from amimesh.translate.names import CONTROL_PLANE_CLUSTER

HcmTracing: TypeAlias = hcm_pb2.HttpConnectionManager.Tracing

OTEL_TRACER = "envoy.tracers.opentelemetry"
ZIPKIN_TRACER = "envoy.tracers.zipkin"
# The static cluster that reaches the control plane's Zipkin span receiver (HTTP).
ZIPKIN_CLUSTER = "ami-telemetry-http"
ZIPKIN_PATH = "/api/v2/spans"


@dataclass(frozen=True)
class TracingConfig:
    """How a proxy traces its requests: with tracer `provider` ("otel" or "zipkin"),
    starting a trace for `sampling` percent of requests, spans named after
    `service_name`, with `tags` on each."""

    provider: str
    sampling: float
    service_name: str
    tags: tuple[TraceTag, ...] = ()


def service_name(proxy: Proxy) -> str:
    """The service a proxy's spans name: its `app` label, else its workload (a
    gateway: its workload), else its id."""
    if proxy.kind == "gateway":
        return proxy.workload or proxy.id
    return proxy.labels.get("app") or proxy.workload or proxy.id


def config(snap: Snapshot, proxy: Proxy) -> TracingConfig | None:
    """How `proxy` traces; None when it does not (span reporting turned off)."""
    return config_for(proxy, snap.tracing_policy(proxy.namespace, proxy.labels))


def config_for(proxy: Proxy, policy: TracingPolicy) -> TracingConfig | None:
    """`config` under the Telemetry `policy` that applies to `proxy`."""
    if not policy.enabled:
        return None
    return TracingConfig(
        provider=policy.provider,
        sampling=policy.sampling,
        service_name=service_name(proxy),
        tags=policy.tags,
    )


def custom_tag(tag: TraceTag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=tag.name)
    if tag.kind == "literal":
        out.literal.value = tag.value
    elif tag.kind == "environment":
        out.environment.name = tag.value
        out.environment.default_value = tag.default
    else:
        out.request_header.name = tag.value
        out.request_header.default_value = tag.default
    return out


def otel_provider(name: str) -> http_tracer_pb2.Tracing.Http:
    """Envoy's OpenTelemetry tracer, exporting by OTLP/gRPC to the control plane."""
    cfg = opentelemetry_pb2.OpenTelemetryConfig(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=CONTROL_PLANE_CLUSTER)
        ),
        service_name=name,
    )
    typed = any_pb2.Any()
    typed.Pack(cfg)
    return http_tracer_pb2.Tracing.Http(name=OTEL_TRACER, typed_config=typed)


def zipkin_provider() -> http_tracer_pb2.Tracing.Http:
    """Envoy's Zipkin tracer: B3 and W3C headers, spans as JSON to the control plane."""
    cfg = zipkin_pb2.ZipkinConfig(
        collector_cluster=ZIPKIN_CLUSTER,
        collector_endpoint=ZIPKIN_PATH,
        collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
        trace_id_128bit=True,
        trace_context_option=zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION,
    )
    cfg.shared_span_context.value = False
    typed = any_pb2.Any()
    typed.Pack(cfg)
    return http_tracer_pb2.Tracing.Http(name=ZIPKIN_TRACER, typed_config=typed)


def hcm_tracing(cfg: TracingConfig, proxy: Proxy, direction: str) -> HcmTracing | None:
    """The `tracing` of one connection manager of `proxy` in `direction` under `cfg`."""
    provider = zipkin_provider() if cfg.provider == "zipkin" else otel_provider(cfg.service_name)
    out = HcmTracing(
        random_sampling=percent_pb2.Percent(value=cfg.sampling),
        client_sampling=percent_pb2.Percent(value=100.0),
        overall_sampling=percent_pb2.Percent(value=100.0),
        custom_tags=[custom_tag(t) for t in cfg.tags],
        provider=provider,
    )
    out.spawn_upstream_span.value = False
    return out
