"""What `ami pipeline`, `pipelinerun`, `task` and `taskrun` do, as functions (the
Python API behind those commands, in `tkn`'s words).

    runs = list_runs(api, "PipelineRun", "default")
    name = start(api, "Pipeline", "build", "default", params=["rev=main"], workspaces=[...])
    cancel(api, "PipelineRun", "default", name)
    for line in follow_logs(api, "PipelineRun", "default", name, follow=True): print(line)
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient

RUNS = "/api/v1/pipelines/runs"
RUN_DIR = "ami.dev/run-dir"
POLL_S = 0.2


class NotFound(LookupError):
    pass


class FlagError(ValueError):
    pass


# ---- reading ---------------------------------------------------------------------------


def list_runs(
    api: MeshClient, kind: str, namespace: str | None, name: str | None = None
) -> list[dict[str, Any]]:
    params = {"kind": kind, "namespace": namespace or "", "name": name or ""}
    items: list[dict[str, Any]] = api.get(RUNS, params)["items"]
    return items


def get_run(api: MeshClient, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found = list_runs(api, kind, namespace, name)
    if not found:
        raise NotFound(f'{kind.lower()}s.tekton.dev "{name}" not found in namespace {namespace}')
    return found[0]


def list_defs(api: MeshClient, kind: str, namespace: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(
        "/api/v1/resources", {"kind": f"{kind}.tekton.dev", "namespace": namespace or ""}
    )["items"]
    return items


def get_def(api: MeshClient, kind: str, namespace: str, name: str) -> dict[str, Any]:
    for item in list_defs(api, kind, namespace):
        if item["metadata"]["name"] == name:
            return item
    raise NotFound(f'{kind.lower()}s.tekton.dev "{name}" not found in namespace {namespace}')


# ---- starting and cancelling ----------------------------------------------------------------


def parse_param(text: str) -> dict[str, Any]:
    """`-p name=value`. As with tkn, an array param's value is written `a,b,c` (and
    `start` splits it); any other value is taken as written."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise FlagError(f"-p {text!r}: want NAME=VALUE")
    return {"name": name, "value": value}


def parse_workspace(text: str) -> dict[str, Any]:
    """`-w name=W,emptyDir=`, `name=W,claimName=C`, `name=W,config=CM`, as tkn takes them."""
    fields = dict(part.partition("=")[::2] for part in text.split(","))
    name = fields.pop("name", "")
    if not name:
        raise FlagError(f"-w {text!r}: want name=WORKSPACE,emptyDir= (or claimName=, config=)")
    binding: dict[str, Any] = {"name": name}
    if "subPath" in fields:
        binding["subPath"] = fields.pop("subPath")
    if "emptyDir" in fields:
        binding["emptyDir"] = {}
    elif "claimName" in fields:
        binding["persistentVolumeClaim"] = {"claimName": fields["claimName"]}
    elif "config" in fields:
        binding["configMap"] = {"name": fields["config"]}
    else:
        raise FlagError(f"-w {text!r}: want emptyDir=, claimName=C or config=CM")
    return binding


