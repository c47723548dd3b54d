"""Tekton's own examples (tektoncd/pipeline's `examples/v1/`, kept under
`tests/data/tekton-examples/`, see its SOURCE.md) run by the local runner with real
processes. Each example's scripts check themselves; as in Tekton's CI, a run passes when
it ends `Succeeded`. The examples run side by side, each in its own directory; nothing
here asserts how long anything took."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from amimesh.pipelines.pipelinerunner import Lookups, PipelineControl, Runs
from amimesh.resources import tekton as tk
from amimesh.resources.meta import Resource
from amimesh.resources.parse import parse_object

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "tekton-examples"
KEPT = sorted(
    p.relative_to(EXAMPLES).as_posix()
    for top in ("taskruns", "pipelineruns")
    for p in (EXAMPLES / top).rglob("*.yaml")
)
# Left out for failing at run time, for reasons that do not depend on the host's shell
# (docs/pipelines.md): each fails, a TaskRun of it saying this.
FAILING = {
    "taskruns/beta/large-task-result.yaml": "above max allowed size 4096",
    "pipelineruns/alpha/pipelinerun-large-results.yaml": "above max allowed size 4096",
    "taskruns/alpha/task-artifacts.yaml": '"step-produce-artifacts" exited with code',
    "taskruns/alpha/produce-consume-artifacts.yaml": '"step-artifacts-producer" exited',
    "pipelineruns/alpha/consume-artifacts-from-task.yaml": '"step-produce-artifacts" exited',
    "taskruns/entrypoint-resolution.yaml": "has no command, args or script",
    "taskruns/workingdir.yaml": "/a/path/too/far",
    "taskruns/workspace-volume.yaml": '"step-override-workspace" exited with code 1',
    "taskruns/readonly-internal-dir.yaml": '"step-unnamed-2" exited with code 1',
}
AT_ONCE = 8  # examples running at the same time
RUN_DEADLINE_S = 120.0  # per run, generous for a loaded machine


def load_example(path: Path) -> list[Resource]:
    """The file's resources; a run with only `generateName` is named `generateName` +
    `run` (the API server would add a random suffix)."""
    resources: list[Resource] = []
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for index, document in enumerate(documents):
        meta = document.get("metadata") or {}
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta.pop("generateName")) + "run"
        result = parse_object(document, str(path), document=index)
        assert [str(e) for e in result.errors] == []
        resources += result.resources
    return resources


def _logs(root: Path) -> str:
    """The tail of every step's log under `root`, for a failure's message."""
    out = []
    for log in sorted(root.rglob("logs/*.log")):
        tail = log.read_text(errors="replace").splitlines()[-5:]
        out.append(f"--- {log.relative_to(root)}\n" + "\n".join(tail))
    return "\n".join(out)


async def run_example(rel: str, root: Path) -> tuple[Runs, list[dict[str, Any]]]:
    """Every TaskRun and PipelineRun of the example, in file order: the runs (with every
    TaskRun's record) and the statuses of the file's own runs."""
    resources = load_example(EXAMPLES / rel)
    runs = Runs(root, Lookups.of(resources))
    statuses = []
    for r in resources:
        if isinstance(r, tk.TaskRun):
            task_record = runs.task_run(r, time.time())
            await asyncio.wait_for(runs.run_task_run(r, task_record), RUN_DEADLINE_S)
            statuses.append(task_record.status())
        elif isinstance(r, tk.PipelineRun):
            record = runs.pipeline_run(r, time.time())
            await asyncio.wait_for(runs.run_pipeline(r, record, PipelineControl()), RUN_DEADLINE_S)
            statuses.append(record.status())
    return runs, statuses


def test_the_kept_examples_are_those_source_md_lists() -> None:
    source = (EXAMPLES / "SOURCE.md").read_text()
    listed = source.split("## Kept")[1].split("## Left out")[0]
    assert sorted(line[2:] for line in listed.splitlines() if line.startswith("- ")) == KEPT
    assert len(KEPT) == 72


def _commands(node: Any) -> Iterator[str]:
    """The program of every `command` in a decoded document."""
    if isinstance(node, dict):
        command = node.get("command")
        if isinstance(command, list) and command:
            yield str(command[0])
        for value in node.values():
            yield from _commands(value)
    elif isinstance(node, list):
        for value in node:
            yield from _commands(value)


def test_the_host_has_every_program_the_examples_name() -> None:
    """Steps run on the host: the interpreters their shebangs name and the programs
    their commands name must be there (sh, bash, python3, perl, node, ps, ls, echo)."""
    missing = set()
    for rel in KEPT:
        text = (EXAMPLES / rel).read_text()
        programs = re.findall(r"#!/usr/bin/env (\S+)", text)
        programs += [p for p in re.findall(r"#!(/\S+)", text) if p != "/usr/bin/env"]
        for document in yaml.safe_load_all(text):
            programs += _commands(document)
        missing |= {(rel, p) for p in programs if shutil.which(p) is None}
    assert sorted(missing) == [], "install these on the host to run the examples"


@pytest.mark.timeout(600)
async def test_every_kept_example_succeeds(tmp_path: Path) -> None:
    gate = asyncio.Semaphore(AT_ONCE)
    failures: list[str] = []

    async def one(rel: str) -> None:
        root = tmp_path / rel.replace("/", "_")
        async with gate:
            try:
                _, statuses = await run_example(rel, root)
            except Exception as err:  # noqa: BLE001 - reported with the others below
                failures.append(f"{rel}: {err!r}\n{_logs(root)}")
                return
        if not statuses:
            failures.append(f"{rel}: no TaskRun or PipelineRun in the file")
        for status in statuses:
            condition = status["conditions"][0]
            if condition["status"] != "True" or condition["reason"] not in (
                "Succeeded",
                "Completed",
            ):
                failures.append(
                    f"{rel}: {condition['reason']}: {condition.get('message')}\n{_logs(root)}"
                )

    await asyncio.gather(*(one(rel) for rel in KEPT))
    assert failures == [], "\n\n".join(failures)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rel", sorted(FAILING))
async def test_a_left_out_example_fails_for_its_reason(rel: str, tmp_path: Path) -> None:
    runs, statuses = await run_example("left-out/" + rel, tmp_path)
    assert [s["conditions"][0]["reason"] for s in statuses][-1] == "Failed", statuses
    messages = [r.status()["conditions"][0].get("message", "") for r in runs.task_runs.values()]
    assert any(FAILING[rel] in m for m in messages), messages


async def test_a_working_dir_under_a_workspace_path(tmp_path: Path) -> None:
    """`workingDir: $(workspaces.W.path)/sub` is the workspace's directory (made first,
    as Tekton makes a working directory under /workspace), not a path under the run's
    own /workspace with the local path appended."""
    path = tmp_path / "wd.yaml"
    path.write_text(
        """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {generateName: wd-}
spec:
  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: shared}]
    tasks:
    - name: make
      workspaces: [{name: source, workspace: shared}]
      taskSpec:
        workspaces: [{name: source}]
        steps:
        - name: here
          image: alpine
          workingDir: $(workspaces.source.path)/sub/dir
          script: touch made-here
    - name: check
      runAfter: [make]
      workspaces: [{name: source, workspace: shared}]
      taskSpec:
        workspaces: [{name: source}]
        steps:
        - name: there
          image: alpine
          workingDir: $(workspaces.source.path)
          script: test -f sub/dir/made-here
"""
    )
    resources = load_example(path)
    runs = Runs(tmp_path / "runs", Lookups.of(resources))
    (pr,) = [r for r in resources if isinstance(r, tk.PipelineRun)]
    record = runs.pipeline_run(pr, time.time())
    await asyncio.wait_for(runs.run_pipeline(pr, record, PipelineControl()), RUN_DEADLINE_S)
    status = record.status()
    assert status["conditions"][0]["reason"] == "Succeeded", _logs(tmp_path / "runs")
    workspace = runs.pipeline_run_dir("default", "wd-run") / "workspaces" / "shared"
    assert (workspace / "sub" / "dir" / "made-here").is_file()
