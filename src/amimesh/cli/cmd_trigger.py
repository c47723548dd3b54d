"""`ami trigger list|describe`: Knative Triggers, in `kn`'s words.

ami trigger list [-b BROKER]
ami trigger describe orders
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.kn_shared import (
    add_actions,
    add_describe,
    add_list,
    describe_item,
    list_items,
    namespace_of,
)


def add_parser(sub: Any) -> None:
    actions = add_actions(sub, "trigger", "Knative Triggers, in kn's words: list, describe")
    add_list(
        actions,
        "list Triggers",
        run_list,
        lambda p: p.add_argument("-b", "--broker", help="those of one Broker"),
    )
    add_describe(actions, "a Trigger: its broker, filter, sink, delivery, conditions", run_describe)


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
