"""`ami service create|update|list|describe|delete`: Knative Services in `kn`'s words.

    ami service create hello --image example.com/hello --cmd python3 --arg app.py
    ami service update hello --env TARGET=two
    ami service update hello --traffic hello-00001=50 --traffic @latest=50 --tag hello-00001=v1
    ami service list
    ami service describe hello
    ami service delete hello

Each change is Knative YAML applied through the API (`amimesh.cli.knative`, the Python
API under these commands); `create` and `update` wait for the Service to be Ready, as
kn does, unless `--no-wait`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_apply import MESH_HELP

if TYPE_CHECKING:
    from rich.console import Console

    from amimesh.cli.ksvc_flags import TemplateFlags
    from amimesh.cli.ksvc_traffic import TrafficFlags

WAIT_TIMEOUT_S = 600  # kn's default
# Flags whose value may start with a dash, as in kn: `--arg --bind` (see `main`).
DASH_VALUES = ("--cmd", "--arg")


# --- flags shared by `service`, `revision` and `route` -----------------------------------


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


# --- the parser --------------------------------------------------------------------------


def _template_flags(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("--image", help="the image to run" + (" (required)" if create else ""))
    p.add_argument(
        "--cmd",
        action="append",
        metavar="C",
        help="the command to run instead of the image's (repeatable: --cmd sh --cmd app.sh)",
    )
    p.add_argument(
        "--arg", action="append", metavar="A", help="an argument of the command (repeatable)"
    )
    p.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="NAME=value",
        help="an environment variable (repeatable)" + ("" if create else "; NAME- unsets it"),
    )
    p.add_argument(
        "-p", "--port", metavar="[NAME:]PORT", help="the port the app listens on (8080, h2c:8080)"
    )
    p.add_argument("--scale-min", type=int, metavar="N", help="the minimum number of replicas")
    p.add_argument("--scale-max", type=int, metavar="N", help="the maximum number of replicas")
    p.add_argument(
        "--concurrency-limit",
        type=int,
        metavar="N",
        help="the most requests one replica serves at once",
    )
    p.add_argument(
        "--revision-name",
        metavar="NAME",
        help="the new revision's name (prefixed with SERVICE- when it is not; {{.Service}} works)",
    )
    p.add_argument(
        "-a",
        "--annotation",
        action="append",
        default=[],
        metavar="KEY=value",
        help="an annotation of the Service and its revision (repeatable)"
        + ("" if create else "; KEY- unsets it"),
    )
    p.add_argument("--no-wait", action="store_true", help="do not wait for the Service to be Ready")
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=WAIT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for Ready (default {WAIT_TIMEOUT_S})",
    )


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "service", help="Knative Services, in kn's words: create, update, list, describe, delete"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a Knative Service")
    create.add_argument("name", metavar="NAME")
    _template_flags(create, create=True)
    create.add_argument("--force", action="store_true", help="replace the Service if it exists")
    add_namespace(create)
    create.set_defaults(run=run_create)

    update = actions.add_parser("update", help="change a Knative Service: a new revision, traffic")
    update.add_argument("name", metavar="NAME")
    _template_flags(update, create=False)
    update.add_argument(
        "--traffic",
        action="append",
        default=[],
        metavar="REF=PERCENT",
        help="a share of the traffic, REF a revision, a tag or @latest (repeatable; they add "
        "up to 100)",
    )
    update.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="REF=TAG",
        help="tag a revision (or @latest): its own URL, TAG-SERVICE.NS.DOMAIN (repeatable)",
    )
    update.add_argument(
        "--untag", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)"
    )
    add_namespace(update)
    update.set_defaults(run=run_update)

    listing = actions.add_parser("list", aliases=["ls"], help="list Knative Services")
    add_namespace(listing, all_namespaces=True)
    add_output(listing)
    listing.set_defaults(run=run_list)

    describe = actions.add_parser("describe", help="a Knative Service, its revisions and traffic")
    describe.add_argument("name", metavar="NAME")
    add_namespace(describe)
    add_output(describe, "url")
    describe.set_defaults(run=run_describe)

    delete = actions.add_parser("delete", help="delete Knative Services and their revisions")
    delete.add_argument("names", nargs="+", metavar="NAME")
    add_namespace(delete)
    delete.set_defaults(run=run_delete)


# --- running -----------------------------------------------------------------------------


def template_flags(args: argparse.Namespace) -> TemplateFlags:
    from amimesh.cli.ksvc_flags import TemplateFlags

    return TemplateFlags(
        image=args.image,
        cmd=tuple(args.cmd) if args.cmd is not None else None,
        args=tuple(args.arg) if args.arg is not None else None,
        env=tuple(args.env),
        port=args.port,
        scale_min=args.scale_min,
        scale_max=args.scale_max,
        concurrency_limit=args.concurrency_limit,
        revision_name=args.revision_name,
        annotations=tuple(args.annotation),
    )


def traffic_flags(args: argparse.Namespace) -> TrafficFlags:
    from amimesh.cli.ksvc_traffic import TrafficFlags, split_commas

    return TrafficFlags(
        traffic=split_commas(args.traffic),
        tags=split_commas(args.tag),
        untags=split_commas(args.untag),
    )


def _wait_and_report(args: argparse.Namespace, verb: str) -> int:
    """Wait for Ready as kn does, printing each step; then the latest revision and URL."""
    from amimesh.cli import client, knative, render

    out = render.console()
    api = client.connect(args.mesh)

    def step(elapsed: float, cond: Mapping[str, Any]) -> None:
        if cond.get("status") == "True":
            what = "Ready to serve."
        else:
            what = ": ".join(str(cond[k]) for k in ("reason", "message") if cond.get(k))
        out.print(f"  {elapsed:6.3f}s {what or 'waiting'}", markup=False)

    ready = knative.wait_ready(
        api, args.namespace, args.name, timeout_s=args.wait_timeout, on_change=step
    )
    status = ready.get("status") or {}
    out.print("")
    out.print(
        f"Service '{args.name}' {verb} to latest revision "
        f"'{status.get('latestReadyRevisionName', '')}' is available at URL:",
        markup=False,
    )
    out.print(str(status.get("url", "")), markup=False)
    return 0


def _verb(action: str, *, update: bool) -> str:
    return {"created": "created", "unchanged": "unchanged"}.get(
        action, "updated" if update else "replaced"
    )


def run_create(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render
    from amimesh.cli.ksvc_flags import new_service

    flags = template_flags(args)
    out = render.console()

    def create() -> int:
        new_service(args.name, args.namespace, flags)  # a bad flag, before any request
        api = client.connect(args.mesh)
        _service, action = knative.create_service(
            api, args.name, args.namespace, flags, force=args.force
        )
        verb = _verb(action, update=False)
        if args.no_wait:
            out.print(f"Service '{args.name}' {verb} in namespace '{args.namespace}'.")
            return 0
        out.print(
            f"Service '{args.name}' {verb} in namespace '{args.namespace}'; "
            "waiting for it to be ready:",
            markup=False,
        )
        out.print("")
        return _wait_and_report(args, verb)

    return guarded(create)


def run_update(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render

    out = render.console()

    def update() -> int:
        api = client.connect(args.mesh)
        _service, action = knative.update_service(
            api, args.name, args.namespace, template_flags(args), traffic_flags(args)
        )
        verb = _verb(action, update=True)
        if args.no_wait:
            out.print(f"Service '{args.name}' {verb} in namespace '{args.namespace}'.")
            return 0
        out.print(
            f"Service '{args.name}' {verb} in namespace '{args.namespace}'; "
            "waiting for it to be ready:",
            markup=False,
        )
        out.print("")
        return _wait_and_report(args, verb)

    return guarded(update)


def run_list(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import client, knative, render, render_knative

    out, err = render.console(), render.console(stderr=True)

    def show() -> int:
        api = client.connect(args.mesh)
        items = knative.list_services(api, namespace_of(args))
        if args.output != "table":
            print_items(out, items, args.output, single=False)
        elif not items:
            err.print("No services found.")
        else:
            namespaces = namespace_of(args) is None
            out.print(render_knative.services_table(items, time.time(), namespaces=namespaces))
        return 0

    return guarded(show)


def run_describe(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import client, knative, render, render_knative

    out = render.console()

    def show() -> int:
        api = client.connect(args.mesh)
        service = knative.get_service(api, args.namespace, args.name)
        if args.output == "url":
            out.print(str((service.get("status") or {}).get("url", "")), markup=False)
        elif args.output != "table":
            print_items(out, [service], args.output, single=True)
        else:
            revisions = knative.list_revisions(api, args.namespace, args.name)
            rows = knative.instances(api)
            out.print(render_knative.service_view(service, revisions, rows, time.time()))
        return 0

    return guarded(show)


def run_delete(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative, render

    out = render.console()

    def delete() -> int:
        api = client.connect(args.mesh)
        for name in args.names:
            body = knative.delete_service(api, name, args.namespace)
            out.print(
                f"Service '{name}' successfully deleted in namespace '{args.namespace}'.",
                markup=False,
            )
            for note in body.get("notes", []):
                out.print(note, markup=False, style="dim")
        return 0

    return guarded(delete)
