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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amimesh.cli.kn_shared import (
    add_actions,
    add_delete,
    add_describe,
    add_list,
    add_namespace,
    connected,
    describe_item,
    guarded,
    list_items,
    namespace_of,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from amimesh.cli.client import MeshClient
    from amimesh.cli.ksvc_flags import TemplateFlags
    from amimesh.cli.ksvc_traffic import TrafficFlags

WAIT_TIMEOUT_S = 600  # kn's default
# Flags whose value may start with a dash, as in kn: `--arg --bind` (see `main`).
DASH_VALUES = ("--cmd", "--arg")


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
    actions = add_actions(
        sub, "service", "Knative Services, in kn's words: create, update, list, describe, delete"
    )

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

    add_list(actions, "list Knative Services", run_list)
    add_describe(actions, "a Knative Service, its revisions and traffic", run_describe, "url")
    add_delete(actions, "delete Knative Services and their revisions", run_delete)


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


def _applied(args: argparse.Namespace, action: str, *, update: bool) -> int:
    """What kn prints once the Service is applied (the API's `action`); then, unless
    `--no-wait`, the wait for Ready."""
    from amimesh.cli import render

    out = render.console()
    verb = {"created": "created", "unchanged": "unchanged"}.get(
        action, "updated" if update else "replaced"
    )
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


def run_create(args: argparse.Namespace) -> int:
    from amimesh.cli import client, knative
    from amimesh.cli.ksvc_flags import new_service

    flags = template_flags(args)

    def create() -> int:
        new_service(args.name, args.namespace, flags)  # a bad flag, before any request
        api = client.connect(args.mesh)
        _service, action = knative.create_service(
            api, args.name, args.namespace, flags, force=args.force
        )
        return _applied(args, action, update=False)

    return guarded(create)


def run_update(args: argparse.Namespace) -> int:
    from amimesh.cli import knative

    def update(api: MeshClient) -> int:
        _service, action = knative.update_service(
            api, args.name, args.namespace, template_flags(args), traffic_flags(args)
        )
        return _applied(args, action, update=True)

    return connected(args, update)


def run_list(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import knative, render_knative

    return list_items(
        args,
        lambda api: knative.list_services(api, namespace_of(args)),
        lambda _api, items: render_knative.services_table(
            items, time.time(), namespaces=namespace_of(args) is None
        ),
        "No services found.",
    )


def run_describe(args: argparse.Namespace) -> int:
    import time

    from amimesh.cli import knative, render_knative

    def view(api: MeshClient, service: dict[str, Any]) -> RenderableType:
        revisions = knative.list_revisions(api, args.namespace, args.name)
        rows = knative.instances(api)
        return render_knative.service_view(service, revisions, rows, time.time())

    return describe_item(
        args, lambda api: knative.get_service(api, args.namespace, args.name), view
    )


def run_delete(args: argparse.Namespace) -> int:
    from amimesh.cli import knative, render

    out = render.console()

    def delete(api: MeshClient) -> int:
        for name in args.names:
            body = knative.delete_service(api, name, args.namespace)
            out.print(
                f"Service '{name}' successfully deleted in namespace '{args.namespace}'.",
                markup=False,
            )
            for note in body.get("notes", []):
                out.print(note, markup=False, style="dim")
        return 0

    return connected(args, delete)
