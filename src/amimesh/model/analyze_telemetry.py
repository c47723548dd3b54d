"""`ami analyze` checks of Telemetry: what Ami accepts with Istio's meaning but cannot
honour on its proxies, said rather than silently dropped.

- an access log provider other than `envoy` (Istio's `otel` provider, or a name a mesh
  config's `extensionProviders` would define): Ami writes access logs to its file log
  only, so entries for that provider change nothing;
- a tracing provider other than `otel`, `opentelemetry` and `zipkin`: the proxy keeps
  its tracer; the entry's sampling and tags still apply;
- a metrics tag override Ami does not apply: a value that is not a string literal (a
  CEL expression over request attributes), or a tag that is not one of Istio's
  standard labels (Ami adds no labels); and overrides that differ between
  REQUEST_COUNT and REQUEST_DURATION (one histogram carries both);
- REQUEST_COUNT turned off without REQUEST_DURATION (or the reverse) for one side:
  Ami counts requests in the duration histogram, so both stay;
- GRPC_REQUEST_MESSAGES and GRPC_RESPONSE_MESSAGES: Ami does not count gRPC messages.
"""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.model import telemetry
from amimesh.model.analyze_findings import TELEMETRY_FIELD_IGNORED, Finding, finding
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_telemetry as tel

_NOT_COUNTED = ("GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES")


def telemetry_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if isinstance(r, tel.Telemetry):
            yield from _access_logging(r)
            yield from _tracing(r)
            yield from _metrics(r)


def _access_logging(t: tel.Telemetry) -> Iterator[Finding]:
    for i, entry in enumerate(t.spec.accessLogging):
        for j, p in enumerate(entry.providers):
            if p.name == tel.ENVOY_PROVIDER:
                continue
            yield finding(
                TELEMETRY_FIELD_IGNORED,
                t,
                f"spec.accessLogging[{i}].providers[{j}].name",
                f'access log provider "{p.name}" is ignored: Ami writes access logs with its '
                '"envoy" provider only (a file per proxy, also read by `ami logs`)',
                'name "envoy", or leave providers empty for the default',
            )


def _tracing(t: tel.Telemetry) -> Iterator[Finding]:
    for i, entry in enumerate(t.spec.tracing):
        for j, p in enumerate(entry.providers):
            if p.name in tel.TRACING_PROVIDERS:
                continue
            yield finding(
                TELEMETRY_FIELD_IGNORED,
                t,
                f"spec.tracing[{i}].providers[{j}].name",
                f'tracing provider "{p.name}" is not one Ami serves (Ami reads no mesh config '
                "extensionProviders): the proxy keeps its tracer; this entry's sampling, tags "
                "and disableSpanReporting still apply",
                'name "otel" (or "opentelemetry") or "zipkin"; Ami forwards traces with '
                "`ami up --trace-forward`",
            )


def _metrics(t: tel.Telemetry) -> Iterator[Finding]:
    for i, entry in enumerate(t.spec.metrics):
        for j, override in enumerate(entry.overrides):
            where = f"spec.metrics[{i}].overrides[{j}]"
            for tag, op in override.tagOverrides.items():
                at = f"{where}.tagOverrides[{tag}]"
                if tag not in telemetry.STANDARD_TAGS:
                    yield finding(
                        TELEMETRY_FIELD_IGNORED,
                        t,
                        at,
                        f'is not applied: "{tag}" is not one of Istio\'s standard labels, and '
                        "Ami's metrics carry those only",
                        "relabel where the metrics are scraped",
                    )
                elif op.operation == "UPSERT" and telemetry.literal_value(op.value or "") is None:
                    yield finding(
                        TELEMETRY_FIELD_IGNORED,
                        t,
                        f"{at}.value",
                        f"is not applied: {op.value} is an expression Ami cannot evaluate; "
                        "only string literals ('v') are",
                        "set a literal, or relabel where the metrics are scraped",
                    )
            metric = override.match.metric if override.match is not None else None
            if metric in _NOT_COUNTED and override.disabled is not None:
                yield finding(
                    TELEMETRY_FIELD_IGNORED,
                    t,
                    f"{where}.match.metric",
                    f"{metric} changes nothing: Ami does not count gRPC messages",
                    "remove the override",
                )
    policy = telemetry.metrics_of(t)
    for side in telemetry.SIDES:
        if policy.overrides("REQUEST_COUNT", side) != policy.overrides("REQUEST_DURATION", side):
            yield finding(
                TELEMETRY_FIELD_IGNORED,
                t,
                "spec.metrics",
                f"tag overrides differ between REQUEST_COUNT and REQUEST_DURATION on the {side} "
                "side: Ami counts requests in the duration histogram, so only the overrides "
                "both share apply to it",
                "give REQUEST_COUNT and REQUEST_DURATION the same tag overrides",
            )
        count = policy.reports("REQUEST_COUNT", side)
        duration = policy.reports("REQUEST_DURATION", side)
        if count != duration:
            on, off = (
                ("REQUEST_COUNT", "REQUEST_DURATION")
                if count
                else (
                    "REQUEST_DURATION",
                    "REQUEST_COUNT",
                )
            )
            yield finding(
                TELEMETRY_FIELD_IGNORED,
                t,
                "spec.metrics",
                f"{off} is still reported on the {side} side: Ami counts requests in the "
                f"duration histogram, which stays while {on} is on",
                "turn REQUEST_COUNT and REQUEST_DURATION off together",
            )
