"""How `ami` shows things: pure functions from the API's (or Envoy's) JSON to rich
renderables, so every view is tested without a mesh.

Tables look like kubectl's: no borders, upper-case headers, one row per thing, so
their output is easy to read and to grep. `to_text` renders any of them as plain text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from amimesh.cli import render_gatewayapi

XDS_TYPES = ("CDS", "EDS", "LDS", "RDS")
STATE_STYLES = {
    "SYNCED": "green",
    "STALE": "yellow",
    "NACK": "bold red",
    "NOT SENT": "dim",
    "ready": "green",
    "completed": "green",
    "starting": "yellow",
    "not-ready": "yellow",
    "backoff": "red",
    "exited": "red",
}
SEVERITY_STYLES = {"Error": "bold red", "Warning": "yellow", "Info": "cyan"}
WIDE = 200  # columns when the output is not a terminal (pipes, files, tests)


def console(*, stderr: bool = False) -> Console:
    """A console for `ami` output: real width on a terminal, wide when piped."""
    c = Console(stderr=stderr, highlight=False, emoji=False)
    if not c.is_terminal:
        c = Console(stderr=stderr, highlight=False, emoji=False, width=WIDE, soft_wrap=True)
    return c


def to_text(renderable: RenderableType, width: int = WIDE) -> str:
    """Plain text, no colours: for tests and for writing to files."""
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False, emoji=False).print(
        renderable
    )
    return buf.getvalue()


def print_error(out: Console, message: str) -> None:
    """`error: MESSAGE` (the message printed as is: field paths hold brackets)."""
    out.print(Text.assemble(("error: ", "red"), message))


def table(*headers: str) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    return t


def styled(value: str) -> Text:
    return Text(value, style=STATE_STYLES.get(value, ""))


def age(since: float | None, now: float) -> str:
    """`3s`, `5m`, `2h10m`, `3d`: how long ago `since` (epoch seconds) was."""
    if since is None:
        return "-"
    s = max(0, int(now - since))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d"


def labels(values: Mapping[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((values or {}).items())) or "-"


# --- status and proxy-status ------------------------------------------------------------


def instances_table(instances: Sequence[Mapping[str, Any]], now: float) -> Table:
    t = table("WORKLOAD", "NAMESPACE", "INSTANCE", "STATE", "READY", "RESTARTS", "PID", "AGE")
    for i in instances:
        t.add_row(
            str(i.get("workload", "")),
            str(i.get("namespace", "default")),
            str(i.get("instance", "")),
            styled(str(i.get("state", ""))),
            "yes" if i.get("ready") else "no",
            str(i.get("restarts", 0)),
            str(i.get("pid") or "-"),
            age(i.get("since"), now),
        )
    return t


def type_state(proxy: Mapping[str, Any], name: str) -> str:
    state = (proxy.get("types") or {}).get(name, {}).get("state")
    return str(state) if state else "NOT SENT"


def proxies_table(proxies: Sequence[Mapping[str, Any]], now: float) -> Table:
    t = table("PROXY", "WORKLOAD", "MODE", *XDS_TYPES, "ADMIN", "CONNECTED")
    for p in proxies:
        workload = p.get("workload") or "-"
        if p.get("workload") and p.get("namespace"):
            workload = f"{p['workload']}.{p['namespace']}"
        t.add_row(
            str(p.get("id", "")),
            workload,
            str(p.get("mode", "")),
            *(styled(type_state(p, name)) for name in XDS_TYPES),
            str(p.get("admin_port") or "-"),
            age(p.get("connected_since"), now),
        )
    return t


def nacks(proxies: Sequence[Mapping[str, Any]]) -> list[Text]:
    """One line per rejected type: which proxy refused what, and Envoy's reason."""
    lines = []
    for p in proxies:
        for name, t in sorted((p.get("types") or {}).items()):
            nack = t.get("last_nack")
            if t.get("state") != "NACK" or not nack:
                continue
            resources = ", ".join(nack.get("resource_names") or ()) or "-"
            lines.append(
                Text.assemble(
                    (f"{p.get('id')} {name} NACK", "bold red"),
                    f" version {nack.get('version')} ({resources}): {nack.get('message')}",
                )
            )
    return lines


def config_errors(errors: Sequence[str]) -> list[Text]:
    return [Text.assemble(("error: ", "red"), e) for e in errors]


def _yes(value: bool, style: str = "") -> Text:
    return Text("yes", style=style) if value else Text("no")


