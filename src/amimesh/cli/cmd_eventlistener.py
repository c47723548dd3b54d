"""`ami eventlistener list`: Tekton Triggers' EventListeners, in `tkn`'s words.

    ami eventlistener list [-n NS | -A] [-o json|yaml]

NAME, AGE, URL (its address in the mesh, as Tekton's status gives it) and AVAILABLE
(its listener instance is ready).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from rich.table import Table

    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = shared.add_actions(
        sub, "eventlistener", "Tekton EventListeners, in tkn's words: list"
    )
    shared.add_list(actions, "list eventlisteners", run_list)


def fetch(api: MeshClient, namespace: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(
        "/api/v1/triggers/eventlisteners", {"namespace": namespace or ""}
    )["items"]
    return items


def table(items: Sequence[Mapping[str, Any]], now: float, *, namespaces: bool = False) -> Table:
    """`tkn eventlistener list`: NAME AGE URL AVAILABLE."""
    from amimesh.cli import render

    headers = ("NAMESPACE",) if namespaces else ()
    t = render.table(*headers, "NAME", "AGE", "URL", "AVAILABLE")
    for item in items:
        row = [str(item["namespace"])] if namespaces else []
        age = item.get("ageSeconds")
        row += [
            str(item["name"]),
            render.age(None if age is None else now - float(age), now),
            str(item["url"]),
            "True" if item.get("available") else "False",
        ]
        t.add_row(*row)
    return t


def run_list(args: argparse.Namespace) -> int:
    ns = shared.namespace_of(args)
    return shared.show_list(
        args,
        lambda api: fetch(api, ns),
        lambda api, items: table(items, time.time(), namespaces=ns is None),
        "No EventListeners found",
    )
