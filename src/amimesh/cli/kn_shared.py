"""What `ami service`, `ami revision` and `ami route` share: their `list`, `describe`
and `delete` parsers with the namespace and output flags, the Knative errors' exit
codes, and how `list` and `describe` print."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_apply import MESH_HELP

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from amimesh.cli.client import MeshClient

Run = Callable[[argparse.Namespace], int]


# --- the parser --------------------------------------------------------------------------


def add_actions(sub: Any, command: str, help: str) -> Any:
    """`ami COMMAND`, and the parsers of its actions (`add_parser` of what it returns)."""
    p: argparse.ArgumentParser = sub.add_parser(command, help=help)
    return p.add_subparsers(dest="action", required=True, metavar="ACTION")


def add_list(
    actions: Any,
    help: str,
    run: Run,
    own_flags: Callable[[argparse.ArgumentParser], object] = lambda _p: None,
) -> None:
    """`list` (and `ls`): the command's `own_flags` first, then `-n`, `-A`, `-o`."""
    listing: argparse.ArgumentParser = actions.add_parser("list", aliases=["ls"], help=help)
    own_flags(listing)
    add_namespace(listing, all_namespaces=True)
    add_output(listing)
    listing.set_defaults(run=run)


def add_describe(actions: Any, help: str, run: Run, *outputs: str) -> None:
    """`describe NAME`, `-o` with these `outputs` besides table, json and yaml."""
    describe: argparse.ArgumentParser = actions.add_parser("describe", help=help)
    describe.add_argument("name", metavar="NAME")
    add_namespace(describe)
    add_output(describe, *outputs)
    describe.set_defaults(run=run)


def add_delete(actions: Any, help: str, run: Run) -> None:
    """`delete NAME...`."""
    delete: argparse.ArgumentParser = actions.add_parser("delete", help=help)
    delete.add_argument("names", nargs="+", metavar="NAME")
    add_namespace(delete)
    delete.set_defaults(run=run)


def add_namespace(p: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    p.add_argument("-n", "--namespace", default="default", help="default: default")
    if all_namespaces:
        p.add_argument(
            "-A", "--all-namespaces", action="store_true", help="those of every namespace"
        )
    p.add_argument("--mesh", help=MESH_HELP)


def add_output(p: argparse.ArgumentParser, *extra: str) -> None:
    p.add_argument("-o", "--output", choices=["table", "json", "yaml", *extra], default="table")


def namespace_of(args: argparse.Namespace) -> str | None:
    """The namespace to list, None for every one (`-A`)."""
    return None if getattr(args, "all_namespaces", False) else str(args.namespace)


def print_items(out: Console, items: list[dict[str, Any]], output: str, *, single: bool) -> None:
    """`-o json` or `-o yaml`, as `ami get` prints them."""
    from amimesh.cli import render

    if output == "yaml":
        out.print(render.resources_yaml(items), markup=False, end="")
    else:
        out.print(render.resources_json(items, single=single), markup=False)


def guarded(action: Callable[[], int]) -> int:
    """`client.guarded`, and the Knative commands' own errors: a bad flag exits 2, a
    Service or revision not found (or not ready in time) 1."""
    from amimesh.cli import client, knative, render

    def run() -> int:
        try:
            return action()
        except knative.FlagError as e:
            render.print_error(render.console(stderr=True), str(e))
            return 2
        except (knative.NotFound, knative.Exists, knative.NotReady) as e:
            render.print_error(render.console(stderr=True), str(e))
            return 1

    return client.guarded(run)


# --- running -----------------------------------------------------------------------------


def connected(args: argparse.Namespace, action: Callable[[MeshClient], int]) -> int:
    """`guarded(action)`, `action` given a client of the mesh `--mesh` names."""
    from amimesh.cli import client

    return guarded(lambda: action(client.connect(args.mesh)))


def list_items(
    args: argparse.Namespace,
    fetch: Callable[[MeshClient], list[dict[str, Any]]],
    table: Callable[[MeshClient, list[dict[str, Any]]], RenderableType],
    none_found: str,
    *,
    connect: Callable[[argparse.Namespace, Callable[[MeshClient], int]], int] | None = None,
) -> int:
    """`list`: the items `fetch` reads, as `-o json|yaml` or as `table` makes them;
    `none_found` on stderr when there are none. `connect` runs it (`connected`)."""
    from amimesh.cli import render

    out, err = render.console(), render.console(stderr=True)

    def show(api: MeshClient) -> int:
        items = fetch(api)
        if args.output != "table":
            print_items(out, items, args.output, single=False)
        elif not items:
            err.print(none_found)
        else:
            out.print(table(api, items))
        return 0

    return (connect or connected)(args, show)


def describe_item(
    args: argparse.Namespace,
    fetch: Callable[[MeshClient], dict[str, Any]],
    view: Callable[[MeshClient, dict[str, Any]], RenderableType],
) -> int:
    """`describe`: the item `fetch` reads, as `-o url` (its status's URL), `-o json|yaml`
    or as `view` makes it."""
    from amimesh.cli import render

    out = render.console()

    def show(api: MeshClient) -> int:
        item = fetch(api)
        if args.output == "url":
            out.print(str((item.get("status") or {}).get("url", "")), markup=False)
        elif args.output != "table":
            print_items(out, [item], args.output, single=True)
        else:
            out.print(view(api, item))
        return 0

    return connected(args, show)
