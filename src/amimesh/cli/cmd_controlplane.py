"""`ami controlplane`: serve xDS for a directory of config until interrupted."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    cp: argparse.ArgumentParser = sub.add_parser(
        "controlplane", help="run the control plane (xDS server)"
    )
    cp.add_argument("--config", type=Path, help="directory (or file) of YAML to serve, watched")
    cp.add_argument("--xds-host", default="127.0.0.1", help="xDS bind address (loopback)")
    cp.add_argument("--xds-port", type=int, default=15010, help="xDS port (0: any free port)")
    cp.add_argument(
        "--debounce", type=float, default=0.05, help="seconds to coalesce bursts of changes"
    )
    cp.add_argument("--no-watch", action="store_true", help="load the config once, do not watch")
    cp.add_argument(
        "--state",
        type=Path,
        help="run a local mesh's control plane from its state dir (as `ami up` starts it)",
    )
    cp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    cp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import controlplane

    if args.state is not None:
        return controlplane.run_mesh(args.state, log_level=args.log_level)
    return controlplane.run(
        config=args.config,
        xds_host=args.xds_host,
        xds_port=args.xds_port,
        debounce_s=args.debounce,
        watch=not args.no_watch,
        log_level=args.log_level,
    )
