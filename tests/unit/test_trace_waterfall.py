"""The waterfall layout of a trace, and the `ami traces` / `ami trace` views."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from amimesh.cli import render
from amimesh.cli.cmd_trace import waterfall_view
from amimesh.cli.cmd_traces import duration_ms, format_ms, traces_table
from amimesh.telemetry.waterfall import BAR, Row, bar, layout

MS = 1_000_000


def span(sid: str, parent: str, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {
        "span_id": sid,
        "parent_span_id": parent,
        "start_unix_nano": start * MS,
        "end_unix_nano": end * MS,
        "name": f"op-{sid}",
        "service": extra.pop("service", "svc"),
        "kind": "SERVER",
        "duration_ms": float(end - start),
        **extra,
    }


# gateway (0-100) -> frontend in (10-90) -> frontend out to reviews (20-60) and to
# catalog (15-18), given out of order.
SPANS = [
    span("c", "b", 20, 60),
    span("a", "", 0, 100, service="gateway"),
    span("d", "b", 15, 18),
    span("b", "a", 10, 90),
]


def test_layout_orders_by_parent_then_start() -> None:
    rows = layout(SPANS)
    assert [(r.span["span_id"], r.depth) for r in rows] == [
        ("a", 0),
        ("b", 1),
        ("d", 2),
        ("c", 2),
    ]
    assert (rows[0].start, rows[0].end) == (0.0, 1.0)
    assert (rows[1].start, rows[1].end) == (0.1, 0.9)
    assert layout([]) == []


def test_orphans_and_cycles_each_appear_once() -> None:
    rows = layout(
        [
            span("x", "missing", 5, 6),  # parent not in the trace: a root
            span("p", "q", 0, 1),
            span("q", "p", 1, 2),  # a cycle: no root above it
        ]
    )
    assert sorted(r.span["span_id"] for r in rows) == ["p", "q", "x"]
    assert [r.depth for r in rows if r.span["span_id"] == "x"] == [0]


def test_bar() -> None:
    assert bar(Row({}, 0, 0.0, 1.0), 10) == BAR * 10
    assert bar(Row({}, 0, 0.5, 0.7), 10) == " " * 5 + BAR * 2 + " " * 3
    # However short, a span gets one column, and never beyond the line.
    assert bar(Row({}, 0, 1.0, 1.0), 10) == " " * 9 + BAR
    assert bar(Row({}, 0, 0.4, 0.4), 3) == " " + BAR + " "
    assert bar(Row({}, 0, 0.1, 0.3), 10) == " " + BAR * 2 + " " * 7
    assert bar(Row({}, 0, 0, 1), 0) == ""


def test_waterfall_view() -> None:
    text = render.to_text(waterfall_view("abc123", SPANS, width=10))
    lines = text.splitlines()
    assert lines[0] == "Trace abc123  4 span(s), 2 service(s), 100.0ms"
    assert lines[1].split() == ["SPAN", "SERVICE", "KIND", "DURATION", "TIMELINE"]
    assert lines[2].startswith("op-a ") and "|" + BAR * 10 + "|" in lines[2]
    assert lines[3].startswith("  op-b ")
    assert lines[4].startswith("    op-d ") and "|" + " " + BAR + " " * 8 + "|" in lines[4]
    assert lines[5].startswith("    op-c ") and "40.0ms" in lines[5]


def test_traces_table() -> None:
    text = render.to_text(
        traces_table(
            [
                {
                    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                    "root_service": "istio-ingressgateway",
                    "root_name": "frontend:8080/*",
                    "start": "2025-01-02T03:04:05.678Z",
                    "start_unix_nano": 1_735_787_045_678_000_000,
                    "duration_ms": 1534.2,
                    "span_count": 7,
                    "error": False,
                    "services": ["frontend", "reviews"],
                }
            ],
            now=1_735_787_045.678 + 90.5,
        )
    )
    header, row = text.splitlines()
    assert header.split() == ["TRACE", "ID", "AGE", "DURATION", "SPANS", "ROOT", "SERVICES"]
    assert row.split() == [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "1m30s",
        "1.53s",
        "7",
        "istio-ingressgateway:",
        "frontend:8080/*",
        "frontend,reviews",
    ]


def test_durations() -> None:
    assert duration_ms("100ms") == 100.0
    assert duration_ms("1.5s") == 1500.0
    assert duration_ms("250us") == 0.25
    assert duration_ms("2m") == 120_000.0
    assert duration_ms("40") == 40.0
    for bad in ("fast", "-1s", "1h"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration_ms(bad)
    assert [format_ms(v) for v in (0.421, 12.34, 2500.0)] == ["0.42ms", "12.3ms", "2.50s"]
