"""`ami revision list|describe|delete`: a Knative Service's revisions, in `kn`'s words.

    ami revision list -s hello
    ami revision describe hello-00001
    ami revision delete hello-00001

Revisions are made by the control plane, one per template change; a revision can be
deleted once no route references it and it is not its configuration's latest.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from amimesh.cli.kn_shared import (
    add_actions,
    add_delete,
    add_describe,
    add_list,
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
        sub, "revision", "Knative revisions, in kn's words: list, describe, delete"
    )
    add_list(
        actions,
        "list revisions",
        run_list,
        lambda p: p.add_argument(
            "-s", "--service", metavar="SERVICE", help="those of one Knative Service"
        ),
    )
    add_describe(actions, "a revision: its container, traffic, conditions", run_describe)
    add_delete(actions, "delete revisions no route references", run_delete)


def run_list(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import knative, render_knative

    ns = namespace_of(args)
    if args.service and ns is None:
        ns = args.namespace  # a Service is named in one namespace

    def table(api: MeshClient, revisions: list[dict[str, Any]]) -> RenderableType:
        services = render_knative.services_by_key(knative.list_services(api, ns))
        return render_knative.revisions_table(
            revisions, services, time.time(), namespaces=namespace_of(args) is None
        )

    return list_items(
        args,
        lambda api: knative.list_revisions(api, ns, args.service),
        table,
        "No revisions found.",
    )


def run_describe(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import knative, render_knative

    def view(api: MeshClient, revision: dict[str, Any]) -> RenderableType:
        service_name = (revision["metadata"].get("labels") or {}).get(render_knative.SERVICE_LABEL)
        service = None
        if service_name:
            found = knative.list_services(api, args.namespace)
            service = render_knative.services_by_key(found).get((args.namespace, service_name))
        rows = knative.instances(api)
        return render_knative.revision_view(revision, service, rows, time.time())

    return describe_item(
        args, lambda api: knative.get_revision(api, args.namespace, args.name), view
    )


def run_delete(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render

    out, err = render.console(), render.console(stderr=True)

    def delete(api: MeshClient) -> int:
        failed = 0
        for name in args.names:
            try:
                knative.delete_revision(api, name, args.namespace)
            except (knative.NotFound, client.ApiError) as e:
                render.print_error(err, str(e))
                failed += 1
                continue
            out.print(f"Revision '{name}' deleted in namespace '{args.namespace}'.", markup=False)
        return 1 if failed else 0

    return connected(args, delete)
