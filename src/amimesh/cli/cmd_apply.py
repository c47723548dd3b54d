"""`ami apply -f FILE|DIR ...`: create or replace resources in the running mesh.

Every file is validated first; with any error nothing is sent, so a broken file never
leaves the mesh half changed. Then each file goes to the API as one all-or-nothing apply.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

MESH_HELP = "the mesh: a name, its config directory or its state path (default: the last started)"


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "apply", help="create or replace resources in the running mesh"
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML file, a directory of them, or - for stdin (repeatable)",
    )
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def read_sources(names: list[str]) -> list[tuple[str, str]]:
    """(source name, text) for each file named, directories expanded; FileNotFoundError
    or OSError for what cannot be read."""
    from amimesh.resources.files import yaml_files

    out: list[tuple[str, str]] = []
    for name in names:
        if name == "-":
            out.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            files = yaml_files(path)
            if not files:
                raise FileNotFoundError(f"no YAML files under {path}")
        elif path.exists():
            files = [path]
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
        for f in files:
            out.append((str(f), f.read_text(encoding="utf-8")))
    return out


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import client, render
    from amimesh.resources import parse_documents

    out, err = render.console(), render.console(stderr=True)
    try:
        sources = read_sources(args.files)
    except (OSError, UnicodeDecodeError) as unreadable:
        render.print_error(err, str(unreadable))
        return 2
    errors = [e for name, text in sources for e in parse_documents(text, name).errors]
    if errors:
        for problem in errors:
            render.print_error(err, str(problem))
        err.print(f"{len(errors)} error(s); nothing applied")
        return 1

    def send() -> int:
        api = client.connect(args.mesh)
        for name, text in sources:
            with err.status(f"applying {name}"):
                body = api.post_yaml("/api/v1/apply", text, {"source": name})
            for r in body.get("results", []):
                out.print(f"{r['resource']} applied ({r['action']})", markup=False)
        return 0

    return client.guarded(send)
