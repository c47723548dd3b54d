"""A Tekton run as the dashboard draws it: tasks as nodes with their state, edges from
`runAfter` and result references, `finally` tasks apart, each task's steps. Pure: it
takes the run objects the API serves (`/api/v1/pipelines/runs`) and returns JSON.

    graph = run_graph(pipelinerun, taskruns)
    graph["nodes"][0]   # {"id": "build", "state": "Failed", "reason": "Failed",
                        #  "runs": [{"taskRun": "ci-run-build", "steps": [...], ...}]}
    graph["edges"][0]   # {"source": "build", "target": "test", "kind": "runAfter"}

A task's state is one of Succeeded, Failed, Running, Pending and Skipped, with
Tekton's reason beside it (the TaskRun's Succeeded condition, or `skippedTasks[].reason`).
A task runs as one TaskRun, or one per combination of a `matrix`: `runs` lists them,
and the task's state is theirs taken together (running while any runs, failed when
any failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from amimesh.resources import tekton_refs

SUCCEEDED, FAILED, RUNNING, PENDING, SKIPPED = (
    "Succeeded",
    "Failed",
    "Running",
    "Pending",
    "Skipped",
)
# What the PipelineRun task labels name a TaskRun by.
PIPELINE_TASK = "tekton.dev/pipelineTask"
PIPELINE_RUN = "tekton.dev/pipelineRun"


def condition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The run's Succeeded condition ({} before it has one)."""
    conditions = (obj.get("status") or {}).get("conditions") or [{}]
    return dict(conditions[0])


