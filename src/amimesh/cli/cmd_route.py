"""`ami route list`: Knative Routes (each Knative Service's, and those written on their
own), in `kn`'s words: NAME, URL, READY."""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.kn_shared import add_actions, add_list, list_items, namespace_of


def add_parser(sub: Any) -> None:
    actions = add_actions(sub, "route", "Knative Routes, in kn's words: list")
    add_list(actions, "list Routes", run_list)


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import knative, render_knative

    return list_items(
        args,
        lambda api: knative.list_routes(api, namespace_of(args)),
        lambda _api, routes: render_knative.routes_table(
            routes, namespaces=namespace_of(args) is None
        ),
        "No routes found.",
    )