def run_name(base: str) -> str:
    """tkn's generateName: `BASE-run-` and five random characters."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
    return f"{base[:52]}-run-{suffix}"


def start(
    api: MeshClient,
    kind: str,
    name: str,
    namespace: str,
    *,
    params: Sequence[str] = (),
    workspaces: Sequence[str] = (),
    timeout: str | None = None,
) -> str:
    """Start a Pipeline or a Task: apply a PipelineRun or TaskRun for it; its name."""
    definition = get_def(api, kind, namespace, name)
    declared = {p["name"]: p for p in definition.get("spec", {}).get("params", [])}
    values = []
    for text in params:
        p = parse_param(text)
        decl = declared.get(p["name"], {})
        if decl.get("type") == "array" or isinstance(decl.get("default"), list):
            p["value"] = [v for v in str(p["value"]).split(",") if v]
        values.append(p)
    run_kind = "PipelineRun" if kind == "Pipeline" else "TaskRun"
    ref = "pipelineRef" if kind == "Pipeline" else "taskRef"
    spec: dict[str, Any] = {ref: {"name": name}}
    if values:
        spec["params"] = values
    if workspaces:
        spec["workspaces"] = [parse_workspace(w) for w in workspaces]
    if timeout:
        spec["timeouts" if kind == "Pipeline" else "timeout"] = (
            {"pipeline": timeout} if kind == "Pipeline" else timeout
        )
    new = run_name(name)
    doc = {
        "apiVersion": "tekton.dev/v1",
        "kind": run_kind,
        "metadata": {"name": new, "namespace": namespace},
        "spec": spec,
    }
    api.post_yaml("/api/v1/apply", json.dumps(doc))
    return new


def cancel(api: MeshClient, kind: str, namespace: str, name: str) -> None:
    api.request("POST", f"/api/v1/pipelines/cancel/{kind}/{namespace}/{name}")


# ---- status ------------------------------------------------------------------------------


def epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def condition(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or [{}]
    return dict(conditions[0])


def status_word(obj: dict[str, Any]) -> str:
    """tkn's STATUS column: the condition's reason, `---` before any."""
    return str(condition(obj).get("reason") or "---")


def done(obj: dict[str, Any]) -> bool:
    return condition(obj).get("status") in ("True", "False")


def duration(obj: dict[str, Any], now: float) -> str:
    from amimesh.cli import render

    status = obj.get("status") or {}
    start_t = epoch(status.get("startTime"))
    if start_t is None:
        return "---"
    end_t = epoch(status.get("completionTime")) or now
    return render.age(start_t, end_t)


# ---- logs ----------------------------------------------------------------------------------


def _taskruns_of(api: MeshClient, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
    if kind == "TaskRun":
        return [get_run(api, "TaskRun", namespace, name)]
    run = get_run(api, "PipelineRun", namespace, name)
    by_name = {
        t["metadata"]["name"]: t
        for t in list_runs(api, "TaskRun", namespace)
        if (t["metadata"].get("labels") or {}).get("tekton.dev/pipelineRun") == name
    }
    refs = (run.get("status") or {}).get("childReferences") or []
    return [by_name[r["name"]] for r in refs if r["name"] in by_name]


def follow_logs(
    api: MeshClient, kind: str, namespace: str, name: str, *, follow: bool
) -> Iterator[str]:
    """Each line of each step's log, prefixed `[task : step]` as tkn prints it; with
    `follow`, new lines as they come until the run ends."""
    offsets: dict[Path, int] = {}
    partial: dict[Path, str] = {}
    prefixes: dict[Path, str] = {}
    while True:
        finished = not follow or done(get_run(api, kind, namespace, name))
        for tr in _taskruns_of(api, kind, namespace, name):
            run_dir = (tr["metadata"].get("annotations") or {}).get(RUN_DIR)
            if not run_dir:
                continue
            labels = tr["metadata"].get("labels") or {}
            task = labels.get("tekton.dev/pipelineTask") or labels.get("tekton.dev/task") or ""
            for step in (tr.get("status") or {}).get("steps") or []:
                path = Path(run_dir) / "logs" / f"{step['container']}.log"
                prefixes[path] = f"[{task} : {step['name']}] "
                yield from _new_lines(path, prefixes[path], offsets, partial)
        if finished:
            for path, rest in partial.items():
                if rest:
                    yield prefixes[path] + rest
            return
        time.sleep(POLL_S)


def _new_lines(
    path: Path, prefix: str, offsets: dict[Path, int], partial: dict[Path, str]
) -> Iterator[str]:
    """The whole lines written to `path` since the last call, prefixed; the rest of a
    line is kept in `partial` until its end comes."""
    try:
        with open(path, "rb") as f:
            f.seek(offsets.get(path, 0))
            data = f.read()
    except OSError:
        return
    offsets[path] = offsets.get(path, 0) + len(data)
    lines = (partial.pop(path, "") + data.decode(errors="replace")).split("\n")
    for line in lines[:-1]:
        yield prefix + line
    if lines[-1]:
        partial[path] = lines[-1]
