"""`ami route list`: Knative Routes (each Knative Service's, and those written on their
own), in `kn`'s words: NAME, URL, READY."""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_service import add_namespace, add_output, guarded, namespace_of, print_items


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("route", help="Knative Routes, in kn's words: list")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", aliases=["ls"], help="list Routes")
    add_namespace(listing, all_namespaces=True)
    add_output(listing)
    listing.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render, render_knative

    out, err = render.console(), render.console(stderr=True)

    def show() -> int:
        api = client.connect(args.mesh)
        routes = knative.list_routes(api, namespace_of(args))
        if args.output != "table":
            print_items(out, routes, args.output, single=False)
        elif not routes:
            err.print("No routes found.")
        else:
            out.print(render_knative.routes_table(routes, namespaces=namespace_of(args) is None))
        return 0

    return guarded(show)
