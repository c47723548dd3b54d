"""What `ami pipeline`, `pipelinerun`, `task` and `taskrun` share: `list`, `describe`,
`start`, `logs` and `cancel`, in `tkn`'s words and flags."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amimesh.cli.kn_shared import (
    add_actions,
    add_namespace,
    add_output,
    list_items,
    namespace_of,
    print_items,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from amimesh.cli.client import MeshClient

__all__ = ["add_actions", "add_namespace", "add_output", "namespace_of"]


def connected(args: argparse.Namespace, action: Callable[[MeshClient], int]) -> int:
    """`action` with a client of the mesh; Tekton's errors exit 1 (not found) or 2 (flags)."""
    from amimesh.cli import client, render, tekton

    def run() -> int:
        try:
            return action(client.connect(args.mesh))
        except tekton.NotFound as e:
            render.print_error(render.console(stderr=True), str(e))
            return 1
        except tekton.FlagError as e:
            render.print_error(render.console(stderr=True), str(e))
            return 2

    return client.guarded(run)


def show_list(
    args: argparse.Namespace,
    fetch: Callable[[MeshClient], list[dict[str, Any]]],
    table: Callable[[MeshClient, list[dict[str, Any]]], RenderableType],
    none_found: str,
) -> int:
    return list_items(args, fetch, table, none_found, connect=connected)


def show_one(
    args: argparse.Namespace,
    fetch: Callable[[MeshClient], dict[str, Any]],
    view: Callable[[MeshClient, dict[str, Any]], RenderableType],
) -> int:
    from amimesh.cli import render

    out = render.console()

    def show(api: MeshClient) -> int:
        item = fetch(api)
        if args.output != "table":
            print_items(out, [item], args.output, single=True)
        else:
            out.print(view(api, item))
        return 0

    return connected(args, show)


def add_start(actions: Any, kind: str, run: Callable[[argparse.Namespace], int]) -> None:
    p: argparse.ArgumentParser = actions.add_parser("start", help=f"start a {kind} (a run of it)")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a param (repeatable); an array param takes a,b,c",
    )
    p.add_argument(
        "-w",
        "--workspace",
        dest="workspaces",
        action="append",
        default=[],
        metavar="SPEC",
        help="name=W,emptyDir= | name=W,claimName=C | name=W,config=CM (repeatable)",
    )
    p.add_argument("--timeout", help="the run's timeout (a duration: 1h, 30m)")
    p.add_argument("--showlog", action="store_true", help="follow the run's logs")
    add_namespace(p)
    p.set_defaults(run=run)


def start(args: argparse.Namespace, kind: str) -> int:
    from amimesh.cli import render, tekton

    out = render.console()
    run_kind = "PipelineRun" if kind == "Pipeline" else "TaskRun"
    command = run_kind.lower()

    def go(api: MeshClient) -> int:
        name = tekton.start(
            api,
            kind,
            args.name,
            args.namespace,
            params=args.params,
            workspaces=args.workspaces,
            timeout=args.timeout,
        )
        out.print(f"{run_kind} started: {name}", markup=False)
        if not args.showlog:
            out.print(
                f"\nIn order to track the {run_kind} progress run:\n"
                f"ami {command} logs {name} -f -n {args.namespace}",
                markup=False,
            )
            return 0
        _wait_listed(api, run_kind, args.namespace, name)
        return print_logs(api, run_kind, args.namespace, name, follow=True)

    return connected(args, go)


def _wait_listed(api: MeshClient, kind: str, namespace: str, name: str) -> None:
    """A run just applied is reported by its node agent a moment later."""
    from amimesh.cli import tekton

    deadline = time.monotonic() + 30
    while not tekton.list_runs(api, kind, namespace, name):
        if time.monotonic() > deadline:
            raise tekton.NotFound(f"{kind} {namespace}/{name} was not started by any node agent")
        time.sleep(tekton.POLL_S)


def add_logs(actions: Any, kind: str, run: Callable[[argparse.Namespace], int]) -> None:
    p: argparse.ArgumentParser = actions.add_parser(
        "logs", help=f"a {kind}'s logs, each line prefixed [task : step]"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="stream the logs as they come")
    add_namespace(p)
    p.set_defaults(run=run)


def print_logs(api: MeshClient, kind: str, namespace: str, name: str, *, follow: bool) -> int:
    from amimesh.cli import tekton

    try:
        for line in tekton.follow_logs(api, kind, namespace, name, follow=follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        return 130
    final = tekton.get_run(api, kind, namespace, name)
    return 0 if not tekton.done(final) or tekton.condition(final).get("status") == "True" else 1


def logs(args: argparse.Namespace, kind: str) -> int:
    return connected(
        args, lambda api: print_logs(api, kind, args.namespace, args.name, follow=args.follow)
    )


def add_cancel(actions: Any, kind: str, run: Callable[[argparse.Namespace], int]) -> None:
    p: argparse.ArgumentParser = actions.add_parser("cancel", help=f"cancel a running {kind}")
    p.add_argument("name", metavar="NAME")
    add_namespace(p)
    p.set_defaults(run=run)


def cancel(args: argparse.Namespace, kind: str) -> int:
    from amimesh.cli import client, render, tekton

    def go(api: MeshClient) -> int:
        try:
            tekton.cancel(api, kind, args.namespace, args.name)
        except client.ApiError as e:
            if e.status == 404:
                raise tekton.NotFound(
                    f'{kind.lower()}s.tekton.dev "{args.name}" not found in namespace '
                    f"{args.namespace}"
                ) from None
            raise
        render.console().print(f"{kind} cancelled: {args.name}", markup=False)
        return 0

    return connected(args, go)


def add_list(actions: Any, help: str, run: Callable[[argparse.Namespace], int]) -> None:
    p: argparse.ArgumentParser = actions.add_parser("list", aliases=["ls"], help=help)
    add_namespace(p, all_namespaces=True)
    add_output(p)
    p.set_defaults(run=run)


def add_describe(actions: Any, help: str, run: Callable[[argparse.Namespace], int]) -> None:
    p: argparse.ArgumentParser = actions.add_parser("describe", aliases=["desc"], help=help)
    p.add_argument("name", metavar="NAME")
    add_namespace(p)
    add_output(p)
    p.set_defaults(run=run)


def add_run_parser(
    sub: Any,
    command: str,
    kind: str,
    describe_help: str,
    describe: Callable[[argparse.Namespace], int],
) -> None:
    """`ami pipelinerun|taskrun list|describe|logs|cancel`: the same four actions on a
    run kind, `describe` its own."""
    runs = "pipeline runs" if kind == "PipelineRun" else "task runs"
    actions = add_actions(
        sub, command, f"Tekton {kind}s, in tkn's words: list, describe, logs, cancel"
    )
    add_list(actions, f"list {runs}", lambda args: list_runs(args, kind))
    add_describe(actions, describe_help, describe)
    add_logs(actions, kind, lambda args: logs(args, kind))
    add_cancel(actions, kind, lambda args: cancel(args, kind))


def list_runs(args: argparse.Namespace, kind: str) -> int:
    from amimesh.cli import render_tekton, tekton

    ns = namespace_of(args)
    return show_list(
        args,
        lambda api: tekton.list_runs(api, kind, ns),
        lambda api, items: render_tekton.runs_table(items, time.time(), namespaces=ns is None),
        f"No {kind}s found",
    )
