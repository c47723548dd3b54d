"""`ami logs NAME [-f] [--envoy | --access]`: print an instance's or a workload's logs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "logs", help="print the logs of a workload (all replicas) or an instance"
    )
    p.add_argument("name", metavar="NAME", help="workload name, instance name or instance id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--envoy", action="store_true", help="the sidecar's Envoy log instead")
    which.add_argument(
        "--access", action="store_true", help="the Envoy's access log (one line per request)"
    )
    p.add_argument("--mesh", help="mesh name, config directory or state dir (default: current)")
    p.add_argument("--state-dir", type=Path, help="root of the state dirs, as given to `ami up`")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from amimesh.runtime import logs, state

    err = Console(stderr=True, highlight=False, emoji=False)
    try:
        st = state.find(args.mesh, args.state_dir)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/red] {e}")
        return 1
    files = logs.select(st, args.name, envoy=args.envoy, access=args.access)
    if not files:
        known = sorted({i.workload for i in logs.instances(st)})
        err.print(f"[red]error:[/red] no workload or instance {args.name!r}; workloads: {known}")
        return 1
    try:
        logs.show(files, follow=args.follow)
    except KeyboardInterrupt:
        pass
    return 0
