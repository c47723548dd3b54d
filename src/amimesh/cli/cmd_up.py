"""`ami up DIR`: run a mesh (control plane, workloads with sidecars, ingress gateway)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="run the mesh of DIR in the foreground (DIR/mesh/ if present, else DIR)",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the mesh's config directory")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="root of the state dirs (default: $AMI_STATE_DIR or ~/.local/state/ami)",
    )
    p.add_argument(
        "--gateway-port",
        type=int,
        metavar="N",
        help="host port for the first Gateway server port (default: its own number if "
        ">= 1024 and free, else any free port)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.runtime import up

    return up.run(
        args.dir,
        state_root=args.state_dir,
        gateway_port=args.gateway_port,
        log_level=args.log_level,
    )
