"""`ami status`: the running mesh at a glance: workload instances, Knative revisions
as their autoscaler sees them, each proxy's xDS sync state (SYNCED, STALE, NACK with
Envoy's message), and config errors."""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="instances, Knative revisions, proxies' sync state and config errors of the mesh",
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from amimesh.cli import client, render

    out = render.console()

    def status() -> int:
        mesh = client.connect(args.mesh)
        body = mesh.get("/api/v1/status")
        revisions = mesh.get("/api/v1/serving/revisions")["revisions"]
        if args.output == "json":
            out.print(json.dumps({**body, "revisions": revisions}, indent=2), markup=False)
        else:
            out.print(render.status_view(body, time.time(), revisions))
        return 0

    return client.guarded(status)
