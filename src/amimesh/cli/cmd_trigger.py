"""`ami trigger list|describe`: Knative Triggers, in `kn`'s words.

ami trigger list [-b BROKER]
ami trigger describe orders
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_broker import delete_named
from amimesh.cli.kn_shared import (
    add_actions,
    add_delete,
    add_describe,
    add_list,
    add_namespace,
    connected,
    describe_item,
    list_items,
    namespace_of,
)

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = add_actions(
        sub, "trigger", "Knative Triggers, in kn's words: create, list, describe, delete"
    )
    create: argparse.ArgumentParser = actions.add_parser("create", help="create a Trigger")
    create.add_argument("name", metavar="NAME")
    create.add_argument("-b", "--broker", default="default", help="default: default")
    create.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="exact match (repeat)"
    )
    create.add_argument(
        "-s", "--sink", required=True, help="ksvc:NAME, svc:NAME, broker:NAME, a URL or NAME"
    )
    add_namespace(create)
    create.set_defaults(run=run_create)
    add_list(
        actions,
        "list Triggers",
        run_list,
        lambda p: p.add_argument("-b", "--broker", help="those of one Broker"),
    )
    add_describe(actions, "a Trigger: its broker, filter, sink, delivery, conditions", run_describe)
    add_delete(actions, "delete Triggers", run_delete)


def run_create(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render

    def create(api: MeshClient) -> int:
        try:
            obj = eventing.trigger_object(
                args.name, args.namespace, args.broker, args.sink, args.filter
            )
        except ValueError as e:
            render.print_error(render.console(stderr=True), str(e))
            return 2
        eventing.create(api, obj)
        render.console().print(
            f"Trigger '{args.name}' successfully created in namespace '{args.namespace}'.",
            markup=False,
        )
        return 0

    return connected(args, create)


def run_delete(args: argparse.Namespace) -> int:
    return delete_named(args, "Trigger")


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render_eventing

    return list_items(
        args,
        lambda api: eventing.list_triggers(api, namespace_of(args), broker=args.broker),
        lambda _api, items: render_eventing.triggers_table(
            items, namespaces=namespace_of(args) is None
        ),
        "No triggers found.",
    )


def run_describe(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render_eventing

    return describe_item(
        args,
        lambda api: eventing.get_one(api, "Trigger", args.namespace, args.name),
        lambda _api, trigger: render_eventing.trigger_view(trigger),
    )
