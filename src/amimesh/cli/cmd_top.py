"""`ami top`: live golden metrics per workload (or service), like `linkerd viz stat`.

Requests/s, success rate and p50/p95/p99 latency over the last `--window` seconds, as
the destinations' proxies report them, and below them the Knative revisions as their
autoscaler sees them (when there are any), refreshed every `--interval` seconds until
Ctrl-C; `--once` prints them once and exits, `-o json` the golden metrics' rows.
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "top",
        help="live golden metrics per workload (rps, success rate, latency), Knative revisions",
    )
    p.add_argument(
        "--by", choices=["workload", "service"], default="workload", help="rows (default workload)"
    )
    p.add_argument("-n", "--namespace", help="only this namespace")
    p.add_argument("--window", type=float, default=30.0, help="seconds of history (default 30)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def table(rows: list[dict[str, Any]], by: str, window: float) -> Any:
    from rich.table import Table

    t = Table(title=f"golden metrics, last {window:g}s (inbound)", title_justify="left")
    first = "WORKLOAD" if by == "workload" else "SERVICE"
    for col in (first, "NAMESPACE", "SUCCESS", "RPS", "P50", "P95", "P99", "REQUESTS"):
        t.add_column(col, justify="left" if col in (first, "NAMESPACE") else "right")
    for r in rows:
        t.add_row(
            r["name"],
            r["namespace"],
            _pct(r["success_rate"]),
            f"{r['rps']:.2f}" if r["requests"] else "-",
            _ms(r["p50_ms"]),
            _ms(r["p95_ms"]),
            _ms(r["p99_ms"]),
            str(r["requests"]),
        )
    return t


def screen(
    rows: list[dict[str, Any]], revisions: list[dict[str, Any]], by: str, window: float
) -> Any:
    """The golden metrics' table, then the Knative revisions' when there are any."""
    from rich import box
    from rich.console import Group
    from rich.text import Text

    from amimesh.cli import render

    if not revisions:
        return table(rows, by, window)
    scaling = render.revisions_table(revisions)
    # Boxed and titled like the golden metrics' table above it.
    scaling.box, scaling.show_edge, scaling.pad_edge = box.HEAVY_HEAD, True, True
    scaling.title, scaling.title_justify = "Knative revisions (autoscaler)", "left"
    return Group(table(rows, by, window), Text(""), scaling)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from rich.live import Live

    from amimesh.cli import client, render

    out = render.console()
    key = "workloads" if args.by == "workload" else "services"

    def fetch(mesh: client.MeshClient) -> list[dict[str, Any]]:
        body = mesh.get(f"/api/v1/metrics/{key}", {"window": f"{args.window:g}"})
        rows: list[dict[str, Any]] = body[key]
        if args.namespace:
            rows = [r for r in rows if r["namespace"] == args.namespace]
        return rows

    def revisions(mesh: client.MeshClient) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = mesh.get("/api/v1/serving/revisions")["revisions"]
        if args.namespace:
            rows = [r for r in rows if r["namespace"] == args.namespace]
        return rows

    def view(mesh: client.MeshClient) -> Any:
        return screen(fetch(mesh), revisions(mesh), args.by, args.window)

    def top() -> int:
        mesh = client.connect(args.mesh)
        if args.output == "json":
            out.print(json.dumps(fetch(mesh), indent=2), markup=False)
            return 0
        if args.once:
            out.print(view(mesh))
            return 0
        with Live(view(mesh), console=out) as live:
            try:
                while True:
                    time.sleep(args.interval)
                    live.update(view(mesh))
            except KeyboardInterrupt:
                return 0

    return client.guarded(top)
