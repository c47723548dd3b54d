"""`ami`: parse the command line and call the matching Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from amimesh import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ami", description="Ami service mesh")
    p.add_argument("--version", action="version", version=f"ami {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cp = sub.add_parser("controlplane", help="run the control plane (xDS server)")
    cp.add_argument("--config", type=Path, help="directory (or file) of YAML to serve, watched")
    cp.add_argument("--xds-host", default="127.0.0.1", help="xDS bind address (loopback)")
    cp.add_argument("--xds-port", type=int, default=15010, help="xDS port (0: any free port)")
    cp.add_argument(
        "--debounce", type=float, default=0.05, help="seconds to coalesce bursts of changes"
    )
    cp.add_argument("--no-watch", action="store_true", help="load the config once, do not watch")
    cp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    val = sub.add_parser("validate", help="validate YAML files; exit 1 on any error")
    val.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        from amimesh.cli import validate

        return validate.run(args.paths)
    if args.command == "controlplane":
        from amimesh.cli import controlplane

        return controlplane.run(
            config=args.config,
            xds_host=args.xds_host,
            xds_port=args.xds_port,
            debounce_s=args.debounce,
            watch=not args.no_watch,
            log_level=args.log_level,
        )
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
