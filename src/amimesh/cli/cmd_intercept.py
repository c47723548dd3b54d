"""`ami intercept WORKLOAD [--header k=v] [--port N] -- COMMAND...`: run COMMAND in
the foreground in the place of a workload (docs/devloop.md)."""

from __future__ import annotations

import argparse
from typing import Any

USAGE = (
    "ami intercept WORKLOAD [-n NS] [--header NAME=VALUE] [--port N] [--mesh MESH] -- COMMAND..."
)


def _options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
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
    return p


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "intercept",
        usage=USAGE,
        help="run a command in the place of a workload: its identity, sidecar, env and "
        "upstreams; with --header only requests carrying it",
        description="Run COMMAND (after --) in the foreground in the place of WORKLOAD. "
        "Options: -n/--namespace NS, --header NAME=VALUE (only requests carrying it), "
        "--port N (COMMAND listens there instead of $PORT), --mesh MESH.",
    )
    # Everything after the command's name: WORKLOAD, its options, `--`, COMMAND (whose
    # own options must never be taken for ours).
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def split(rest: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """WORKLOAD and its options, and COMMAND (everything after the first `--`)."""
    before, command = rest, []
    if "--" in rest:
        at = rest.index("--")
        before, command = rest[:at], rest[at + 1 :]
    opts = _options(argparse.ArgumentParser(prog="ami intercept", usage=USAGE)).parse_args(before)
    return opts, command


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import intercept

    opts, command = split(list(args.rest))
    return intercept.run(
        opts.workload,
        command,
        namespace=opts.namespace,
        header=opts.header,
        port=opts.port,
        mesh=opts.mesh,
    )
