"""`ami delete -f FILE` or `ami delete KIND NAME [-n NS]`: delete applied resources.

Resources defined in the mesh's config files are not deleted this way: edit the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "delete", help="delete resources applied to the running mesh"
    )
    p.add_argument("kind", nargs="?", metavar="KIND", help="vs, dr, svc, VirtualService, ...")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        metavar="FILE",
        help="delete the resources a YAML file (or directory) defines (repeatable)",
    )
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from amimesh.cli import client, render
    from amimesh.cli.cmd_apply import read_sources

    out, err = render.console(), render.console(stderr=True)
    by_file = bool(args.files)
    if by_file == bool(args.kind) or (args.kind and not args.name):
        render.print_error(err, "give either -f FILE, or KIND and NAME")
        return 2
    sources: list[tuple[str, str]] = []
    if by_file:
        try:
            sources = read_sources(args.files)
        except (OSError, UnicodeDecodeError) as e:
            render.print_error(err, str(e))
            return 2

    def report(body: dict[str, Any], errors: list[str]) -> None:
        for ref in body.get("deleted", []):
            out.print(f"{ref} deleted", markup=False)
        for note in body.get("notes", []):
            out.print(note, markup=False, style="dim")
        for e in errors:
            render.print_error(err, e)

    def delete(call: Callable[..., dict[str, Any]], *call_args: Any) -> bool:
        try:
            report(call(*call_args), [])
            return True
        except client.ApiError as e:
            if "deleted" not in e.body:
                raise  # nothing was deleted (the file did not parse, the kind is unknown)
            report(e.body, e.errors)
            return False

    def send() -> int:
        api = client.connect(args.mesh)
        if not by_file:
            path = "/".join(quote(p, safe="") for p in (args.kind, args.namespace, args.name))
            return 0 if delete(api.delete, f"/api/v1/resources/{path}") else 1
        ok = True
        for name, text in sources:
            ok = delete(api.post_yaml, "/api/v1/delete", text, {"source": name}) and ok
        return 0 if ok else 1

    return client.guarded(send)