def revisions_table(revisions: Sequence[Mapping[str, Any]]) -> Table:
    """Knative revisions as their autoscaler sees them (`GET /api/v1/serving/revisions`):
    DESIRED is the scale asked for, CONCURRENCY the stable window's requests in flight
    (all instances), `-` until the autoscaler has decided."""
    t = table(
        "NAMESPACE", "REVISION", "SERVICE", "DESIRED", "READY", "CONCURRENCY", "PANIC", "ACTIVATOR"
    )
    for r in revisions:
        requested, stable = r.get("requested"), r.get("observed_stable")
        load = "-" if stable is None else f"{stable:.2f}"
        if stable is not None and r.get("metric") == "rps":
            load += " rps"
        decided = r.get("desired") is not None
        t.add_row(
            str(r.get("namespace", "default")),
            str(r.get("revision", "")),
            str(r.get("service") or "-"),
            "-" if requested is None else str(requested),
            str(r.get("ready", 0)),
            load,
            _yes(bool(r.get("panic")), "bold red") if decided else Text("-"),
            _yes(bool(r.get("activator")), "yellow"),
        )
    return t


def status_view(
    status: Mapping[str, Any], now: float, revisions: Sequence[Mapping[str, Any]] = ()
) -> Group:
    """`ami status`: instances, Knative revisions (when there are any), proxies' xDS
    sync, then config errors."""
    instances = status.get("instances") or []
    proxies = status.get("proxies") or []
    errors = status.get("config_errors") or []
    parts: list[RenderableType] = [
        Text(
            f"{status.get('resources', 0)} resources, {len(instances)} instances, "
            f"{len(proxies)} proxies, {len(errors)} config errors"
        ),
        Text(""),
        Text("Workloads", style="bold underline"),
        instances_table(instances, now) if instances else Text("no instances", style="dim"),
        Text(""),
    ]
    if revisions:
        parts += [
            Text("Knative revisions", style="bold underline"),
            revisions_table(revisions),
            Text(""),
        ]
    parts += [
        Text("Proxies (xDS)", style="bold underline"),
        proxies_table(proxies, now) if proxies else Text("no proxies connected", style="dim"),
        *nacks(proxies),
    ]
    why = [i for i in instances if i.get("reason") and not i.get("ready")]
    if why:
        parts += [Text(""), Text("Why not ready", style="bold underline")]
        parts += [Text(f"{i.get('instance')}: {i.get('reason')}") for i in why]
    if errors:
        parts += [
            Text(""),
            Text("Config errors (last good config is served)", style="bold underline"),
            *config_errors(errors),
        ]
    return Group(*parts)


# --- get --------------------------------------------------------------------------------


def _spec(item: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = item.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def joined(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values) or "-"


def _service_ports(spec: Mapping[str, Any]) -> str:
    out = []
    for p in spec.get("ports") or ():
        port = f"{p.get('port')}"
        if p.get("targetPort") is not None:
            port += f"→{p['targetPort']}"
        if p.get("name"):
            port = f"{p['name']}:{port}"
        out.append(port)
    return joined(out)


# Per kind: extra columns after NAME, each (header, function of the item).
KIND_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "Service": [
        ("PORTS", lambda i: _service_ports(_spec(i))),
        ("SELECTOR", lambda i: labels(_spec(i).get("selector"))),
    ],
    "Workload": [
        ("LABELS", lambda i: labels(i.get("metadata", {}).get("labels"))),
        ("REPLICAS", lambda i: str(_spec(i).get("replicas", 1))),
        ("PORTS", lambda i: joined(p.get("port") for p in _spec(i).get("ports") or ())),
    ],
    "VirtualService": [
        ("HOSTS", lambda i: joined(_spec(i).get("hosts") or ["(delegate)"])),
        ("GATEWAYS", lambda i: joined(_spec(i).get("gateways") or ["mesh"])),
        ("ROUTES", lambda i: str(len(_spec(i).get("http") or ()))),
    ],
    "DestinationRule": [
        ("HOST", lambda i: str(_spec(i).get("host", ""))),
        ("SUBSETS", lambda i: joined(s.get("name") for s in _spec(i).get("subsets") or ())),
    ],
    "ServiceEntry": [
        ("HOSTS", lambda i: joined(_spec(i).get("hosts") or ())),
        ("LOCATION", lambda i: str(_spec(i).get("location", "MESH_EXTERNAL"))),
        ("RESOLUTION", lambda i: str(_spec(i).get("resolution", "NONE"))),
    ],
    "WorkloadEntry": [
        ("ADDRESS", lambda i: str(_spec(i).get("address") or "-")),
        ("LABELS", lambda i: labels(_spec(i).get("labels"))),
    ],
    "Gateway": [
        ("SELECTOR", lambda i: labels(_spec(i).get("selector"))),
        (
            "HOSTS",
            lambda i: joined(
                h for s in _spec(i).get("servers") or () for h in s.get("hosts") or ()
            ),
        ),
    ],
    "Service.serving.knative.dev": [
        ("IMAGE", lambda i: _image(_spec(_spec(i).get("template") or {}))),
        ("TRAFFIC", lambda i: _traffic(_spec(i).get("traffic"))),
    ],
    "Configuration": [("IMAGE", lambda i: _image(_spec(_spec(i).get("template") or {})))],
    "Revision": [("IMAGE", lambda i: _image(_spec(i)))],
    "Route": [("TRAFFIC", lambda i: _traffic(_spec(i).get("traffic")))],
    **render_gatewayapi.COLUMNS,
}


