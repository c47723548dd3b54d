"""Telemetry tracing and metrics: validation (golden errors), which Telemetry decides,
the Envoy tracing each proxy gets (OpenTelemetry or Zipkin, sampling, custom tags), the
metrics stream turned off, re-translation on change, and envoy validate."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from envoy.config.trace.v3 import opentelemetry_pb2, zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model import telemetry
from amimesh.model.proxy import GatewayPort, InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, gateway_listeners, listeners, metrics_log, scope, tracing
from amimesh.translate.built import LISTENER
from amimesh.translate.generate import Generator


def tel(name: str, namespace: str, spec: str) -> str:
    head = (
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
    )
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


def snapshot(*texts: str) -> Snapshot:
    result = parse_documents("\n---\n".join(texts), "t.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources)


# --- validation ------------------------------------------------------------------------

BAD: list[tuple[str, str, list[str]]] = [
    (
        "empty provider, sampling range, match",
        """\
        tracing:
        - providers: [{name: ""}]
          randomSamplingPercentage: 101
          match: {mode: CLIENT}
          useRequestIdForTraceSampling: true
        """,
        [
            'spec.tracing[0].providers[0].name: must name a provider (no spaces), got ""',
            "spec.tracing[0].randomSamplingPercentage: must be at most 100, got 101",
            "spec.tracing[0].match: is not supported by Ami yet",
            "spec.tracing[0].useRequestIdForTraceSampling: is not supported by Ami yet",
        ],
    ),
    (
        "one provider per proxy",
        """\
        tracing:
        - providers: [{name: otel}, {name: zipkin}]
        - providers: [{name: opentelemetry}]
        """,
        [
            "spec.tracing[0].providers: names 2 providers; a proxy traces with one at most",
            'spec.tracing[0].providers[1].name: "zipkin" differs from the provider an '
            "earlier entry names; a proxy traces with one provider",
        ],
    ),
    (
        "custom tags",
        """\
        tracing:
        - customTags:
            none: {}
            both: {literal: {value: x}, header: {name: x-a}}
            bad-header: {header: {name: "X A"}}
            upper: {header: {name: X-User}}  # accepted: read as x-user
            env: {environment: {name: "1BAD"}}
        """,
        [
            "spec.tracing[0].customTags.none: must set exactly one of literal, "
            "environment, header; got none",
            "spec.tracing[0].customTags.both: must set exactly one of literal, "
            "environment, header; got literal, header",
            'spec.tracing[0].customTags.bad-header.header.name: "X A" is not a valid HTTP '
            "header name",
            'spec.tracing[0].customTags.env.environment.name: "1BAD" is not an environment '
            "variable name",
        ],
    ),
    (
        "metrics: prometheus only, tag overrides, custom metrics",
        """\
        metrics:
        - providers: [{name: stackdriver}]
          reportingInterval: 5s
          overrides:
          - match: {metric: REQUEST_COUNT, mode: CLIENT}
            disabled: true
          - match: {metric: REQUEST_SIZES}
          - match: {customMetric: foo}
        """,
        [
            'spec.metrics[0].providers[0].name: "stackdriver" is not supported by Ami yet: '
            'the metrics providers are "prometheus"',
            'spec.metrics[0].overrides[1].match.metric: must be one of "ALL_METRICS", '
            '"REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE", '
            '"TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", '
            '"TCP_RECEIVED_BYTES", "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES", '
            'got "REQUEST_SIZES"',
            "spec.metrics[0].overrides[2].match.customMetric: is not supported by Ami yet",
            "spec.metrics[0].reportingInterval: is not supported by Ami yet",
        ],
    ),
    (
        "tag overrides: UPSERT has a value, REMOVE none",
        """\
        metrics:
        - overrides:
          - tagOverrides: {x: {value: y}, gone: {operation: REMOVE, value: z}, up: {}}
        """,
        [
            "spec.metrics[0].overrides[0].tagOverrides.gone.value: must not be set with "
            "operation REMOVE",
            "spec.metrics[0].overrides[0].tagOverrides.up.value: is required with operation UPSERT",
        ],
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_invalid(spec: str, expected: list[str]) -> None:
    result = parse_documents(tel("a", "shop", spec), "t.yaml")
    prefix = "t.yaml: document 0 (line 1): Telemetry/shop/a: "
    assert sorted(str(e) for e in result.errors) == sorted(prefix + e for e in expected)


def test_valid_forms() -> None:
    snap = snapshot(
        tel(
            "a",
            "shop",
            """\
            tracing:
            - providers: [{name: opentelemetry}]
              randomSamplingPercentage: 12.5
              disableSpanReporting: false
              customTags:
                team: {literal: {value: shop}}
                pod: {environment: {name: POD_NAME, defaultValue: unknown}}
                user: {header: {name: end-user}}
            metrics:
            - providers: [{name: prometheus}]
              overrides: [{match: {metric: ALL_METRICS, mode: CLIENT_AND_SERVER}, disabled: true}]
            """,
        )
    )
    policy = snap.tracing_policy("shop", {})
    assert policy == telemetry.TracingPolicy(
        provider="otel",
        sampling=12.5,
        reporting=True,
        tags=(
            telemetry.TraceTag("pod", "environment", "POD_NAME", "unknown"),
            telemetry.TraceTag("team", "literal", "shop"),
            telemetry.TraceTag("user", "header", "end-user"),
        ),
    )
    assert not snap.metrics_policy("shop", {}).enabled


# --- which Telemetry decides -----------------------------------------------------------

WEB = "selector: {matchLabels: {app: web}}\n"


def test_defaults() -> None:
    snap = snapshot()
    policy = snap.tracing_policy("shop", {"app": "web"})
    assert (policy.provider, policy.sampling, policy.enabled, policy.tags) == (
        "otel",
        1.0,
        True,
        (),
    )
    assert telemetry.DEFAULT_SAMPLING_PERCENT == 1.0
    assert snap.metrics_policy("shop", {"app": "web"}).enabled
    # Telemetries that set other things do not decide tracing or metrics.
    other = snapshot(tel("m", "istio-system", "accessLogging: [{disabled: true}]\n"))
    assert other.tracing_policy("shop", {}) == telemetry.TracingPolicy()
    assert other.metrics_policy("shop", {}) == telemetry.MetricsPolicy()


def test_workload_over_namespace_over_mesh() -> None:
    mesh = tel("m", "istio-system", "tracing: [{randomSamplingPercentage: 100}]\n")
    ns = tel("n", "shop", "tracing: [{providers: [{name: zipkin}]}]\n")
    web = tel("w", "shop", WEB + "tracing: [{disableSpanReporting: true}]\n")
    snap = snapshot(mesh, ns, web)
    assert not snap.tracing_policy("shop", {"app": "web"}).enabled
    # The namespace's decides alone: its sampling is the default, not the mesh's.
    assert snap.tracing_policy("shop", {"app": "api"}) == telemetry.TracingPolicy(provider="zipkin")
    assert snap.tracing_policy("other", {"app": "web"}).sampling == 100.0
    # Metrics decide on their own.
    off = tel("o", "shop", "metrics: [{overrides: [{disabled: true}]}]\n")
    snap = snapshot(mesh, off)
    assert not snap.metrics_policy("shop", {}).enabled
    assert snap.metrics_policy("other", {}).enabled
    assert snap.tracing_policy("shop", {}).sampling == 100.0


def test_entries_merge_in_order() -> None:
    spec = """\
    tracing:
    - randomSamplingPercentage: 5
      customTags: {a: {literal: {value: "1"}}, b: {literal: {value: "2"}}}
    - customTags: {a: {literal: {value: "3"}}}
      disableSpanReporting: true
    - disableSpanReporting: false
    metrics:
    - overrides: [{disabled: true}]
    - providers: [{name: prometheus}]
      overrides: [{match: {metric: ALL_METRICS}, disabled: false}]
    """
    snap = snapshot(tel("n", "shop", spec))
    policy = snap.tracing_policy("shop", {})
    assert policy.sampling == 5.0 and policy.enabled
    assert [(t.name, t.value) for t in policy.tags] == [("a", "3"), ("b", "2")]
    assert snap.metrics_policy("shop", {}).enabled


def test_policies_compare_equal_when_unchanged() -> None:
    text = tel("n", "shop", "tracing: [{randomSamplingPercentage: 50}]\n")
    a, b = snapshot(text), snapshot(text)
    assert a.tracing_policy("shop", {}) == b.tracing_policy("shop", {})
    assert a.metrics_policy("shop", {}) == b.metrics_policy("shop", {})


# --- translation -----------------------------------------------------------------------

PROXY = Proxy(
    id="reviews-v1-0.shop",
    workload="reviews-v1",
    namespace="shop",
    labels={"app": "reviews", "version": "v1"},
    outbound_port=15001,
    inbound=(InboundPort(port=9080, listen_port=15006, app_port=9081, name="http"),),
)
GATEWAY = Proxy(
    id="gw.istio-system",
    kind="gateway",
    workload="istio-ingressgateway",
    namespace="istio-system",
    labels={"istio": "ingressgateway", "app": "istio-ingressgateway"},
    gateway_ports=(GatewayPort(port=80, listen_port=18080),),
)
GATEWAY_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def hcms(lis: list[Any]) -> dict[str, Any]:
    out = {}
    for item in lis:
        f = item.filter_chains[0].filters[-1]
        if f.name != listeners.HCM_FILTER:
            continue
        m = hcm_pb2.HttpConnectionManager()
        assert f.typed_config.Unpack(m)
        out[item.name] = m
    return out


def test_otel_tracing_on_every_http_listener() -> None:
    spec = """\
    tracing:
    - randomSamplingPercentage: 25
      customTags:
        team: {literal: {value: shop}}
        user: {header: {name: end-user, defaultValue: guest}}
        pod: {environment: {name: POD_NAME}}
    """
    found = hcms(listeners.listeners(snapshot(tel("n", "shop", spec)), PROXY))
    assert set(found) == {"outbound", "inbound|9080"}
    for m in found.values():
        t = m.tracing
        assert t.random_sampling.value == 25.0
        assert t.client_sampling.value == 100.0 and t.overall_sampling.value == 100.0
        assert t.HasField("spawn_upstream_span") and not t.spawn_upstream_span.value
        assert t.provider.name == "envoy.tracers.opentelemetry"
        cfg = opentelemetry_pb2.OpenTelemetryConfig()
        assert t.provider.typed_config.Unpack(cfg)
        assert cfg.service_name == "reviews"
        assert cfg.grpc_service.envoy_grpc.cluster_name == "xds-grpc"
        tags = [json_format.MessageToDict(c) for c in t.custom_tags]
        assert tags == [
            {"tag": "pod", "environment": {"name": "POD_NAME"}},
            {"tag": "team", "literal": {"value": "shop"}},
            {"tag": "user", "requestHeader": {"name": "end-user", "defaultValue": "guest"}},
        ]


def test_default_samples_one_percent_and_gateway_names_its_workload() -> None:
    found = hcms(gateway_listeners.listeners(snapshot(GATEWAY_YAML), GATEWAY))
    (m,) = found.values()
    assert m.tracing.random_sampling.value == 1.0
    cfg = opentelemetry_pb2.OpenTelemetryConfig()
    assert m.tracing.provider.typed_config.Unpack(cfg)
    assert cfg.service_name == "istio-ingressgateway"
    bare = Proxy(id="x.shop", workload="x", namespace="shop")
    assert tracing.service_name(bare) == "x"
    assert tracing.service_name(Proxy(id="y.shop")) == "y.shop"


def test_zipkin_reads_b3_and_w3c() -> None:
    snap = snapshot(tel("n", "shop", "tracing: [{providers: [{name: zipkin}]}]\n"))
    for m in hcms(listeners.listeners(snap, PROXY)).values():
        assert m.tracing.provider.name == "envoy.tracers.zipkin"
        cfg = zipkin_pb2.ZipkinConfig()
        assert m.tracing.provider.typed_config.Unpack(cfg)
        assert cfg.collector_cluster == bs.TELEMETRY_HTTP_CLUSTER == "ami-telemetry-http"
        assert cfg.collector_endpoint == "/api/v2/spans"
        assert cfg.collector_endpoint_version == zipkin_pb2.ZipkinConfig.HTTP_JSON
        assert cfg.trace_context_option == zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION
        assert cfg.trace_id_128bit
        assert cfg.HasField("shared_span_context") and not cfg.shared_span_context.value


def test_span_reporting_off_means_no_tracing_and_metrics_off_no_stats_logger() -> None:
    spec = """\
    tracing: [{disableSpanReporting: true}]
    metrics: [{overrides: [{disabled: true}]}]
    """
    for m in hcms(listeners.listeners(snapshot(tel("n", "shop", spec)), PROXY)).values():
        assert not m.HasField("tracing")
        assert metrics_log.STATS_LOGGER not in {log.name for log in m.access_log}
    for m in hcms(listeners.listeners(snapshot(), PROXY)).values():
        assert metrics_log.STATS_LOGGER in {log.name for log in m.access_log}


def test_generator_translates_again_when_tracing_or_metrics_change() -> None:
    base = snapshot()
    gen = Generator(base)
    first = gen.generate(PROXY)[LISTENER]
    same = snapshot()
    assert scope.of(same, PROXY) == scope.of(base, PROXY)
    gen.update(same)
    assert gen.generate(PROXY)[LISTENER] is first
    gen.update(snapshot(tel("n", "shop", "tracing: [{randomSamplingPercentage: 100}]\n")))
    second = gen.generate(PROXY)[LISTENER]
    assert second is not first
    (m,) = [h for h in hcms([b.message for b in second.values()]).values()][:1]
    assert m.tracing.random_sampling.value == 100.0
    gen.update(snapshot(tel("n", "shop", "metrics: [{overrides: [{disabled: true}]}]\n")))
    assert gen.generate(PROXY)[LISTENER] is not second


# --- bootstrap and envoy validate ------------------------------------------------------


def test_bootstrap_reaches_the_zipkin_receiver_and_flushes_often() -> None:
    cfg = bs.bootstrap(PROXY, xds_port=15010, admin_port=15000, telemetry_http_port=15011)
    by_name = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    http = by_name["ami-telemetry-http"]
    addr = http["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr == {"socket_address": {"address": "127.0.0.1", "port_value": 15011}}
    layers = cfg["layered_runtime"]["layers"]
    assert layers[0]["static_layer"] == {
        "tracing.opentelemetry.flush_interval_ms": bs.TRACE_FLUSH_MS,
        "tracing.zipkin.flush_interval_ms": bs.TRACE_FLUSH_MS,
        "re2.max_program_size.error_level": bs.MAX_REGEX_PROGRAM_SIZE,
        "re2.max_program_size.warn_level": bs.MAX_REGEX_PROGRAM_SIZE,
    }
    # Without a receiver the cluster is there, empty: a Zipkin tracer is accepted and
    # its spans are dropped.
    plain = bs.bootstrap(PROXY, xds_port=15010, admin_port=15000)
    (empty,) = [c for c in plain["static_resources"]["clusters"] if c["name"] == http["name"]]
    assert empty["load_assignment"]["endpoints"] == []


@pytest.mark.envoy
@pytest.mark.parametrize("provider", ["otel", "zipkin"])
def test_envoy_accepts_the_tracing(tmp_path: Path, provider: str) -> None:
    spec = f"""\
    tracing:
    - providers: [{{name: {provider}}}]
      randomSamplingPercentage: 33.3
      customTags:
        team: {{literal: {{value: shop}}}}
        user: {{header: {{name: end-user}}}}
        pod: {{environment: {{name: HOSTNAME, defaultValue: none}}}}
    """
    snap = snapshot(GATEWAY_YAML, tel("n", "shop", spec), tel("m", "istio-system", spec))
    config = bs.static_bootstrap(
        clusters=clusters.inbound_clusters(PROXY),
        listeners=[
            *listeners.listeners(snap, PROXY),
            *gateway_listeners.listeners(snap, GATEWAY),
        ],
    )
    # The static clusters tracers send to, as a real bootstrap has them.
    config["static_resources"]["clusters"] += [
        bs.xds_cluster("127.0.0.1", 15010),
        bs.telemetry_http_cluster("127.0.0.1", 0 if provider == "zipkin" else 15011),
    ]
    config["layered_runtime"] = bs.layered_runtime()
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