def run_state(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(state, Tekton's reason) of a TaskRun or PipelineRun."""
    cond = condition(obj)
    reason = str(cond.get("reason") or "")
    status = cond.get("status")
    if status == "True":
        return SUCCEEDED, reason or SUCCEEDED
    if status == "False":
        return FAILED, reason or FAILED
    if status == "Unknown" and reason not in ("", "Started", "Pending"):
        return RUNNING, reason
    return PENDING, reason or PENDING


def step_state(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step's name, container, image, state, reason and exit code."""
    out: dict[str, Any] = {
        "name": step.get("name", ""),
        "container": step.get("container", ""),
        "image": step.get("image", ""),
    }
    terminated = step.get("terminated")
    if isinstance(terminated, Mapping):
        code = terminated.get("exitCode")
        reason = step.get("terminationReason") or terminated.get("reason") or ""
        skipped = reason == "Skipped"
        ok = code == 0 or reason == "Continued"
        out["state"] = SKIPPED if skipped else (SUCCEEDED if ok else FAILED)
        out["reason"] = reason
        out["exitCode"] = code
        out["startedAt"] = terminated.get("startedAt")
        out["finishedAt"] = terminated.get("finishedAt")
    elif isinstance(step.get("running"), Mapping):
        out["state"] = RUNNING
        out["reason"] = "Running"
        out["startedAt"] = step["running"].get("startedAt")
    else:
        waiting = step.get("waiting")
        out["state"] = PENDING
        out["reason"] = (waiting or {}).get("reason", "") if isinstance(waiting, Mapping) else ""
    return out


def _result_tasks(task: Mapping[str, Any]) -> list[str]:
    """The tasks whose results `task` reads (params, `when`, matrix), in order, once."""
    texts = [
        *tekton_refs.strings_in(task.get("params") or []),
        *tekton_refs.strings_in(task.get("when") or []),
        *tekton_refs.strings_in((task.get("matrix") or {}).get("params") or []),
    ]
    seen: dict[str, None] = {}
    for name, _ in tekton_refs.result_refs(texts):
        seen.setdefault(name, None)
    return list(seen)


def _task_node(
    task: Mapping[str, Any],
    *,
    final: bool,
    taskruns: Sequence[Mapping[str, Any]],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    name = str(task.get("name", ""))
    ref = task.get("taskRef") or {}
    runs = [_taskrun_fields(t) for t in taskruns]
    node: dict[str, Any] = {
        "id": name,
        "name": name,
        "task": ref.get("name", "") if isinstance(ref, Mapping) else "",
        "finally": final,
        "taskRun": runs[0]["taskRun"] if runs else None,
        "message": "",
        "runs": runs,
    }
    if runs:
        node.update(_together(runs))
    elif name in skipped:
        node["state"], node["reason"] = SKIPPED, skipped[name]
    else:
        node["state"], node["reason"] = PENDING, ""
    return node


def _together(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The state of a task from its TaskRuns' (one, or a matrix's)."""
    states = [r["state"] for r in runs]
    if RUNNING in states or (PENDING in states and len(set(states)) > 1):
        state = RUNNING
    elif FAILED in states:
        state = FAILED
    else:
        state = states[0]
    first = next((r for r in runs if r["state"] == state), runs[0])
    reason = first["reason"] if first["state"] == state else RUNNING
    starts = [r["startTime"] for r in runs if r.get("startTime")]
    ends = [r["completionTime"] for r in runs if r.get("completionTime")]
    return {
        "state": state,
        "reason": reason,
        "message": first.get("message", ""),
        "startTime": min(starts) if starts else None,
        "completionTime": max(ends) if len(ends) == len(runs) else None,
    }


def _taskrun_fields(taskrun: Mapping[str, Any]) -> dict[str, Any]:
    state, reason = run_state(taskrun)
    status = taskrun.get("status") or {}
    return {
        "taskRun": taskrun.get("metadata", {}).get("name"),
        "namespace": taskrun.get("metadata", {}).get("namespace"),
        "state": state,
        "reason": reason,
        "message": condition(taskrun).get("message", ""),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "retries": len(status.get("retriesStatus") or []),
        "steps": [step_state(s) for s in status.get("steps") or []],
    }


def run_graph(
    pipelinerun: Mapping[str, Any], taskruns: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The graph of a PipelineRun from its status (`pipelineSpec`, `childReferences`,
    `skippedTasks`) and its TaskRuns. Edges: `runAfter` and result references between
    the run's tasks; `finally` tasks have none (they run after all the others)."""
    status = pipelinerun.get("status") or {}
    spec = status.get("pipelineSpec") or {}
    run_name = pipelinerun.get("metadata", {}).get("name")
    by_name = {str(t.get("metadata", {}).get("name")): t for t in taskruns}
    by_task: dict[str, dict[str, Mapping[str, Any]]] = {}
    for ref in status.get("childReferences") or []:
        tr = by_name.get(str(ref.get("name")))
        if tr is not None:
            by_task.setdefault(str(ref.get("pipelineTaskName")), {})[str(ref.get("name"))] = tr
    for tr_name, tr in by_name.items():  # a TaskRun reported before its PipelineRun names it
        labels = tr.get("metadata", {}).get("labels") or {}
        if labels.get(PIPELINE_RUN) == run_name and labels.get(PIPELINE_TASK):
            by_task.setdefault(str(labels[PIPELINE_TASK]), {}).setdefault(tr_name, tr)
    skipped = {
        str(s.get("name")): str(s.get("reason", "")) for s in status.get("skippedTasks") or []
    }
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    tasks = list(spec.get("tasks") or [])
    names = {str(t.get("name")) for t in tasks}
    for final, group in ((False, tasks), (True, list(spec.get("finally") or []))):
        for task in group:
            name = str(task.get("name", ""))
            nodes.append(
                _task_node(
                    task,
                    final=final,
                    taskruns=list(by_task.get(name, {}).values()),
                    skipped=skipped,
                )
            )
            if final:
                continue
            kinds: dict[str, list[str]] = {}
            for dep in task.get("runAfter") or []:
                kinds.setdefault(str(dep), []).append("runAfter")
            for dep in _result_tasks(task):
                kinds.setdefault(dep, []).append("result")
            for dep, why in kinds.items():
                if dep in names:
                    edges.append(
                        {
                            "id": f"{dep}->{name}",
                            "source": dep,
                            "target": name,
                            "kind": "+".join(why),
                        }
                    )
    state, reason = run_state(pipelinerun)
    return {
        "kind": "PipelineRun",
        "name": run_name,
        "namespace": pipelinerun.get("metadata", {}).get("namespace"),
        "pipeline": (pipelinerun.get("metadata", {}).get("labels") or {}).get(
            "tekton.dev/pipeline", ""
        ),
        "state": state,
        "reason": reason,
        "message": condition(pipelinerun).get("message", ""),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "nodes": nodes,
        "edges": edges,
    }


def taskrun_graph(taskrun: Mapping[str, Any]) -> dict[str, Any]:
    """A lone TaskRun as a graph of one node."""
    meta = taskrun.get("metadata", {})
    labels = meta.get("labels") or {}
    name = str(labels.get(PIPELINE_TASK) or labels.get("tekton.dev/task") or meta.get("name"))
    run = _taskrun_fields(taskrun)
    state, reason = run_state(taskrun)
    node: dict[str, Any] = {
        "id": name,
        "name": name,
        "task": labels.get("tekton.dev/task", ""),
        "finally": False,
        "taskRun": run["taskRun"],
        "state": state,
        "reason": reason,
        "message": run["message"],
        "runs": [run],
    }
    status = taskrun.get("status") or {}
    return {
        "kind": "TaskRun",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "pipeline": "",
        "state": state,
        "reason": reason,
        "message": condition(taskrun).get("message", ""),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "nodes": [node],
        "edges": [],
    }