def kind_label(item: Mapping[str, Any]) -> str:
    """The kind as refs name it: `Service`, `Service.serving.knative.dev` beside it."""
    from amimesh.resources.registry import KINDS, split_api_version  # only `ami get` needs it

    kind = str(item.get("kind"))
    group, _version = split_api_version(str(item.get("apiVersion") or ""))
    found = KINDS.get((group, kind))
    return found.model.qualified_kind() if found is not None else kind


def _image(pod_spec: Mapping[str, Any]) -> str:
    return joined(c.get("image") for c in pod_spec.get("containers") or ())


def _traffic(targets: Any) -> str:
    """`latest=90%, v1=10%`: where each target sends its share (a Service's default:
    all to the latest revision)."""
    if not targets:
        return "latest=100%"
    out = []
    for t in targets:
        name = t.get("tag") or t.get("revisionName") or t.get("configurationName") or "latest"
        out.append(f"{name}={t.get('percent') or 0}%")
    return ", ".join(out)


def resources_table(items: Sequence[Mapping[str, Any]], *, namespaces: bool = False) -> Table:
    """`ami get KIND`: NAME (NAMESPACE), the kind's own columns, SOURCE."""
    kinds = sorted({kind_label(i) for i in items})
    mixed = len(kinds) > 1
    columns = KIND_COLUMNS.get(kinds[0], []) if len(kinds) == 1 else []
    headers = ["NAMESPACE"] if namespaces else []
    if mixed:
        headers.append("KIND")
    t = table(*headers, "NAME", *(h for h, _ in columns), "SOURCE")
    for i in items:
        meta = i.get("metadata") or {}
        row = [str(meta.get("namespace", "default"))] if namespaces else []
        if mixed:
            row.append(kind_label(i))
        row.append(str(meta.get("name", "")))
        row += [fn(i) for _, fn in columns]
        row.append(str(i.get("source") or "-"))
        t.add_row(*row)
    return t


def _without_source(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "source"}


def resources_yaml(items: Sequence[Mapping[str, Any]]) -> str:
    """YAML documents that `ami apply -f` takes back; each says where it comes from."""
    docs = []
    for i in items:
        body = yaml.safe_dump(_without_source(i), sort_keys=False, allow_unicode=True)
        head = f"# source: {i['source']}\n" if i.get("source") else ""
        docs.append(head + body)
    return "---\n".join(docs)


def resources_json(items: Sequence[Mapping[str, Any]], *, single: bool) -> str:
    """One object (`single`), else a `kind: List` as kubectl writes it."""
    clean = [_without_source(i) for i in items]
    data: Any = (
        clean[0]
        if single and len(clean) == 1
        else {
            "apiVersion": "v1",
            "kind": "List",
            "items": clean,
        }
    )
    return json.dumps(data, indent=2)


# --- analyze ----------------------------------------------------------------------------


def findings_view(findings: Sequence[Mapping[str, Any]]) -> Group:
    """`ami analyze`: per finding, `Severity [CODE] resource field (source)`, its message
    and hint indented below; then a count per severity."""
    parts: list[RenderableType] = []
    for f in findings:
        severity = str(f.get("severity", ""))
        head = Text.assemble(
            (f"{severity} [{f.get('code')}]", SEVERITY_STYLES.get(severity, "")),
            " ",
            (str(f.get("resource", "")), "bold"),
            f" {f['field']}" if f.get("field") else "",
            (f" ({f['source']})", "dim") if f.get("source") else "",
        )
        parts.append(head)
        parts.append(Text(f"    {f.get('message', '')}"))
        if f.get("hint"):
            parts.append(Text.assemble("    ", ("hint: ", "dim"), str(f["hint"])))
    parts.append(Text(summary(findings)))
    return Group(*parts)


def summary(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return "No problems found."
    counts = {s: sum(1 for f in findings if f.get("severity") == s) for s in SEVERITY_STYLES}
    names = {"Error": "error", "Warning": "warning", "Info": "info"}
    return ", ".join(
        f"{n} {names[s]}{'s' if n != 1 and s != 'Info' else ''}" for s, n in counts.items()
    )


# --- proxy-config (Envoy's own /config_dump and /clusters) ------------------------------
