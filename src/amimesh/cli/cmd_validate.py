"""`ami validate PATH...`: print every error a user must fix; exit 1 on any."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "validate", help="validate YAML files; exit 1 on any error"
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import validate

    return validate.run(args.paths)
