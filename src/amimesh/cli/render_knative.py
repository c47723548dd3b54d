"""How `ami service`, `ami revision` and `ami route` show Knative's objects: kn's
columns (`kn service list`: NAME URL LATEST AGE CONDITIONS READY REASON; `kn revision
list`: NAME SERVICE TRAFFIC TAGS GENERATION AGE CONDITIONS READY REASON; `kn route
list`: NAME URL READY) and its `describe` views, from the API's JSON. Pure: `now` is
handed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from amimesh.cli.render import age, table

SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
READY_STYLES = {"True": "green", "False": "red", "Unknown": "yellow"}
# kn's marks for a condition: ++ true, !! false, ?? unknown.
MARKS = {"True": "++", "False": "!!"}


def _meta(item: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = item.get("metadata") or {}
    return meta


def _status(item: Mapping[str, Any]) -> Mapping[str, Any]:
    status: Mapping[str, Any] = item.get("status") or {}
    return status


def conditions(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(_status(item).get("conditions") or [])


def conditions_value(item: Mapping[str, Any]) -> str:
    """`3 OK / 3`: how many conditions are True, of how many."""
    found = conditions(item)
    ok = sum(1 for c in found if c.get("status") == "True")
    return f"{ok} OK / {len(found)}"


def ready(item: Mapping[str, Any]) -> str:
    """The Ready condition's status; `<unknown>` without one."""
    for c in conditions(item):
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "<unknown>"


def reason(item: Mapping[str, Any]) -> str:
    """Why it is not Ready: `Reason : message`, as kn writes it; empty when Ready."""
    for c in conditions(item):
        if c.get("type") == "Ready":
            if c.get("status") == "True":
                return ""
            if c.get("message"):
                return f"{c.get('reason', '')} : {c['message']}"
            return str(c.get("reason", ""))
    return "<unknown>"


def created(item: Mapping[str, Any]) -> float | None:
    """`metadata.creationTimestamp` in epoch seconds (None when missing or unreadable)."""
    text = _meta(item).get("creationTimestamp")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ready_text(value: str) -> Text:
    return Text(value, style=READY_STYLES.get(value, ""))


def _head(namespaces: bool, *headers: str) -> Table:
    return table(*(["NAMESPACE"] if namespaces else []), *headers)


def _row(item: Mapping[str, Any], namespaces: bool) -> list[str]:
    meta = _meta(item)
    return ([str(meta.get("namespace", "default"))] if namespaces else []) + [
        str(meta.get("name", ""))
    ]


def services_table(items: Sequence[Mapping[str, Any]], now: float, *, namespaces: bool) -> Table:
    """`ami service list`."""
    t = _head(namespaces, "NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON")
    for i in items:
        status = _status(i)
        t.add_row(
            *_row(i, namespaces),
            str(status.get("url", "")),
            str(status.get("latestReadyRevisionName", "")),
            age(created(i), now),
            conditions_value(i),
            _ready_text(ready(i)),
            reason(i),
        )
    return t


def traffic_of(revision: str, service: Mapping[str, Any] | None) -> tuple[int, list[str]]:
    """The share of the Service's traffic `revision` takes, and its tags (from the
    Service's status)."""
    percent, tags = 0, []
    for target in _status(service or {}).get("traffic") or ():
        if target.get("revisionName") != revision:
            continue
        percent += int(target.get("percent") or 0)
        if target.get("tag"):
            tags.append(str(target["tag"]))
    return percent, tags


