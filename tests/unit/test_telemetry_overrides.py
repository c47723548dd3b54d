"""Telemetry metrics overrides: which metrics and tags a proxy reports (`model.telemetry`),
the stats its loggers keep (`translate.metrics_log`) and the labels the control plane
gives them (`telemetry.metrics_receiver`). Real traffic: tests/e2e/test_telemetry_overrides.py."""

from __future__ import annotations

from amimesh.model import telemetry
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import parse_documents
from amimesh.telemetry import labels, metrics_receiver
from amimesh.translate import metrics_log as ml


def policy(overrides: str) -> telemetry.MetricsPolicy:
    text = (
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\n"
        f"spec:\n  metrics:\n  - overrides:\n{overrides}"
    )
    result = parse_documents(text, "t.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    [t] = result.resources
    assert isinstance(t, tel.Telemetry)
    return telemetry.metrics_of(t)


def test_the_standard_tags_are_the_labels() -> None:
    assert telemetry.STANDARD_TAGS == set(labels.LABELS)


def test_later_overrides_win_per_metric_and_side() -> None:
    p = policy(
        "    - disabled: true\n"
        "    - {match: {metric: REQUEST_SIZE, mode: SERVER}, disabled: false}\n"
    )
    assert p.enabled
    assert not p.reports("REQUEST_SIZE", "CLIENT")
    assert p.reports("REQUEST_SIZE", "SERVER")
    assert ml.stats_for(p.off, ml.INBOUND) == {ml.REQUEST_BYTES}
    assert ml.stats_for(p.off, ml.OUTBOUND) == set()
    assert not policy("    - disabled: true\n").enabled


def test_loggers_keep_the_stats_left_on() -> None:
    assert ml.http_log(ml.INBOUND, set()) is None
    only_tcp_closed = ml.tcp_logs(ml.OUTBOUND, {ml.TCP_CLOSED})
    assert len(only_tcp_closed) == 1  # the two TCP_OPENED loggers are gone


def test_tag_overrides_apply_to_the_stats_whose_metrics_agree() -> None:
    p = policy(
        "    - match: {mode: SERVER}\n"
        "      tagOverrides:\n"
        "        request_protocol: {operation: REMOVE}\n"
        "        source_app: {value: \"'x'\"}\n"
        "    - match: {metric: REQUEST_COUNT}\n"
        "      tagOverrides: {response_flags: {operation: REMOVE}, source_version: {value: a.b}}\n"
    )
    server = metrics_receiver.tag_overrides(p, ml.REQUEST_DURATION, ml.INBOUND)
    # response_flags is removed on REQUEST_COUNT only, not on REQUEST_DURATION: one
    # histogram carries both, so it stays; source_version's value is no literal.
    assert server == {"request_protocol": None, "source_app": "x"}
    assert metrics_receiver.tag_overrides(p, ml.REQUEST_DURATION, ml.OUTBOUND) == {}
    key = tuple(f"v{i}" for i in range(len(labels.LABELS)))
    out = metrics_receiver.apply_overrides(key, labels.LABELS, server)
    assert out[labels.LABELS.index("request_protocol")] == ""
    assert out[labels.LABELS.index("source_app")] == "x"
    # TCP metrics have no response_code: an override of it changes nothing there.
    tcp = metrics_receiver.apply_overrides(
        key[: len(labels.TCP_LABELS)], labels.TCP_LABELS, {"response_code": "1"}
    )
    assert tcp == key[: len(labels.TCP_LABELS)]


def test_literal_values() -> None:
    assert telemetry.literal_value("'v'") == "v"
    assert telemetry.literal_value('"v w"') == "v w"
    for expression in ("request.host", "'a' + 'b'", "'a'b'", "''' "):
        assert telemetry.literal_value(expression) is None, expression
