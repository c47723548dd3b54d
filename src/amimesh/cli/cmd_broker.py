"""`ami broker list|describe`: Knative Brokers, in `kn`'s words.

ami broker list
ami broker describe default
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from amimesh.cli.kn_shared import (
    add_actions,
    add_describe,
    add_list,
    describe_item,
    list_items,
    namespace_of,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = add_actions(sub, "broker", "Knative Brokers, in kn's words: list, describe")
    add_list(actions, "list Brokers", run_list)
    add_describe(actions, "a Broker: its address, delivery, triggers, conditions", run_describe)


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
