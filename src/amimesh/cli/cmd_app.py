"""`ami app list|get|sync|diff|history`: Argo CD Applications, in `argocd app`'s words.

    ami app list [-n NS | -A] [-o json|yaml]
    ami app get NAME [-n NS] [--refresh] [-o json|yaml]
    ami app sync NAME [-n NS] [--revision REV] [--prune]
    ami app diff NAME [-n NS] [--revision REV]     exit 1 when there are differences
    ami app history NAME [-n NS]

`list`: NAME, NAMESPACE (the destination), STATUS (sync), HEALTH, SYNCPOLICY,
CONDITIONS, REPO, PATH, TARGET. `get`: the Application's source, sync and health
status, its last operation, then each resource with its sync and health status.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amimesh.cli import kn_shared as shared

if TYPE_CHECKING:
    from rich.console import RenderableType

    from amimesh.cli.client import MeshClient

PREFIX = "/api/v1/gitops/applications"


def add_parser(sub: Any) -> None:
    actions = shared.add_actions(
        sub, "app", "Argo CD Applications, in argocd's words: list, get, sync, diff, history"
    )
    shared.add_list(actions, "list applications", run_list)
    get: argparse.ArgumentParser = actions.add_parser("get", help="an application's status")
    get.add_argument("name", metavar="NAME")
    get.add_argument("--refresh", action="store_true", help="read the repository first")
    shared.add_namespace(get)
    shared.add_output(get)
    get.set_defaults(run=run_get)
    sync: argparse.ArgumentParser = actions.add_parser("sync", help="sync an application now")
    sync.add_argument("name", metavar="NAME")
    sync.add_argument("--revision", help="sync this branch, tag or commit, not the target")
    sync.add_argument(
        "--prune", action="store_true", help="delete what the repository no longer has"
    )
    shared.add_namespace(sync)
    sync.set_defaults(run=run_sync)
    diff: argparse.ArgumentParser = actions.add_parser(
        "diff", help="what a sync would change (exit 1 when anything would)"
    )
    diff.add_argument("name", metavar="NAME")
    diff.add_argument("--revision", help="compare with this revision, not the target")
    shared.add_namespace(diff)
    diff.set_defaults(run=run_diff)
    history: argparse.ArgumentParser = actions.add_parser(
        "history", help="the revisions an application deployed"
    )
    history.add_argument("name", metavar="NAME")
    shared.add_namespace(history)
    history.set_defaults(run=run_history)


def _path(args: argparse.Namespace) -> str:
    return f"{PREFIX}/{args.namespace}/{args.name}"


def fetch(api: MeshClient, namespace: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(PREFIX, {"namespace": namespace or ""})["items"]
    return items


def _status(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return item.get("status") or {}


def _policy(item: Mapping[str, Any]) -> str:
    automated = ((item.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    if automated is None or automated.get("enabled") is False:
        return "Manual"
    extras = [k for k in ("prune", "selfHeal") if automated.get(k)]
    return (
        "Auto"
        + ("-Prune" if "prune" in extras else "")
        + (" (selfHeal)" if "selfHeal" in extras else "")
    )


def table(items: Sequence[Mapping[str, Any]], *, namespaces: bool = False) -> RenderableType:
    """`argocd app list`, the columns that mean something here."""
    from amimesh.cli import render

    headers = ("APP NAMESPACE",) if namespaces else ()
    t = render.table(
        *headers,
        "NAME",
        "NAMESPACE",
        "STATUS",
        "HEALTH",
        "SYNCPOLICY",
        "CONDITIONS",
        "REPO",
        "PATH",
        "TARGET",
    )
    for item in items:
        meta, spec, status = item["metadata"], item.get("spec") or {}, _status(item)
        source = spec.get("source") or {}
        conditions = ",".join(c.get("type", "") for c in status.get("conditions") or [])
        row = [str(meta.get("namespace", "default"))] if namespaces else []
        row += [
            str(meta["name"]),
            str((spec.get("destination") or {}).get("namespace") or "-"),
            str((status.get("sync") or {}).get("status", "Unknown")),
            str((status.get("health") or {}).get("status", "Unknown")),
            _policy(item),
            conditions or "<none>",
            str(source.get("repoURL", "")),
            str(source.get("path", ".")),
            str(source.get("targetRevision", "HEAD")),
        ]
        t.add_row(*row)
    return t


def run_list(args: argparse.Namespace) -> int:
    ns = shared.namespace_of(args)
    return shared.list_items(
        args,
        lambda api: fetch(api, ns),
        lambda api, items: table(items, namespaces=ns is None),
        "No applications found",
    )


def view(item: Mapping[str, Any]) -> RenderableType:
    """`argocd app get`: the header, the last operation, then the resources."""
    from rich.console import Group
    from rich.text import Text

    from amimesh.cli import render

    meta, spec, status = item["metadata"], item.get("spec") or {}, _status(item)
    source, sync = spec.get("source") or {}, status.get("sync") or {}
    revision = str(sync.get("revision") or "")
    target = source.get("targetRevision", "HEAD")
    pairs = [
        ("Name", f"{meta.get('namespace', 'default')}/{meta['name']}"),
        ("Project", spec.get("project", "default")),
        ("Namespace", (spec.get("destination") or {}).get("namespace") or "-"),
        ("Repo", source.get("repoURL", "")),
        ("Target", target),
        ("Path", source.get("path", ".")),
        ("Sync Policy", _policy(item)),
        (
            "Sync Status",
            f"{sync.get('status', 'Unknown')} to {target}"
            + (f" ({revision[:7]})" if revision else ""),
        ),
        ("Health Status", (status.get("health") or {}).get("status", "Unknown")),
    ]
    op = status.get("operationState")
    if op:
        pairs += [
            ("Operation", "Sync"),
            ("Sync Revision", ((op.get("operation") or {}).get("sync") or {}).get("revision", "")),
            ("Phase", op.get("phase", "")),
            ("Start", op.get("startedAt", "")),
            ("Finished", op.get("finishedAt", "")),
            ("Message", op.get("message", "")),
        ]
    width = max(len(k) for k, _ in pairs) + 2
    parts: list[RenderableType] = [
        Text("\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in pairs))
    ]
    conditions = status.get("conditions") or []
    if conditions:
        c = render.table("CONDITION", "MESSAGE", "LAST TRANSITION")
        for cond in conditions:
            c.add_row(
                str(cond.get("type", "")),
                str(cond.get("message", "")),
                str(cond.get("lastTransitionTime", "")),
            )
        parts += [Text(""), c]
    t = render.table("GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH", "MESSAGE")
    changed = {
        (r.get("kind"), r.get("namespace"), r.get("name")): str(r.get("message", ""))
        for r in ((op or {}).get("syncResult") or {}).get("resources") or []
    }
    for r in status.get("resources") or []:
        key = (r.get("kind"), r.get("namespace"), r.get("name"))
        state = str(r.get("status", ""))
        if r.get("requiresPruning"):
            state += " (requires pruning)"
        t.add_row(
            str(r.get("group", "")),
            str(r.get("kind", "")),
            str(r.get("namespace", "")),
            str(r.get("name", "")),
            state,
            str((r.get("health") or {}).get("status", "")),
            changed.get(key, ""),
        )
    parts += [Text(""), t]
    return Group(*parts)


def run_get(args: argparse.Namespace) -> int:
    from amimesh.cli import render

    out = render.console()

    def show(api: MeshClient) -> int:
        item = api.get(_path(args), {"refresh": "1" if args.refresh else ""})
        if args.output != "table":
            shared.print_items(out, [item], args.output, single=True)
        else:
            out.print(view(item))
        return 0

    return shared.connected(args, show)


def run_sync(args: argparse.Namespace) -> int:
    import json

    from amimesh.cli import client, render

    out, err = render.console(), render.console(stderr=True)

    def go(api: MeshClient) -> int:
        body = json.dumps({"revision": args.revision or "", "prune": bool(args.prune)})
        try:
            answer = api.request("POST", f"{_path(args)}/sync", body=body.encode())
            code = 0
        except client.ApiError as e:
            if "operationState" not in e.body:
                raise
            answer, code = e.body, 1
        op = answer["operationState"]
        revision = ((op.get("operation") or {}).get("sync") or {}).get("revision", "")
        lines = [
            f"Name:          {args.namespace}/{args.name}",
            "Operation:     Sync",
            f"Sync Revision: {revision}",
            f"Phase:         {op.get('phase', '')}",
            f"Start:         {op.get('startedAt', '')}",
            f"Finished:      {op.get('finishedAt', '')}",
            f"Message:       {op.get('message', '')}",
        ]
        out.print("\n".join(lines), markup=False, highlight=False)
        resources = (op.get("syncResult") or {}).get("resources") or []
        if resources:
            t = render.table("GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "MESSAGE")
            for r in resources:
                t.add_row(
                    *(str(r.get(k, "")) for k in ("group", "kind", "namespace", "name")),
                    str(r.get("status", "")),
                    str(r.get("message", "")),
                )
            out.print()
            out.print(t)
        if code:
            render.print_error(err, str(op.get("message", "sync failed")))
        return code

    return shared.connected(args, go)


def run_diff(args: argparse.Namespace) -> int:
    from amimesh.cli import render

    out, err = render.console(), render.console(stderr=True)

    def go(api: MeshClient) -> int:
        answer = api.get(f"{_path(args)}/diff", {"revision": args.revision or ""})
        for e in answer.get("errors") or []:
            render.print_error(err, str(e))
        if answer.get("errors"):
            return 2
        for r in answer.get("resources") or []:
            title = f"===== {r['kind']} {r['namespace']}/{r['name']} ({r['action']}) ======"
            out.print(title, markup=False, highlight=False)
            out.print(r.get("diff", ""), markup=False, highlight=False, end="")
        return 1 if answer.get("resources") else 0

    return shared.connected(args, go)


def run_history(args: argparse.Namespace) -> int:
    from amimesh.cli import render

    out = render.console()

    def go(api: MeshClient) -> int:
        item = api.get(_path(args))
        source = (item.get("spec") or {}).get("source") or {}
        out.print(f"SOURCE  {source.get('repoURL', '')}", markup=False, highlight=False)
        t = render.table("ID", "DATE", "REVISION")
        for h in _status(item).get("history") or []:
            rev = str(h.get("revision", ""))
            t.add_row(str(h.get("id", "")), str(h.get("deployedAt", "")), rev)
        out.print(t)
        return 0

    return shared.connected(args, go)
