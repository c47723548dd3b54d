"""What a proxy reports, from Telemetry resources: access log, tracing, metrics. Pure.

For each of `accessLogging`, `tracing` and `metrics`, three levels, the narrowest
Telemetry that sets that field deciding, as in Istio (`model.selection`):

- **workload**: a Telemetry in the proxy's namespace whose selector matches its labels;
- **namespace**: one without a selector (or with empty `matchLabels`) in its namespace;
- **mesh**: one without a selector in the root namespace, `istio-system`.

Where several Telemetries apply at one level, Ami takes the first by name, as for
PeerAuthentication (`model.mtls`). A Telemetry that sets only `tracing` does not
decide access logging, and so on. Unlike Istio, the deciding Telemetry decides the
whole field: a workload's `tracing` does not inherit sampling or tags from its
namespace's.

- **Access logging**: within the deciding Telemetry, the `accessLogging` entries for
  the `envoy` provider (those that name it, or name no provider) are read in order and
  the last one's `disabled` wins. Default: on (Istio turns it on with
  `meshConfig.accessLogFile`).
- **Tracing**: the `tracing` entries are read in order, each field set overriding the
  earlier ones (custom tags by name). Default: the OpenTelemetry provider, 1% of
  requests sampled (Istio's default), spans reported, no custom tags.
- **Metrics**: the `metrics` entries for `prometheus` (naming it, or no provider) are
  read in order, and within each its `overrides` in order: each turns the metrics it
  matches (one, or every one with no `match.metric` or `ALL_METRICS`) on or off for
  the sides its `mode` names (CLIENT, SERVER, both by default); the last one to speak
  of a (metric, side) wins. Default: every metric on. Its `tagOverrides` that remove
  a tag, or set one to a string literal, apply to the metrics it matches (the
  control plane applies them, `telemetry.metrics_receiver`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from amimesh.model import selection
from amimesh.resources import istio_telemetry as tel
from amimesh.resources.istio_telemetry import ENVOY_PROVIDER, PROMETHEUS_PROVIDER, Telemetry

DEFAULT_ACCESS_LOGGING = True
DEFAULT_TRACING_PROVIDER = "otel"
DEFAULT_SAMPLING_PERCENT = 1.0
DEFAULT_METRICS = True

# namespace -> that namespace's Telemetries that set accessLogging, tracing or metrics,
# by name.
TelemetryIndex = Mapping[str, tuple[Telemetry, ...]]
TagKind = Literal["literal", "environment", "header"]


def _sets_something(t: Telemetry) -> bool:
    return bool(t.spec.accessLogging or t.spec.tracing or t.spec.metrics)


def index(telemetries: Iterable[Telemetry]) -> dict[str, tuple[Telemetry, ...]]:
    """The Telemetries that set accessLogging, tracing or metrics, by namespace, each
    in name order."""
    return selection.by_namespace(telemetries, _sets_something)


def _deciding(
    idx: TelemetryIndex,
    namespace: str,
    labels: Mapping[str, str],
    sets: Callable[[Telemetry], bool],
) -> Telemetry | None:
    """The narrowest Telemetry for a proxy among those for which `sets` holds."""
    root = selection.ROOT_NAMESPACE
    narrowed = {
        namespace: tuple(t for t in idx.get(namespace, ()) if sets(t)),
        root: tuple(t for t in idx.get(root, ()) if sets(t)),
    }
    return selection.levels(narrowed, namespace, labels).narrowest()


# --- access logging --------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLogPolicy:
    """The Telemetry that decides a proxy's access logging; None: the default."""

    telemetry: Telemetry | None = None

    @property
    def enabled(self) -> bool:
        if self.telemetry is None:
            return DEFAULT_ACCESS_LOGGING
        enabled = DEFAULT_ACCESS_LOGGING
        for entry in self.telemetry.spec.accessLogging:
            providers = {p.name for p in entry.providers}
            if not providers or ENVOY_PROVIDER in providers:
                enabled = not entry.disabled
        return enabled


def access_log_policy(
    idx: TelemetryIndex, namespace: str, labels: Mapping[str, str]
) -> AccessLogPolicy:
    """The Telemetry that decides access logging for a proxy of `namespace` with `labels`."""
    return AccessLogPolicy(_deciding(idx, namespace, labels, lambda t: bool(t.spec.accessLogging)))


# --- tracing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceTag:
    """A custom tag on every span: a literal `value`, or the value of the environment
    variable or request header named `value` (`default` when it is absent)."""

    name: str
    kind: TagKind
    value: str
    default: str = ""


