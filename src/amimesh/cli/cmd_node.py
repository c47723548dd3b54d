"""`ami node --state DIR`: the node agent of a local mesh (started by `ami up`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "node",
        help="run the node agent: every instance's Envoy and app on this machine "
        "(started by `ami up`)",
    )
    p.add_argument("--state", type=Path, required=True, help="the mesh's state dir")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.runtime import node_main

    return node_main.run(args.state, log_level=args.log_level)
