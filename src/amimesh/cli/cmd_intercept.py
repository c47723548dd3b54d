"""`ami intercept WORKLOAD [--header k=v] [--port N] -- COMMAND...`: run COMMAND in
the foreground in the place of a workload (docs/devloop.md)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "intercept",
        help="run a command in the place of a workload: its identity, sidecar, env and "
        "upstreams; with --header only requests carrying it",
    )
    p.add_argument("workload", metavar="WORKLOAD", help="the Workload to intercept")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument(
        "--header",
        metavar="NAME=VALUE",
        help="only requests with this header reach COMMAND (a personal intercept); "
        "without it every request does",
    )
    p.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="the port COMMAND listens on (default: the one the mesh gives it in $PORT)",
    )
    p.add_argument("--mesh", help="mesh name, config directory or state dir (default: current)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import intercept

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    return intercept.run(
        args.workload,
        command,
        namespace=args.namespace,
        header=args.header,
        port=args.port,
        mesh=args.mesh,
    )
