"""`ami get KIND [NAME] [-n NS | -A] [-o table|yaml|json]`: resources in force.

Kinds are case-insensitive, plural and short forms work (vs, dr, se, we, svc, gw,
workloads). `-o yaml` prints documents `ami apply -f` takes back.
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("get", help="show resources of the running mesh")
    p.add_argument("kind", metavar="KIND", help="vs, dr, se, we, svc, gw, workloads, ...")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument(
        "-A", "--all-namespaces", action="store_true", help="resources of every namespace"
    )
    p.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from amimesh.cli import client, render

    out, err = render.console(), render.console(stderr=True)

    def get() -> int:
        api = client.connect(args.mesh)
        params = {"kind": args.kind, "name": args.name or ""}
        if not args.all_namespaces:
            params["namespace"] = args.namespace
        body = api.get("/api/v1/resources", params)
        items: list[dict[str, Any]] = body.get("items", [])
        kind = body.get("kind") or args.kind
        where = "any namespace" if args.all_namespaces else f'namespace "{args.namespace}"'
        if args.name and not items:
            render.print_error(err, f'{kind} "{args.name}" not found in {where}')
            return 1
        if args.output == "yaml":
            out.print(render.resources_yaml(items), markup=False, end="")
        elif args.output == "json":
            out.print(render.resources_json(items, single=bool(args.name)), markup=False)
        elif not items:
            err.print(f"No {kind} resources found in {where}.", markup=False)
        else:
            out.print(render.resources_table(items, namespaces=args.all_namespaces))
        return 0

    return client.guarded(get)
