"""The dashboard's Runs view, its pure part and its API: a run's task graph built from
its status (`dashboard.rungraph`), and the endpoints the page reads
(`/api/v1/pipelines/graph/...`, `/api/v1/pipelines/logs/...`) over runs reported as a
node agent reports them. The page itself, on a real run, is tests/e2e/test_dashboard_runs.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.controlplane import api_pipelines
from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.dashboard import rungraph

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = test_utils.TestClient[Any, Any]

SPEC = {
    "params": [{"name": "env", "default": "dev"}],
    "tasks": [
        {"name": "fetch", "taskRef": {"name": "git-clone"}},
        {
            "name": "build",
            "runAfter": ["fetch"],
            "params": [{"name": "rev", "value": "$(tasks.fetch.results.commit)"}],
        },
        {"name": "lint", "params": [{"name": "rev", "value": "$(tasks.fetch.results.commit)"}]},
        {
            "name": "deploy",
            "runAfter": ["build", "lint"],
            "when": [{"input": "$(params.env)", "operator": "in", "values": ["prod"]}],
        },
        {"name": "notify", "when": [{"cel": "'$(tasks.build.results.image)' != ''"}]},
    ],
    "finally": [{"name": "report", "params": [{"name": "x", "value": "$(tasks.build.status)"}]}],
}


def condition(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": "Succeeded", "status": status, "reason": reason, "message": message}


def taskrun(
    name: str,
    task: str,
    cond: dict[str, Any],
    steps: list[dict[str, Any]] | None = None,
    *,
    run: str = "ci-run",
    run_dir: str = "",
) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"tekton.dev/pipelineRun": run, "tekton.dev/pipelineTask": task},
            "annotations": {"ami.dev/run-dir": run_dir} if run_dir else {},
        },
        "status": {"conditions": [cond], "startTime": "2026-01-02T03:04:05Z", "steps": steps or []},
    }


def pipelinerun(children: list[tuple[str, str]], skipped: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {
            "name": "ci-run",
            "namespace": "default",
            "labels": {"tekton.dev/pipeline": "ci"},
        },
        "status": {
            "conditions": [condition("Unknown", "Running")],
            "startTime": "2026-01-02T03:04:00Z",
            "pipelineSpec": SPEC,
            "childReferences": [
                {"kind": "TaskRun", "name": n, "pipelineTaskName": t} for n, t in children
            ],
            "skippedTasks": skipped,
        },
    }


DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}, "terminationReason": "Completed"}
FAILED = {"terminated": {"exitCode": 1, "reason": "Error"}, "terminationReason": "Error"}


def test_the_graph_has_runafter_and_result_edges_and_finally_apart() -> None:
    graph = rungraph.run_graph(pipelinerun([], []), [])
    assert [(n["id"], n["finally"]) for n in graph["nodes"]] == [
        ("fetch", False),
        ("build", False),
        ("lint", False),
        ("deploy", False),
        ("notify", False),
        ("report", True),
    ]
    assert sorted((e["source"], e["target"], e["kind"]) for e in graph["edges"]) == [
        ("build", "deploy", "runAfter"),
        ("build", "notify", "result"),  # a CEL `when` reads build's result
        ("fetch", "build", "runAfter+result"),
        ("fetch", "lint", "result"),
        ("lint", "deploy", "runAfter"),
    ]
    assert graph["nodes"][0]["task"] == "git-clone"
    assert {n["state"] for n in graph["nodes"]} == {"Pending"}
    assert (graph["pipeline"], graph["state"], graph["reason"]) == ("ci", "Running", "Running")


def test_task_states_come_from_taskruns_and_skipped_tasks() -> None:
    trs = [
        taskrun(
            "ci-run-fetch", "fetch", condition("True", "Succeeded"), [{"name": "clone", **DONE}]
        ),
        taskrun(
            "ci-run-build",
            "build",
            condition("False", "Failed", '"step-compile" exited with code 1'),
            [{"name": "compile", "image": "golang", **FAILED}, {"name": "push", **DONE}],
        ),
        taskrun(
            "ci-run-lint",
            "lint",
            condition("Unknown", "Running"),
            [{"name": "vet", "running": {"startedAt": "x"}}, {"name": "fmt", "waiting": {}}],
        ),
        taskrun("ci-run-report", "report", condition("Unknown", "Started")),
        taskrun("other-run-deploy", "deploy", condition("True", "Succeeded"), run="other-run"),
    ]
    children = [("ci-run-fetch", "fetch"), ("ci-run-build", "build"), ("ci-run-lint", "lint")]
    skipped = [{"name": "deploy", "reason": "When Expressions evaluated to false"}]
    # The finally task's TaskRun is not among the childReferences yet: its labels tie it.
    graph = rungraph.run_graph(pipelinerun(children, skipped), trs)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert (nodes["fetch"]["state"], nodes["fetch"]["reason"]) == ("Succeeded", "Succeeded")
    assert (nodes["build"]["state"], nodes["build"]["reason"]) == ("Failed", "Failed")
    assert nodes["build"]["message"] == '"step-compile" exited with code 1'
    assert nodes["build"]["taskRun"] == "ci-run-build"
    assert [
        (s["name"], s["state"], s["reason"], s["exitCode"])
        for s in nodes["build"]["runs"][0]["steps"]
    ] == [
        ("compile", "Failed", "Error", 1),
        ("push", "Succeeded", "Completed", 0),
    ]
    assert nodes["build"]["runs"][0]["steps"][0]["image"] == "golang"
    assert [(s["state"], s["reason"]) for s in nodes["lint"]["runs"][0]["steps"]] == [
        ("Running", "Running"),
        ("Pending", ""),
    ]
    assert (nodes["lint"]["state"], nodes["lint"]["reason"]) == ("Running", "Running")
    assert nodes["deploy"]["state"] == "Skipped"
    assert nodes["deploy"]["reason"] == "When Expressions evaluated to false"
    assert nodes["deploy"]["taskRun"] is None  # not the other run's TaskRun
    assert (nodes["notify"]["state"], nodes["report"]["state"]) == ("Pending", "Pending")
    assert nodes["report"]["taskRun"] == "ci-run-report"


def test_a_matrix_task_has_a_run_per_combination_and_their_state_together() -> None:
    trs = [
        taskrun("ci-run-lint-0", "lint", condition("True", "Succeeded")),
        taskrun("ci-run-lint-1", "lint", condition("Unknown", "Started")),
    ]
    children = [("ci-run-lint-0", "lint"), ("ci-run-lint-1", "lint")]
    lint = {n["id"]: n for n in rungraph.run_graph(pipelinerun(children, []), trs)["nodes"]}["lint"]
    assert [r["taskRun"] for r in lint["runs"]] == ["ci-run-lint-0", "ci-run-lint-1"]
    assert (lint["state"], lint["reason"], lint["completionTime"]) == ("Running", "Running", None)
    trs[1]["status"]["conditions"] = [condition("False", "TaskRunTimeout")]
    lint = {n["id"]: n for n in rungraph.run_graph(pipelinerun(children, []), trs)["nodes"]}["lint"]
    assert (lint["state"], lint["reason"]) == ("Failed", "TaskRunTimeout")


def test_a_step_continued_after_an_error_and_a_skipped_step() -> None:
    cont = {"terminated": {"exitCode": 3}, "terminationReason": "Continued"}
    skip = {"terminated": {"exitCode": 1}, "terminationReason": "Skipped"}
    assert rungraph.step_state({"name": "a", **cont})["state"] == "Succeeded"
    assert rungraph.step_state({"name": "b", **skip})["state"] == "Skipped"


def test_a_lone_taskrun_is_a_graph_of_one() -> None:
    tr = taskrun("hello-run-abcde", "", condition("False", "TaskRunTimeout"), [{"name": "s"}])
    tr["metadata"]["labels"] = {"tekton.dev/task": "hello"}
    graph = rungraph.taskrun_graph(tr)
    assert graph["kind"] == "TaskRun" and graph["edges"] == []
    [node] = graph["nodes"]
    assert (node["id"], node["state"], node["reason"]) == ("hello", "Failed", "TaskRunTimeout")
    assert [s["state"] for s in node["runs"][0]["steps"]] == ["Pending"]


# --- the step log's tail --------------------------------------------------------------


def test_read_log_from_the_end_then_from_an_offset(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes(b"".join(b"line %03d\n" % i for i in range(100)))  # 9 bytes a line
    tail = api_pipelines.read_log(log, None, 50, whole_lines=True)
    # The last 50 bytes start mid-line: the view starts at the next whole line.
    assert tail["text"] == "".join(f"line {i:03d}\n" for i in range(95, 100))
    assert tail["offset"] == tail["size"] == 900 and tail["skipped"] == 855
    with log.open("ab") as f:
        f.write(b"line 100\nhalf a li")
    more = api_pipelines.read_log(log, tail["offset"], 50, whole_lines=True)
    assert (more["text"], more["offset"], more["skipped"]) == ("line 100\n", 909, 0)
    # The step ended: its last line, without its newline, comes too.
    rest = api_pipelines.read_log(log, more["offset"], 50, whole_lines=False)
    assert (rest["text"], rest["offset"]) == ("half a li", 918)
    # More than the limit since the offset: the reader skips to the end's whole lines.
    with log.open("ab") as f:
        f.write(b"ne\n" + b"x" * 100 + b"\nlast\n")
    jump = api_pipelines.read_log(log, rest["offset"], 50, whole_lines=True)
    assert jump["text"] == "last\n" and jump["skipped"] == 3 + 100 + 1
    assert api_pipelines.read_log(tmp_path / "none.log", None, 50, whole_lines=True)["text"] == ""
    os.mkfifo(tmp_path / "fifo.log")  # not read: opening it would wait for a writer
    assert api_pipelines.read_log(tmp_path / "fifo.log", None, 50, whole_lines=True)["size"] == 0


def test_a_line_longer_than_the_limit_still_moves_on(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes(b"y" * 120)
    first = api_pipelines.read_log(log, 0, 50, whole_lines=True)
    assert len(first["text"]) == 50 and first["offset"] == 120


# --- the endpoints ----------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[tuple[Client, ControlPlane]]:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01))
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await c.start_server()
    try:
        yield c, cp
    finally:
        await c.close()


async def test_graph_and_logs_endpoints(
    client: tuple[Client, ControlPlane], tmp_path: Path
) -> None:
    c, cp = client
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "step-compile.log").write_text("compiling\nerror: nope\n")
    build = taskrun(
        "ci-run-build",
        "build",
        condition("False", "Failed"),
        [{"name": "compile", "container": "step-compile", **FAILED}],
        run_dir=str(run_dir),
    )
    sneaky = taskrun(
        "sneaky",
        "x",
        condition("Unknown", "Running"),
        [{"name": "s", "container": "../../etc/passwd", "running": {}}],
        run_dir=str(run_dir),
    )
    cp.pipelines.report("local", [pipelinerun([("ci-run-build", "build")], []), build, sneaky])

    async with c.get("/api/v1/pipelines/graph/PipelineRun/default/ci-run", headers=AUTH) as r:
        assert r.status == 200
        graph = await r.json()
    assert {n["id"]: n["state"] for n in graph["nodes"]}["build"] == "Failed"
    async with c.get("/api/v1/pipelines/graph/TaskRun/default/ci-run-build", headers=AUTH) as r:
        assert [n["taskRun"] for n in (await r.json())["nodes"]] == ["ci-run-build"]
    async with c.get("/api/v1/pipelines/graph/PipelineRun/default/nope", headers=AUTH) as r:
        assert r.status == 404
    async with c.get("/api/v1/pipelines/graph/Pod/default/nope", headers=AUTH) as r:
        assert r.status == 400

    logs = "/api/v1/pipelines/logs/default/ci-run-build/compile"
    async with c.get(logs, headers=AUTH) as r:
        body = await r.json()
    assert body == {
        "text": "compiling\nerror: nope\n",
        "offset": 22,
        "size": 22,
        "skipped": 0,
        "finished": True,
    }
    async with c.get(logs, params={"offset": "10"}, headers=AUTH) as r:
        assert (await r.json())["text"] == "error: nope\n"
    async with c.get(logs, params={"offset": "x"}, headers=AUTH) as r:
        assert r.status == 400
    async with c.get("/api/v1/pipelines/logs/default/ci-run-build/push", headers=AUTH) as r:
        assert r.status == 404 and "no step 'push'" in (await r.json())["error"]
    # A container name that is not a plain name is not read.
    async with c.get("/api/v1/pipelines/logs/default/sneaky/s", headers=AUTH) as r:
        assert r.status == 404
    # Without the token (or the dashboard's cookie), nothing.
    async with c.get(logs) as r:
        assert r.status == 401
