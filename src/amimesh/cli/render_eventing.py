"""How `ami broker` and `ami trigger` print: kn's columns and describe views."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from amimesh.cli import render
from amimesh.cli.eventing import condition
from amimesh.eventing import history


def _ready(item: Mapping[str, Any]) -> tuple[Text, str]:
    status, why = condition(item)
    style = {"True": "green", "False": "red"}.get(status, "yellow")
    return Text(status, style=style), why


def brokers_table(items: Sequence[Mapping[str, Any]], *, namespaces: bool) -> Table:
    heads = ("NAMESPACE",) if namespaces else ()
    table = render.table(*heads, "NAME", "URL", "READY", "REASON")
    for b in items:
        meta = b["metadata"]
        url = str(((b.get("status") or {}).get("address") or {}).get("url", ""))
        ready, why = _ready(b)
        ns = (str(meta.get("namespace", "")),) if namespaces else ()
        table.add_row(*ns, str(meta["name"]), url, ready, why)
    return table


def _subscriber(spec: Mapping[str, Any]) -> str:
    sub = spec.get("subscriber") or {}
    ref = sub.get("ref")
    if ref:
        text = f"{ref.get('kind')}:{ref.get('name')}"
        return text + (sub.get("uri") or "")
    return str(sub.get("uri", ""))


def triggers_table(items: Sequence[Mapping[str, Any]], *, namespaces: bool) -> Table:
    heads = ("NAMESPACE",) if namespaces else ()
    table = render.table(*heads, "NAME", "BROKER", "SINK", "READY", "REASON")
    for t in items:
        meta, spec = t["metadata"], t.get("spec") or {}
        ready, why = _ready(t)
        ns = (str(meta.get("namespace", "")),) if namespaces else ()
        table.add_row(
            *ns, str(meta["name"]), str(spec.get("broker", "")), _subscriber(spec), ready, why
        )
    return table


def _delivery(delivery: Mapping[str, Any] | None) -> list[str]:
    if not delivery:
        return ["Delivery:   Knative's default (10 retries, exponential, PT0.2S)"]
    parts = [f"{k}={v}" for k, v in delivery.items() if k != "deadLetterSink"]
    lines = ["Delivery:   " + (", ".join(parts) or "as written")]
    dls = delivery.get("deadLetterSink")
    if dls:
        lines.append("DeadLetter: " + _subscriber({"subscriber": dls}))
    return lines


def _conditions(item: Mapping[str, Any]) -> list[str]:
    out = ["Conditions:"]
    for c in (item.get("status") or {}).get("conditions", []):
        why = " ".join(x for x in (c.get("reason", ""), c.get("message", "")) if x)
        out.append(f"  {c.get('type')}  {c.get('status')}  {why}".rstrip())
    return out


def broker_view(broker: Mapping[str, Any], triggers: Sequence[Mapping[str, Any]]) -> RenderableType:
    meta, spec = broker["metadata"], broker.get("spec") or {}
    url = ((broker.get("status") or {}).get("address") or {}).get("url", "")
    lines = [
        f"Name:       {meta['name']}",
        f"Namespace:  {meta.get('namespace', 'default')}",
        f"Address:    {url}",
        *_delivery(spec.get("delivery")),
        "Triggers:   " + (", ".join(str(t["metadata"]["name"]) for t in triggers) or "none"),
        *_conditions(broker),
    ]
    return Group(*(Text(line) for line in lines))


def trigger_view(trigger: Mapping[str, Any]) -> RenderableType:
    meta, spec = trigger["metadata"], trigger.get("spec") or {}
    status = trigger.get("status") or {}
    lines = [
        f"Name:       {meta['name']}",
        f"Namespace:  {meta.get('namespace', 'default')}",
        f"Broker:     {spec.get('broker', '')}",
        f"Sink:       {_subscriber(spec)}",
        f"Sink URI:   {status.get('subscriberUri', '')}",
    ]
    attributes = (spec.get("filter") or {}).get("attributes") or {}
    if spec.get("filters"):
        lines.append("Filters:    " + json.dumps(spec["filters"]))
        if attributes:
            lines.append("            (filters override filter.attributes)")
    elif attributes:
        lines.append("Filter:     " + ", ".join(f"{k}={v}" for k, v in attributes.items()))
    lines += [*_delivery(spec.get("delivery")), *_conditions(trigger)]
    return Group(*(Text(line) for line in lines))


def events_table(rows: Sequence[history.EventRow]) -> Table:
    table = render.table("TIME", "ID", "TYPE", "SOURCE", "DELIVERIES")
    for row in rows:
        deliveries = "\n".join(
            f"{d.trigger}: {history.outcome_text(d)}" for d in row.deliveries.values()
        )
        table.add_row(_clock(row.time), row.id, row.type, row.source, deliveries or "-")
    return table


def record_lines(records: Sequence[history.Record]) -> list[str]:
    """One line per record, as `ami events -f` prints them as they come."""
    out = []
    for r in records:
        if r.kind == "taken":
            out.append(f"{_clock(r.time)}  taken      {r.id}  {r.type}  {r.source}")
        else:
            d = history.Delivery(r.trigger, r.attempt, r.status, r.outcome)
            out.append(f"{_clock(r.time)}  {r.trigger}  {r.id}  {history.outcome_text(d)}")
    return out


def _clock(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]