@dataclass(frozen=True)
class TracingPolicy:
    """How a proxy traces. `provider` is "otel" or "zipkin"; `sampling` the percentage
    of requests that start a trace (0-100); `reporting` False: no spans at all."""

    provider: str = DEFAULT_TRACING_PROVIDER
    sampling: float = DEFAULT_SAMPLING_PERCENT
    reporting: bool = True
    tags: tuple[TraceTag, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.reporting


def _tag(name: str, custom: tel.CustomTag) -> TraceTag | None:
    if custom.literal is not None:
        return TraceTag(name, "literal", custom.literal.value)
    if custom.environment is not None:
        env = custom.environment
        return TraceTag(name, "environment", env.name, env.defaultValue or "")
    if custom.header is not None:
        header = custom.header
        # HTTP header names are case-insensitive; Envoy keeps them lowercase.
        return TraceTag(name, "header", header.name.lower(), header.defaultValue or "")
    return None


def tracing_of(telemetry: Telemetry | None) -> TracingPolicy:
    """The tracing a Telemetry sets (the default when None), its entries in order."""
    policy = TracingPolicy()
    if telemetry is None:
        return policy
    provider, sampling, reporting = policy.provider, policy.sampling, policy.reporting
    tags: dict[str, TraceTag] = {}
    for entry in telemetry.spec.tracing:
        # A provider Ami does not serve keeps the tracer (`ami analyze` says so).
        if entry.providers and entry.providers[-1].name in tel.TRACING_PROVIDERS:
            provider = tel.provider_kind(entry.providers[-1].name)
        if entry.randomSamplingPercentage is not None:
            sampling = float(entry.randomSamplingPercentage)
        if entry.disableSpanReporting is not None:
            reporting = not entry.disableSpanReporting
        for name, custom in entry.customTags.items():
            tag = _tag(name, custom)
            if tag is not None:
                tags[name] = tag
    return TracingPolicy(
        provider=provider,
        sampling=sampling,
        reporting=reporting,
        tags=tuple(tags[k] for k in sorted(tags)),
    )


def tracing_policy(idx: TelemetryIndex, namespace: str, labels: Mapping[str, str]) -> TracingPolicy:
    """How a proxy of `namespace` with `labels` traces."""
    return tracing_of(_deciding(idx, namespace, labels, lambda t: bool(t.spec.tracing)))


# --- metrics ---------------------------------------------------------------------------


# Istio's standard metrics, and the sides that report them.
METRICS = (
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
)
CLIENT, SERVER = "CLIENT", "SERVER"
# The labels of Istio's standard metrics, which tag overrides can remove or set
# (`telemetry.labels.LABELS` orders them; a test keeps the two equal).
STANDARD_TAGS = frozenset(
    {
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
    }
)
SIDES = (CLIENT, SERVER)


@dataclass(frozen=True)
class TagRule:
    """A tag override Ami applies: on `metric` as `side` reports it, the label `tag`
    is removed (`value` None: Prometheus reads an empty label as absent) or set to
    `value`, a literal."""

    metric: str
    side: str
    tag: str
    value: str | None


@dataclass(frozen=True)
class MetricsPolicy:
    """Which of Istio's metrics a proxy reports: `off` holds the (metric, side) pairs
    turned off, side CLIENT being what it reports as the caller (`reporter=source`),
    SERVER as the callee (`reporter=destination`); `tags`, the tag overrides it
    applies (`literal_value` says which)."""

    off: frozenset[tuple[str, str]] = frozenset()
    tags: tuple[TagRule, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether it reports any metric at all."""
        return len(self.off) < len(METRICS) * len(SIDES)

    def reports(self, metric: str, side: str) -> bool:
        return (metric, side) not in self.off

    def overrides(self, metric: str, side: str) -> dict[str, str | None]:
        """Label -> value (None: removed) of the tag overrides on `metric`, `side`."""
        return {r.tag: r.value for r in self.tags if r.metric == metric and r.side == side}


def literal_value(expression: str) -> str | None:
    """The string a CEL expression is when it is a plain string literal (`'v'` or
    `"v"`, no escapes); None for any other expression."""
    text = expression.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if text[0] not in inner and "\\" not in inner:
            return inner
    return None


def metrics_of(telemetry: Telemetry | None) -> MetricsPolicy:
    """The metrics a Telemetry turns off (none when None) and the tag overrides it
    applies: its `metrics` entries for `prometheus` (naming it, or no provider) in
    order, each override in order, the last that speaks of a (metric, side) - or a
    (metric, side, tag) - deciding it, as in Istio. A tag override applies when it
    removes a tag or sets it to a string literal."""
    off: set[tuple[str, str]] = set()
    tags: dict[tuple[str, str, str], str | None] = {}
    if telemetry is None:
        return MetricsPolicy()
    for entry in telemetry.spec.metrics:
        providers = {p.name for p in entry.providers}
        if providers and PROMETHEUS_PROVIDER not in providers:
            continue
        for override in entry.overrides:
            match = override.match
            metric = match.metric if match is not None else None
            mode = match.mode if match is not None else None
            metrics = METRICS if metric in (None, tel.ALL_METRICS) else (metric,)
            sides = SIDES if mode in (None, "CLIENT_AND_SERVER") else (mode,)
            pairs = {(m, side) for m in metrics for side in sides}
            if override.disabled is not None:
                if override.disabled:
                    off |= pairs
                else:
                    off -= pairs
            for tag, op in override.tagOverrides.items():
                value = None if op.operation == "REMOVE" else literal_value(op.value or "")
                if op.operation == "UPSERT" and value is None:
                    continue  # an expression Ami cannot evaluate (`ami analyze` says so)
                for m, side in pairs:
                    tags[(m, side, tag)] = value
    rules = tuple(TagRule(m, side, tag, v) for (m, side, tag), v in sorted(tags.items()))
    return MetricsPolicy(frozenset(off), rules)


def metrics_policy(idx: TelemetryIndex, namespace: str, labels: Mapping[str, str]) -> MetricsPolicy:
    """Which metrics a proxy of `namespace` with `labels` reports."""
    return metrics_of(_deciding(idx, namespace, labels, lambda t: bool(t.spec.metrics)))
