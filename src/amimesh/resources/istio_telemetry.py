"""Istio's `Telemetry` (telemetry.istio.io v1alpha1, v1): access logging, tracing and
turning metrics off.

A Telemetry with a selector applies to the workloads of its namespace whose labels
match; without one, to its namespace; in the root namespace (`istio-system`), to the
whole mesh. For each of `accessLogging`, `tracing` and `metrics`, the narrowest
Telemetry that sets it decides (`model.telemetry`). Without any, every proxy writes an
access log (Ami's default; Istio's is off), traces 1% of requests with the OpenTelemetry
provider (Istio's default sampling) and reports metrics.

Providers Ami serves by name: `envoy` for access logs (Envoy's file access log), `otel`
or `opentelemetry` (W3C trace context) and `zipkin` (B3 and W3C trace context) for
tracing, `prometheus` for metrics. Any other name (`otel` for access logs, a provider
a mesh config's `extensionProviders` would define) is accepted, as Istio accepts the
name of a provider it does not find, and what names it is ignored; `ami analyze` says
so. A metrics override turns metrics off one by one and per side (`mode`); of its
`tagOverrides`, removing a standard label or setting one to a string literal applies,
the rest is accepted and not applied (`ami analyze` says so). What Istio
defines and Ami does not implement otherwise (`filter`, `match`, ...) is an error that
says so, never silently ignored.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from amimesh.resources.fields import NOT_SUPPORTED_MESSAGE, NotSupported, Strict, show
from amimesh.resources.istio_security import WorkloadSelector
from amimesh.resources.meta import Resource

TELEMETRY_VERSIONS = ("v1alpha1", "v1")
ENVOY_PROVIDER = "envoy"
# Tracing providers: the OpenTelemetry tracer (W3C traceparent/tracestate), under either
# of Istio's usual names, and the Zipkin tracer (B3 headers, and W3C as well).
OTEL_PROVIDERS = ("otel", "opentelemetry")
ZIPKIN_PROVIDER = "zipkin"
TRACING_PROVIDERS = (*OTEL_PROVIDERS, ZIPKIN_PROVIDER)
PROMETHEUS_PROVIDER = "prometheus"
ALL_METRICS = "ALL_METRICS"


def _named(value: str, known: tuple[str, ...], what: str) -> str:
    if not value:
        raise ValueError(f"must name a provider, such as {show(known[0])}")
    if value not in known:
        names = ", ".join(show(k) for k in known)
        raise ValueError(f"{show(value)} {NOT_SUPPORTED_MESSAGE}: the {what} providers are {names}")
    return value


def _provider_name(value: str) -> str:
    if not value or len(value) > 253 or any(c.isspace() for c in value):
        raise ValueError(f"must name a provider (no spaces), got {show(value)}")
    return value


class ProviderRef(Strict):
    name: str = Field(
        description='"envoy" (Envoy\'s file access log); any other name is accepted and '
        "its entries ignored (`ami analyze` says so)"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _provider_name(value)


class AccessLogging(Strict):
    providers: list[ProviderRef] = Field(
        default_factory=list, description='empty: the default provider, "envoy"'
    )
    disabled: bool | None = Field(default=None, description="true: no access log")
    filter: NotSupported = None
    match: NotSupported = None


class TracingProviderRef(Strict):
    name: str = Field(
        description='"otel" or "opentelemetry" (W3C trace context), or "zipkin" (B3 and W3C); '
        "any other name is accepted and the default tracer kept (`ami analyze` says so)"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _provider_name(value)


class LiteralTag(Strict):
    value: str = Field(min_length=1)


class EnvironmentTag(Strict):
    name: str = Field(min_length=1, description="an environment variable of the proxy's Envoy")
    defaultValue: str | None = None


class HeaderTag(Strict):
    name: str = Field(min_length=1, description="a request header")
    defaultValue: str | None = None


class CustomTag(Strict):
    """Exactly one of `literal`, `environment`, `header` (`checks_telemetry`)."""

    literal: LiteralTag | None = None
    environment: EnvironmentTag | None = None
    header: HeaderTag | None = None


class Tracing(Strict):
    providers: list[TracingProviderRef] = Field(
        default_factory=list, description='at most one; empty: the default provider, "otel"'
    )
    randomSamplingPercentage: float | None = Field(
        default=None, ge=0, le=100, description="empty: 1 (Istio's default)"
    )
    disableSpanReporting: bool | None = Field(default=None, description="true: no spans")
    customTags: dict[str, CustomTag] = Field(
        default_factory=dict, description="tag name: literal, environment or header"
    )
    match: NotSupported = None
    useRequestIdForTraceSampling: NotSupported = None


class MetricsProviderRef(Strict):
    name: str = Field(description='"prometheus"; no other yet')

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _named(value, (PROMETHEUS_PROVIDER,), "metrics")


IstioMetric = Literal[
    "ALL_METRICS",
    "REQUEST_COUNT",
    "REQUEST_DURATION",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS",
    "TCP_CLOSED_CONNECTIONS",
    "TCP_SENT_BYTES",
    "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",
    "GRPC_RESPONSE_MESSAGES",
]
WorkloadMode = Literal["CLIENT_AND_SERVER", "CLIENT", "SERVER"]


class MetricSelector(Strict):
    metric: IstioMetric | None = Field(default=None, description="unset: every metric")
    mode: WorkloadMode | None = Field(
        default=None,
        description="CLIENT: what a proxy reports as the caller (reporter=source); SERVER: "
        "as the callee (reporter=destination); unset: both",
    )
    customMetric: NotSupported = None


class TagOverride(Strict):
    operation: Literal["UPSERT", "REMOVE"] = "UPSERT"
    value: str | None = Field(default=None, description="UPSERT: a CEL expression")


class MetricsOverride(Strict):
    match: MetricSelector | None = Field(default=None, description="empty: every metric")
    disabled: bool | None = Field(
        default=None, description="true: the matched metrics are not reported"
    )
    tagOverrides: dict[str, TagOverride] = Field(
        default_factory=dict,
        description="REMOVE of a standard label, and UPSERT of one to a string literal, "
        "apply; other expressions and new labels are accepted and not applied (`ami "
        "analyze` says so)",
    )


class Metrics(Strict):
    providers: list[MetricsProviderRef] = Field(
        default_factory=list, description='empty: the default provider, "prometheus"'
    )
    overrides: list[MetricsOverride] = Field(default_factory=list)
    reportingInterval: NotSupported = None


class TelemetrySpec(Strict):
    selector: WorkloadSelector | None = None
    accessLogging: list[AccessLogging] = Field(default_factory=list)
    tracing: list[Tracing] = Field(default_factory=list)
    metrics: list[Metrics] = Field(default_factory=list)
    targetRef: NotSupported = None
    targetRefs: NotSupported = None


class Telemetry(Resource):
    KIND: ClassVar[str] = "Telemetry"
    API_GROUP: ClassVar[str] = "telemetry.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = TELEMETRY_VERSIONS
    spec: TelemetrySpec = Field(default_factory=TelemetrySpec)


def provider_kind(name: str) -> str:
    """The tracer a tracing provider name means: "otel" (for "otel" and
    "opentelemetry") or "zipkin"."""
    return "otel" if name in OTEL_PROVIDERS else name
