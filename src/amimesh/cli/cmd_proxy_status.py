"""`ami proxy-status`: per connected proxy, its xDS mode and the state of each type:
SYNCED, NOT SENT, STALE (sent, not acknowledged yet) or NACK (with Envoy's message)."""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-status", help="xDS sync state of every connected proxy"
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from amimesh.cli import client, render

    out, err = render.console(), render.console(stderr=True)

    def proxy_status() -> int:
        proxies = client.connect(args.mesh).get("/api/v1/proxies").get("proxies", [])
        if args.output == "json":
            out.print(json.dumps(proxies, indent=2), markup=False)
        elif not proxies:
            err.print("No proxies connected.")
        else:
            out.print(render.proxies_table(proxies, time.time()))
            for line in render.nacks(proxies):
                out.print(line)
        return 0

    return client.guarded(proxy_status)
