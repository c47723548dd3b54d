"""`ami down [MESH]`: stop a mesh started by `ami up` and wait until it is gone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "down", help="stop a running mesh (default: the one started last)"
    )
    p.add_argument(
        "mesh", nargs="?", metavar="MESH", help="mesh name, config directory or state dir"
    )
    p.add_argument("--state-dir", type=Path, help="root of the state dirs, as given to `ami up`")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from amimesh.runtime.down import DownError, down

    err = Console(stderr=True, highlight=False, emoji=False)
    try:
        name = down(args.mesh, root=args.state_dir, timeout_s=args.timeout)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/red] {e}")
        return 1
    except DownError as e:
        err.print(f"[red]error:[/red] {e}")
        return 1
    Console(highlight=False, emoji=False).print(f"mesh {name} stopped")
    return 0
