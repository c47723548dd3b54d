"""`ami traces [--service S] [--min-duration D] [--limit N]`: recent traces of the mesh,
newest first, from the control plane's trace store."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_apply import MESH_HELP

if TYPE_CHECKING:
    from rich.table import Table

_UNITS_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def duration_ms(text: str) -> float:
    """Milliseconds in `100ms`, `1.5s`, `250us`, `2m` or a plain number of milliseconds."""
    value = text.strip()
    for unit in sorted(_UNITS_MS, key=len, reverse=True):
        if value.endswith(unit):
            number, factor = value[: -len(unit)], _UNITS_MS[unit]
            break
    else:
        number, factor = value, 1.0
    try:
        ms = float(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want e.g. 100ms, 1.5s") from None
    if not ms >= 0 or ms == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return ms


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "traces", help="recent traces of the running mesh, newest first"
    )
    p.add_argument("--service", metavar="S", help="only traces with a span of service S")
    p.add_argument(
        "--min-duration",
        type=duration_ms,
        metavar="D",
        default=0.0,
        help="only traces lasting at least D (100ms, 1.5s; a plain number is ms)",
    )
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def format_ms(ms: float) -> str:
    """`0.42ms`, `12.3ms`, `1.50s`."""
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    if ms >= 10:
        return f"{ms:.1f}ms"
    return f"{ms:.2f}ms"


def traces_table(traces: Sequence[Mapping[str, Any]], now: float) -> Table:
    """One row per trace: id (red when a span failed), age, duration, spans, the root
    span's service and name, and every service it went through."""
    from rich.text import Text

    from amimesh.cli import render

    t = render.table("TRACE ID", "AGE", "DURATION", "SPANS", "ROOT", "SERVICES")
    for tr in traces:
        root = f"{tr.get('root_service', '')}: {tr.get('root_name', '')}"
        start = tr.get("start_unix_nano")
        t.add_row(
            Text(str(tr.get("trace_id", "")), style="red" if tr.get("error") else ""),
            render.age(int(start) / 1e9 if start is not None else None, now),
            format_ms(float(tr.get("duration_ms", 0.0))),
            str(tr.get("span_count", 0)),
            Text(root),
            Text(render.joined(tr.get("services") or [])),
        )
    return t


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from amimesh.cli import client, render

    out, err = render.console(), render.console(stderr=True)

    def traces() -> int:
        params = {
            "service": args.service or "",
            "min_duration_ms": f"{args.min_duration:g}" if args.min_duration else "",
            "limit": str(args.limit),
        }
        body = client.connect(args.mesh).get("/api/v1/traces", params)
        found: list[dict[str, Any]] = body.get("traces", [])
        if args.output == "json":
            out.print(json.dumps(found, indent=2), markup=False)
        elif not found:
            err.print("No traces found.", markup=False)
        else:
            out.print(traces_table(found, time.time()))
        return 0

    return client.guarded(traces)
