"""The OTLP modules the trace collector uses coexist with xds-protos' copy of them.

`xds-protos` ships `opentelemetry/proto/...` (what Envoy's own protos import) at the
same paths as `opentelemetry-proto`; whichever was installed last owns the files. Both
must import together in one process (one protobuf descriptor pool), and the messages
must have the fields the collector reads and writes.
"""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

SHARED = (
    "opentelemetry.proto.common.v1.common_pb2",
    "opentelemetry.proto.resource.v1.resource_pb2",
    "opentelemetry.proto.trace.v1.trace_pb2",
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
)


def test_envoy_and_otlp_modules_import_together() -> None:
    # Envoy's messages that depend on OpenTelemetry's protos, then the collector's.
    from envoy.config.trace.v3 import opentelemetry_pb2
    from envoy.extensions.access_loggers.open_telemetry.v3 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    assert "grpc_service" in opentelemetry_pb2.OpenTelemetryConfig.DESCRIPTOR.fields_by_name
    assert logs_service_pb2.OpenTelemetryAccessLogConfig.DESCRIPTOR is not None
    assert hasattr(trace_service_pb2_grpc, "add_TraceServiceServicer_to_server")
    assert hasattr(trace_service_pb2_grpc, "TraceServiceStub")
    service = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
    assert service.methods_by_name["Export"].input_type.full_name == (
        "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"
    )


def test_envoy_opentelemetry_config_has_no_propagators() -> None:
    """Envoy 1.40's OpenTelemetry tracer propagates W3C trace context only; B3 needs the
    Zipkin tracer (see docs/observability.md)."""
    from envoy.config.trace.v3 import opentelemetry_pb2, zipkin_pb2

    fields = set(opentelemetry_pb2.OpenTelemetryConfig.DESCRIPTOR.fields_by_name)
    assert "propagators" not in fields
    assert {"grpc_service", "service_name"} <= fields
    options = zipkin_pb2.ZipkinConfig.TraceContextOption.keys()
    assert "USE_B3_WITH_W3C_PROPAGATION" in options


@pytest.mark.parametrize("module", SHARED)
def test_shared_module_is_one_of_the_two_copies(module: str) -> None:
    """Each shared module is importable and its file is the one some installed
    distribution recorded (not a half-overwritten mix)."""
    mod = importlib.import_module(module)
    path = module.replace(".", "/") + ".py"
    owners = []
    for dist in ("opentelemetry-proto", "xds-protos"):
        files = importlib.metadata.distribution(dist).files or []
        owners += [dist for f in files if str(f) == path]
    assert owners, f"{path} belongs to no installed distribution"
    assert mod.__file__ is not None and mod.__file__.endswith(path)


def test_messages_have_the_fields_the_collector_reads() -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    request = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR
    assert "resource_spans" in request.fields_by_name
    resource_spans = trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name
    assert {"resource", "scope_spans"} <= set(resource_spans)
    assert "spans" in trace_pb2.ScopeSpans.DESCRIPTOR.fields_by_name
    span = set(trace_pb2.Span.DESCRIPTOR.fields_by_name)
    assert {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "attributes",
        "status",
    } <= span
    assert set(trace_pb2.Span.SpanKind.keys()) >= {"SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"}
    assert set(trace_pb2.Status.StatusCode.keys()) == {
        "STATUS_CODE_UNSET",
        "STATUS_CODE_OK",
        "STATUS_CODE_ERROR",
    }
    any_value = set(common_pb2.AnyValue.DESCRIPTOR.fields_by_name)
    assert {"string_value", "bool_value", "int_value", "double_value"} <= any_value
