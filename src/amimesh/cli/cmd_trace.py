"""`ami trace ID`: one trace as a waterfall: its spans in call order, indented by
parent and child, each with a bar on the trace's time line, its service, name, kind
and duration."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_apply import MESH_HELP

if TYPE_CHECKING:
    from rich.console import Group

BAR_WIDTH = 40


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "trace", help="one trace of the running mesh as a waterfall"
    )
    p.add_argument("trace_id", metavar="ID", help="a trace id, as `ami traces` lists them")
    p.add_argument("-o", "--output", choices=["waterfall", "json"], default="waterfall")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def waterfall_view(
    trace_id: str, spans: Sequence[Mapping[str, Any]], width: int = BAR_WIDTH
) -> Group:
    """The header line and the waterfall table of one trace."""
    from rich.console import Group
    from rich.text import Text

    from amimesh.cli import render
    from amimesh.cli.cmd_traces import format_ms
    from amimesh.telemetry.waterfall import bar, layout

    rows = layout(spans)
    services = sorted({str(s.get("service", "")) for s in spans})
    start = min((int(s.get("start_unix_nano", 0)) for s in spans), default=0)
    end = max((int(s.get("end_unix_nano", 0)) for s in spans), default=0)
    head = Text.assemble(
        ("Trace ", "bold"),
        (trace_id, "bold"),
        f"  {len(spans)} span(s), {len(services)} service(s), "
        f"{format_ms(max(0, end - start) / 1e6)}",
    )
    table = render.table("SPAN", "SERVICE", "KIND", "DURATION", "TIMELINE")
    for r in rows:
        s = r.span
        style = "red" if s.get("error") or s.get("status") == "ERROR" else ""
        table.add_row(
            Text("  " * r.depth + str(s.get("name", "")), style=style),
            Text(str(s.get("service", ""))),
            str(s.get("kind", "")),
            format_ms(float(s.get("duration_ms", 0.0))),
            Text("|" + bar(r, width) + "|", style=style or "cyan"),
        )
    return Group(head, table)


def run(args: argparse.Namespace) -> int:
    import json

    from amimesh.cli import client, render

    out = render.console()

    def trace() -> int:
        body = client.connect(args.mesh).get(f"/api/v1/traces/{args.trace_id}")
        spans: list[dict[str, Any]] = body.get("spans", [])
        if args.output == "json":
            out.print(json.dumps(body, indent=2), markup=False)
        else:
            out.print(waterfall_view(str(body.get("trace_id", args.trace_id)), spans))
        return 0

    return client.guarded(trace)
