"""`ami broker list|describe`: Knative Brokers, in `kn`'s words.

ami broker list
ami broker describe default
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

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
    from rich.console import RenderableType

    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = add_actions(
        sub, "broker", "Knative Brokers, in kn's words: create, list, describe, delete"
    )
    create: argparse.ArgumentParser = actions.add_parser("create", help="create a Broker")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--dl-sink", help="its dead-letter sink: ksvc:NAME, svc:NAME, a URL")
    add_namespace(create)
    create.set_defaults(run=run_create)
    add_list(actions, "list Brokers", run_list)
    add_describe(actions, "a Broker: its address, delivery, triggers, conditions", run_describe)
    add_delete(actions, "delete Brokers", run_delete)


def run_create(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render

    def create(api: MeshClient) -> int:
        try:
            obj = eventing.broker_object(args.name, args.namespace, args.dl_sink)
        except ValueError as e:
            render.print_error(render.console(stderr=True), str(e))
            return 2
        eventing.create(api, obj)
        render.console().print(
            f"Broker '{args.name}' successfully created in namespace '{args.namespace}'.",
            markup=False,
        )
        return 0

    return connected(args, create)


def run_delete(args: argparse.Namespace) -> int:
    return delete_named(args, "Broker")


def delete_named(args: argparse.Namespace, kind: str) -> int:
    """`delete NAME...` of Brokers or Triggers: each its line, exit 1 if one failed."""
    from amimesh.cli import client, eventing, knative, render

    out, err = render.console(), render.console(stderr=True)

    def delete(api: MeshClient) -> int:
        failed = 0
        for name in args.names:
            try:
                eventing.delete(api, kind, args.namespace, name)
            except (knative.NotFound, client.ApiError) as e:
                render.print_error(err, str(e))
                failed += 1
                continue
            out.print(f"{kind} '{name}' deleted in namespace '{args.namespace}'.", markup=False)
        return 1 if failed else 0

    return connected(args, delete)


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render_eventing

    return list_items(
        args,
        lambda api: eventing.list_brokers(api, namespace_of(args)),
        lambda _api, items: render_eventing.brokers_table(
            items, namespaces=namespace_of(args) is None
        ),
        "No brokers found.",
    )


def run_describe(args: argparse.Namespace) -> int:
    from amimesh.cli import eventing, render_eventing

    def view(api: MeshClient, broker: dict[str, Any]) -> RenderableType:
        triggers = eventing.list_triggers(api, args.namespace, broker=args.name)
        return render_eventing.broker_view(broker, triggers)

    return describe_item(
        args, lambda api: eventing.get_one(api, "Broker", args.namespace, args.name), view
    )