def _service_of(
    revision: Mapping[str, Any], services: Mapping[tuple[str, str], Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    name = (_meta(revision).get("labels") or {}).get(SERVICE_LABEL)
    return services.get((str(_meta(revision).get("namespace", "default")), str(name)))


def services_by_key(
    services: Sequence[Mapping[str, Any]],
) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (str(_meta(s).get("namespace", "default")), str(_meta(s).get("name"))): s for s in services
    }


def revisions_table(
    revisions: Sequence[Mapping[str, Any]],
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    now: float,
    *,
    namespaces: bool,
) -> Table:
    """`ami revision list`: each revision's share of its Service's traffic and its tags."""
    t = _head(
        namespaces,
        "NAME",
        "SERVICE",
        "TRAFFIC",
        "TAGS",
        "GENERATION",
        "AGE",
        "CONDITIONS",
        "READY",
        "REASON",
    )
    for r in revisions:
        labels = _meta(r).get("labels") or {}
        percent, tags = traffic_of(str(_meta(r).get("name")), _service_of(r, services))
        t.add_row(
            *_row(r, namespaces),
            str(labels.get(SERVICE_LABEL, "")),
            f"{percent}%" if percent else "",
            ",".join(tags),
            str(labels.get(GENERATION_LABEL, "")),
            age(created(r), now),
            conditions_value(r),
            _ready_text(ready(r)),
            reason(r),
        )
    return t


def routes_table(items: Sequence[Mapping[str, Any]], *, namespaces: bool) -> Table:
    """`ami route list`."""
    t = _head(namespaces, "NAME", "URL", "READY")
    for i in items:
        t.add_row(*_row(i, namespaces), str(_status(i).get("url", "")), _ready_text(ready(i)))
    return t


# --- describe ----------------------------------------------------------------------------


def _attributes(rows: Sequence[tuple[str, str]], indent: str = "") -> list[Text]:
    width = max((len(k) for k, _ in rows), default=0) + 2
    return [Text(f"{indent}{k + ':':<{width}}{v}") for k, v in rows]


def _conditions_section(item: Mapping[str, Any]) -> list[RenderableType]:
    t = table("OK", "TYPE", "REASON")
    for c in conditions(item):
        status = str(c.get("status", "Unknown"))
        why = str(c.get("reason", ""))
        if c.get("message"):
            why = f"{why} : {c['message']}" if why else str(c["message"])
        t.add_row(
            Text(MARKS.get(status, "??"), style=READY_STYLES.get(status, "")),
            str(c.get("type", "")),
            why,
        )
    return [Text("Conditions:"), t]


def _container(item: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (item.get("spec") or {}).get("containers") or [{}]
    found: Mapping[str, Any] = next((c for c in containers if c.get("ports")), containers[0])
    return found


def replicas(revision: str, namespace: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """`ready/running` instances of a revision, from the node agents' reports."""
    mine = [r for r in rows if r.get("workload") == revision and r.get("namespace") == namespace]
    return f"{sum(1 for r in mine if r.get('ready'))}/{len(mine)}"


def _revision_details(
    revision: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], indent: str
) -> list[Text]:
    c = _container(revision)
    meta = _meta(revision)
    details = [("Image", str(c.get("image", "")))]
    if c.get("command"):
        details.append(("Command", " ".join(str(a) for a in [*c["command"], *c.get("args", [])])))
    details.append(
        ("Replicas", replicas(str(meta.get("name")), str(meta.get("namespace", "default")), rows))
    )
    return _attributes(details, indent)


def _header(
    name: str,
    generation: str,
    since: float | None,
    now: float,
    *,
    follows_latest: bool,
    latest_ready: bool,
    tag: str,
) -> str:
    head = f"@latest ({name})" if follows_latest else name
    if not follows_latest and latest_ready:
        head += " (current @latest)"
    if tag:
        head += f" #{tag}"
    return f"{head} [{generation}] ({age(since, now)})"


def _bullet(percent: int, ready_status: str) -> str:
    """kn's left column: the share, then % (ready), ! (failed) or ? (not yet)."""
    mark = {"True": "%" if percent else "+", "False": "!"}.get(ready_status, "?")
    return f"{percent:3d}{mark}" if percent else f"   {mark}"


def service_view(
    service: Mapping[str, Any],
    revisions: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    now: float,
) -> Group:
    """`ami service describe`: name, URL, each revision its traffic reaches (and the
    latest), newest first, with share, tag, image and replicas; then the conditions."""
    meta, status = _meta(service), _status(service)
    parts: list[RenderableType] = [
        *_attributes(
            [
                ("Name", str(meta.get("name", ""))),
                ("Namespace", str(meta.get("namespace", "default"))),
                ("Age", age(created(service), now)),
                ("URL", str(status.get("url", ""))),
                ("Cluster", str((status.get("address") or {}).get("url", ""))),
            ]
        )
    ]
    parts += [Text(""), Text("Revisions:")]
    by_name = {str(_meta(r).get("name")): r for r in revisions}
    shown: list[tuple[int, Text, list[Text]]] = []
    seen: set[str] = set()
    entries = [dict(t) for t in status.get("traffic") or ()]
    for extra in (status.get("latestReadyRevisionName"), status.get("latestCreatedRevisionName")):
        if extra and all(e.get("revisionName") != extra for e in entries):
            entries.append({"revisionName": extra, "percent": 0})
    for target in entries:
        name = str(target.get("revisionName", ""))
        key = f"{name}#{target.get('tag', '')}#{target.get('latestRevision', False)}"
        if key in seen:
            continue
        seen.add(key)
        revision = by_name.get(name, {"metadata": {"name": name}})
        generation = str((_meta(revision).get("labels") or {}).get(GENERATION_LABEL, "?"))
        head = _header(
            name,
            generation,
            created(revision),
            now,
            follows_latest=bool(target.get("latestRevision")),
            latest_ready=name == status.get("latestReadyRevisionName"),
            tag=str(target.get("tag", "")),
        )
        line = Text(f"  {_bullet(int(target.get('percent') or 0), ready(revision))}  {head}")
        order = int(generation) if generation.isdigit() else 0
        shown.append((order, line, _revision_details(revision, rows, " " * 8)))
    for _, line, details in sorted(shown, key=lambda s: -s[0]):
        parts += [line, *details]
    if not shown:
        parts.append(Text("  none yet", style="dim"))
    parts.append(Text(""))
    parts += _conditions_section(service)
    return Group(*parts)


def revision_view(
    revision: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    now: float,
) -> Group:
    """`ami revision describe`: the revision, its container, its Service and share of
    traffic, then its conditions."""
    meta = _meta(revision)
    labels = meta.get("labels") or {}
    spec = revision.get("spec") or {}
    c = _container(revision)
    rows_out = [
        ("Name", str(meta.get("name", ""))),
        ("Namespace", str(meta.get("namespace", "default"))),
        ("Age", age(created(revision), now)),
        ("Image", str(c.get("image", ""))),
    ]
    if c.get("command"):
        rows_out.append(("Command", " ".join(str(a) for a in [*c["command"], *c.get("args", [])])))
    if c.get("ports"):
        rows_out.append(("Port", str(c["ports"][0].get("containerPort", ""))))
    env = ", ".join(f"{e.get('name')}={e.get('value', '')}" for e in c.get("env") or ())
    if env:
        rows_out.append(("Env", env))
    annotations = meta.get("annotations") or {}
    scale = [annotations.get(f"autoscaling.knative.dev/{k}") for k in ("min-scale", "max-scale")]
    if any(scale):
        rows_out.append(("Scale", f"{scale[0] or 0} ... {scale[1] or '∞'}"))
    if spec.get("containerConcurrency"):
        rows_out.append(("Concurrency", f"Limit: {spec['containerConcurrency']}"))
    rows_out.append(("Replicas", replicas(str(meta.get("name")), str(meta.get("namespace")), rows)))
    if labels.get(SERVICE_LABEL):
        percent, tags = traffic_of(str(meta.get("name")), service)
        rows_out.append(("Service", str(labels[SERVICE_LABEL])))
        rows_out.append(("Traffic", f"{percent}%" + (f" #{','.join(tags)}" if tags else "")))
    rows_out.append(("Generation", str(labels.get(GENERATION_LABEL, ""))))
    parts: list[RenderableType] = [*_attributes(rows_out), Text("")]
    parts += _conditions_section(revision)
    return Group(*parts)
