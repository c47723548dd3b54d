"""`ami eventlistener list|describe`: Tekton Triggers' EventListeners, in `tkn`'s words.

    ami eventlistener list [-n NS | -A] [-o json|yaml]
    ami eventlistener describe NAME [-n NS] [-o json|yaml]

`list`: NAME, AGE, URL (its address in the mesh, as Tekton's status gives it) and
AVAILABLE (its listener instance is ready). `describe`: the same, its service, and
each trigger with its bindings, template and interceptors.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from rich.table import Table

    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    help = "Tekton EventListeners, in tkn's words: list, describe"
    actions = shared.add_actions(sub, "eventlistener", help)
    shared.add_list(actions, "list eventlisteners", run_list)
    shared.add_describe(actions, "describe an eventlistener", run_describe)


def fetch(api: MeshClient, namespace: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(
        "/api/v1/triggers/eventlisteners", {"namespace": namespace or ""}
    )["items"]
    return items


def table(items: Sequence[Mapping[str, Any]], now: float, *, namespaces: bool = False) -> Table:
    """`tkn eventlistener list`: NAME AGE URL AVAILABLE."""
    from amimesh.cli import render

    headers = ("NAMESPACE",) if namespaces else ()
    t = render.table(*headers, "NAME", "AGE", "URL", "AVAILABLE")
    for item in items:
        row = [str(item["namespace"])] if namespaces else []
        age = item.get("ageSeconds")
        row += [
            str(item["name"]),
            render.age(None if age is None else now - float(age), now),
            str(item["url"]),
            "True" if item.get("available") else "False",
        ]
        t.add_row(*row)
    return t


def run_list(args: argparse.Namespace) -> int:
    ns = shared.namespace_of(args)
    return shared.show_list(
        args,
        lambda api: fetch(api, ns),
        lambda api, items: table(items, time.time(), namespaces=ns is None),
        "No EventListeners found",
    )


def fetch_one(api: MeshClient, namespace: str, name: str) -> dict[str, Any]:
    """The EventListener as written, with its `status` (URL, availability)."""
    from amimesh.cli import tekton

    items: list[dict[str, Any]] = api.get(
        "/api/v1/resources",
        {"kind": "eventlisteners.triggers.tekton.dev", "namespace": namespace, "name": name},
    )["items"]
    found = [i for i in items if i["metadata"]["name"] == name]
    if not found:
        raise tekton.NotFound(
            f'eventlisteners.triggers.tekton.dev "{name}" not found in namespace {namespace}'
        )
    row = next((r for r in fetch(api, namespace) if r["name"] == name), {})
    return {
        **found[0],
        "status": {
            "address": {"url": row.get("url", "")},
            "service": row.get("service", ""),
            "available": bool(row.get("available")),
            "ageSeconds": row.get("ageSeconds"),
        },
    }


def _binding(b: Mapping[str, Any]) -> str:
    if b.get("ref"):
        kind = b.get("kind") or "TriggerBinding"
        return f"{b['ref']} ({kind})"
    return f"{b.get('name', '')}={b.get('value', '')}"


def _interceptor(i: Mapping[str, Any]) -> str:
    ref = i.get("ref") or {}
    return str(ref.get("name") or ("github" if "github" in i else "cel" if "cel" in i else "?"))


def view(item: Mapping[str, Any], now: float) -> Any:
    """`tkn eventlistener describe`: the header, then each trigger."""
    from rich.console import Group
    from rich.text import Text

    from amimesh.cli import render

    status = item.get("status") or {}
    age = status.get("ageSeconds")
    pairs = [
        ("Name", item["metadata"]["name"]),
        ("Namespace", item["metadata"].get("namespace", "default")),
        ("URL", (status.get("address") or {}).get("url", "")),
        ("Service", f"{status.get('service', '')} (port 8080)"),
        ("Available", "True" if status.get("available") else "False"),
        ("Age", render.age(None if age is None else now - float(age), now)),
    ]
    width = max(len(k) for k, _ in pairs) + 2
    header = Text("\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in pairs))
    spec = item.get("spec") or {}
    t = render.table("NAME", "BINDINGS", "TEMPLATE", "INTERCEPTORS")
    for i, trig in enumerate(spec.get("triggers") or []):
        if trig.get("triggerRef"):
            t.add_row(f"∙ {trig['triggerRef']}", "(Trigger)", "---", "---")
            continue
        template = trig.get("template") or {}
        t.add_row(
            f"∙ {trig.get('name') or i}",
            ", ".join(_binding(b) for b in trig.get("bindings") or []) or "---",
            str(template.get("ref") or ("(embedded)" if template.get("spec") else "---")),
            ", ".join(_interceptor(x) for x in trig.get("interceptors") or []) or "---",
        )
    return Group(header, Text(""), Text("EventListenerTriggers", style="bold"), t)


def run_describe(args: argparse.Namespace) -> int:
    return shared.show_one(
        args,
        lambda api: fetch_one(api, args.namespace, args.name),
        lambda api, item: view(item, time.time()),
    )
