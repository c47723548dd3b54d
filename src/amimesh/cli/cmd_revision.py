"""`ami revision list|describe|delete`: a Knative Service's revisions, in `kn`'s words.

    ami revision list -s hello
    ami revision describe hello-00001
    ami revision delete hello-00001

Revisions are made by the control plane, one per template change; a revision can be
deleted once no route references it and it is not its configuration's latest.
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_service import add_namespace, add_output, guarded, namespace_of, print_items


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "revision", help="Knative revisions, in kn's words: list, describe, delete"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", aliases=["ls"], help="list revisions")
    listing.add_argument("-s", "--service", metavar="SERVICE", help="those of one Knative Service")
    add_namespace(listing, all_namespaces=True)
    add_output(listing)
    listing.set_defaults(run=run_list)

    describe = actions.add_parser("describe", help="a revision: its container, traffic, conditions")
    describe.add_argument("name", metavar="NAME")
    add_namespace(describe)
    add_output(describe)
    describe.set_defaults(run=run_describe)

    delete = actions.add_parser("delete", help="delete revisions no route references")
    delete.add_argument("names", nargs="+", metavar="NAME")
    add_namespace(delete)
    delete.set_defaults(run=run_delete)


def run_list(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import client, knative, render, render_knative

    out, err = render.console(), render.console(stderr=True)

    def show() -> int:
        api = client.connect(args.mesh)
        ns = namespace_of(args)
        if args.service and ns is None:
            ns = args.namespace  # a Service is named in one namespace
        revisions = knative.list_revisions(api, ns, args.service)
        if args.output != "table":
            print_items(out, revisions, args.output, single=False)
        elif not revisions:
            err.print("No revisions found.")
        else:
            services = render_knative.services_by_key(knative.list_services(api, ns))
            table = render_knative.revisions_table(
                revisions, services, time.time(), namespaces=namespace_of(args) is None
            )
            out.print(table)
        return 0

    return guarded(show)


def run_describe(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import client, knative, render, render_knative

    out = render.console()

    def show() -> int:
        api = client.connect(args.mesh)
        revision = knative.get_revision(api, args.namespace, args.name)
        if args.output != "table":
            print_items(out, [revision], args.output, single=True)
            return 0
        service_name = (revision["metadata"].get("labels") or {}).get(render_knative.SERVICE_LABEL)
        service = None
        if service_name:
            found = knative.list_services(api, args.namespace)
            service = render_knative.services_by_key(found).get((args.namespace, service_name))
        rows = knative.instances(api)
        out.print(render_knative.revision_view(revision, service, rows, time.time()))
        return 0

    return guarded(show)


def run_delete(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render

    out, err = render.console(), render.console(stderr=True)

    def delete() -> int:
        api = client.connect(args.mesh)
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

    return guarded(delete)
