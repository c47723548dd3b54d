"""`ami agent --config FILE`: run one instance's Envoy and app (started by `ami up`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "agent",
        help="run one workload instance: its Envoy sidecar, then its app (used by `ami up`)",
    )
    p.add_argument("--config", type=Path, required=True, help="the agent.json that `ami up` wrote")
    p.add_argument(
        "--parent-stdin",
        action="store_true",
        help="stop gracefully when stdin closes (the parent process is gone)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.agent import agent

    return agent.run(args.config, parent_stdin=args.parent_stdin, log_level=args.log_level)
