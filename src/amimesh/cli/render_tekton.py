"""Tables and views of Tekton's kinds, laid out as `tkn` lays them out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from amimesh.cli import render
from amimesh.cli.tekton import condition, duration, epoch, status_word

HOST_NOTE = "steps run as processes on this host; an image is recorded, not pulled"


def _ns(item: Mapping[str, Any]) -> str:
    return str(item["metadata"].get("namespace", "default"))


def _started(item: Mapping[str, Any], now: float) -> str:
    t = epoch((item.get("status") or {}).get("startTime"))
    return "---" if t is None else f"{render.age(t, now)} ago"


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def runs_table(
    items: Sequence[Mapping[str, Any]], now: float, *, namespaces: bool = False
) -> Table:
    """`tkn pipelinerun list`, `tkn taskrun list`: NAME STARTED DURATION STATUS."""
    headers = ("NAMESPACE",) if namespaces else ()
    t = render.table(*headers, "NAME", "STARTED", "DURATION", "STATUS")
    for item in sorted(
        items, key=lambda i: epoch((i.get("status") or {}).get("startTime")) or 0, reverse=True
    ):
        row = [_ns(item)] if namespaces else []
        row += [item["metadata"]["name"], _started(item, now), duration(dict(item), now)]
        t.add_row(*row, render.styled(status_word(dict(item))))
    return t


def _last_run(runs: Sequence[Mapping[str, Any]], label: str, name: str) -> Mapping[str, Any] | None:
    mine = [r for r in runs if (r["metadata"].get("labels") or {}).get(label) == name]
    if not mine:
        return None
    return max(mine, key=lambda r: epoch((r.get("status") or {}).get("startTime")) or 0)


def pipelines_table(
    items: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    now: float,
    *,
    namespaces: bool = False,
) -> Table:
    """`tkn pipeline list`: NAME AGE LAST RUN STARTED DURATION STATUS."""
    headers = ("NAMESPACE",) if namespaces else ()
    t = render.table(*headers, "NAME", "AGE", "LAST RUN", "STARTED", "DURATION", "STATUS")
    for item in items:
        name = item["metadata"]["name"]
        last = _last_run(runs, "tekton.dev/pipeline", name)
        row = [_ns(item)] if namespaces else []
        row += [name, render.age(epoch(item["metadata"].get("creationTimestamp")), now)]
        if last is None:
            row += ["---", "---", "---", "---"]
            t.add_row(*row)
            continue
        row += [last["metadata"]["name"], _started(last, now), duration(dict(last), now)]
        t.add_row(*row, render.styled(status_word(dict(last))))
    return t


def tasks_table(
    items: Sequence[Mapping[str, Any]], now: float, *, namespaces: bool = False
) -> Table:
    """`tkn task list`: NAME DESCRIPTION AGE."""
    headers = ("NAMESPACE",) if namespaces else ()
    t = render.table(*headers, "NAME", "DESCRIPTION", "AGE")
    for item in items:
        row = [_ns(item)] if namespaces else []
        description = str((item.get("spec") or {}).get("description", "")).strip()
        description = description.splitlines()[0][:60] if description else "---"
        row += [item["metadata"]["name"], description]
        t.add_row(*row, render.age(epoch(item["metadata"].get("creationTimestamp")), now))
    return t


def _header(pairs: Sequence[tuple[str, str]]) -> Text:
    width = max(len(k) for k, _ in pairs) + 2
    return Text("\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in pairs))


def _section(title: str, table: Table | None, empty: str = "No items") -> list[RenderableType]:
    return [Text(""), Text(title, style="bold"), table if table is not None else Text(f" {empty}")]


def _status_table(item: Mapping[str, Any], now: float) -> Table:
    t = render.table("STARTED", "DURATION", "STATUS")
    t.add_row(
        _started(item, now), duration(dict(item), now), render.styled(status_word(dict(item)))
    )
    return t


def _params_table(params: Sequence[Mapping[str, Any]]) -> Table | None:
    if not params:
        return None
    t = render.table("NAME", "VALUE")
    for p in params:
        t.add_row(f"∙ {p['name']}", _value(p.get("value", p.get("default", "---"))))
    return t


def _results_table(results: Sequence[Mapping[str, Any]]) -> Table | None:
    if not results:
        return None
    t = render.table("NAME", "VALUE")
    for r in results:
        t.add_row(f"∙ {r['name']}", _value(r.get("value")))
    return t


def pipelinerun_view(
    run: Mapping[str, Any],
    spec: Mapping[str, Any],
    taskruns: Sequence[Mapping[str, Any]],
    now: float,
) -> Group:
    """`tkn pipelinerun describe`."""
    status = run.get("status") or {}
    cond = condition(dict(run))
    labels = run["metadata"].get("labels") or {}
    parts: list[RenderableType] = [
        _header(
            [
                ("Name", run["metadata"]["name"]),
                ("Namespace", _ns(run)),
                ("Pipeline Ref", labels.get("tekton.dev/pipeline", "---")),
                ("Runs on", HOST_NOTE),
            ]
        ),
        Text(""),
        Text("Status", style="bold"),
        _status_table(run, now),
    ]
    if cond.get("message"):
        parts += [Text(""), Text("Message", style="bold"), Text(f" {cond['message']}")]
    parts += _section("Params", _params_table(spec.get("params") or []))
    parts += _section("Results", _results_table(status.get("results") or []))
    workspaces = spec.get("workspaces") or []
    ws = None
    if workspaces:
        ws = render.table("NAME", "SUB PATH", "WORKSPACE BINDING")
        for w in workspaces:
            kind = next((k for k in w if k not in ("name", "subPath")), "---")
            ws.add_row(f"∙ {w['name']}", w.get("subPath") or "---", kind)
    parts += _section("Workspaces", ws)
    tr_table = None
    if taskruns:
        tr_table = render.table("NAME", "TASK NAME", "STARTED", "DURATION", "STATUS")
        for tr in taskruns:
            task = (tr["metadata"].get("labels") or {}).get("tekton.dev/pipelineTask", "")
            tr_table.add_row(
                f"∙ {tr['metadata']['name']}",
                task,
                _started(tr, now),
                duration(dict(tr), now),
                render.styled(status_word(dict(tr))),
            )
    parts += _section("Taskruns", tr_table)
    skipped = status.get("skippedTasks") or []
    sk_table = None
    if skipped:
        sk_table = render.table("NAME", "REASON")
        for s in skipped:
            sk_table.add_row(f"∙ {s['name']}", s.get("reason", ""))
    parts += _section("Skipped Tasks", sk_table)
    return Group(*parts)


def taskrun_view(tr: Mapping[str, Any], spec: Mapping[str, Any], now: float) -> Group:
    """`tkn taskrun describe`: status, params, results, steps (with their image)."""
    status = tr.get("status") or {}
    cond = condition(dict(tr))
    labels = tr["metadata"].get("labels") or {}
    parts: list[RenderableType] = [
        _header(
            [
                ("Name", tr["metadata"]["name"]),
                ("Namespace", _ns(tr)),
                ("Task Ref", labels.get("tekton.dev/task", "---")),
                ("PipelineRun", labels.get("tekton.dev/pipelineRun", "---")),
                ("Runs on", HOST_NOTE),
            ]
        ),
        Text(""),
        Text("Status", style="bold"),
        _status_table(tr, now),
    ]
    if cond.get("message"):
        parts += [Text(""), Text("Message", style="bold"), Text(f" {cond['message']}")]
    parts += _section("Params", _params_table(spec.get("params") or []))
    parts += _section("Results", _results_table(status.get("results") or []))
    steps = status.get("steps") or []
    st = None
    if steps:
        st = render.table("NAME", "IMAGE", "STATUS", "EXIT CODE")
        for s in steps:
            term = s.get("terminated")
            state = (
                s.get("terminationReason") if term else ("Running" if "running" in s else "Waiting")
            )
            st.add_row(
                f"∙ {s['name']}",
                s.get("image", ""),
                render.styled(str(state)),
                str(term["exitCode"]) if term else "---",
            )
    parts += _section("Steps", st)
    retries = status.get("retriesStatus") or []
    if retries:
        parts += [Text(""), Text(f"Retries: {len(retries)}", style="bold")]
    return Group(*parts)


def pipeline_view(
    pipeline: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], now: float
) -> Group:
    """`tkn pipeline describe`: params, workspaces, tasks (with runAfter), finally, runs."""
    spec = pipeline.get("spec") or {}
    parts: list[RenderableType] = [
        _header([("Name", pipeline["metadata"]["name"]), ("Namespace", _ns(pipeline))])
    ]
    params = spec.get("params") or []
    pt = None
    if params:
        pt = render.table("NAME", "TYPE", "DESCRIPTION", "DEFAULT VALUE")
        for p in params:
            default = _value(p["default"]) if "default" in p else "---"
            pt.add_row(
                f"∙ {p['name']}", p.get("type", "string"), p.get("description") or "---", default
            )
    parts += _section("Params", pt)
    for title, key in (("Tasks", "tasks"), ("Finally", "finally")):
        tasks = spec.get(key) or []
        tt = None
        if tasks:
            tt = render.table("NAME", "TASKREF", "RUNAFTER", "TIMEOUT", "PARAMS")
            for t in tasks:
                ref = (t.get("taskRef") or {}).get("name", "(embedded)")
                tt.add_row(
                    f"∙ {t['name']}",
                    ref,
                    ", ".join(t.get("runAfter") or []) or "---",
                    t.get("timeout", "---"),
                    ", ".join(f"{p['name']}: {_value(p['value'])}" for p in t.get("params") or [])
                    or "---",
                )
        parts += _section(title, tt)
    name = pipeline["metadata"]["name"]
    mine = [
        r for r in runs if (r["metadata"].get("labels") or {}).get("tekton.dev/pipeline") == name
    ]
    parts += _section("PipelineRuns", runs_table(mine, now) if mine else None)
    return Group(*parts)
