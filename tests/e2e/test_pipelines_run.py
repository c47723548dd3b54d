"""Tekton runs with real processes: TaskRuns and PipelineRuns through the local runner
(`amimesh.pipelines.pipelinerunner.Runs`), as the node agent runs them. Nothing here
asserts how long anything took; waits poll for a condition with a deadline."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from amimesh.pipelines import records as rec
from amimesh.pipelines.pipelinerunner import Lookups, PipelineControl, Runs
from amimesh.resources import parse_documents
from amimesh.resources import tekton as tk
from amimesh.resources.meta import Resource

DEADLINE_S = 30.0


def load(text: str) -> list[Resource]:
    result = parse_documents(textwrap.dedent(text), "t.yaml")
    assert [str(e) for e in result.errors] == []
    return result.resources


def runs_for(tmp_path: Path, resources: list[Resource]) -> Runs:
    return Runs(tmp_path / "pipelines", Lookups.of(resources))


def one(resources: list[Resource], kind: type[Any]) -> Any:
    (found,) = [r for r in resources if isinstance(r, kind)]
    return found


async def run_pipeline(
    runs: Runs, pr: tk.PipelineRun, control: PipelineControl | None = None
) -> rec.PipelineRunRecord:
    record = runs.pipeline_run(pr, time.time())
    await asyncio.wait_for(runs.run_pipeline(pr, record, control or PipelineControl()), DEADLINE_S)
    return record


def log_of(runs: Runs, namespace: str, taskrun: str, step: str) -> str:
    return (runs.task_run_dir(namespace, taskrun) / "logs" / f"step-{step}.log").read_text()


async def poll(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


TASK = """
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: greet}
spec:
  params:
  - {name: who, default: world}
  - {name: files, type: array}
  - {name: repo, type: object, properties: {url: {}, rev: {}}}
  results: [{name: greeting}, {name: list, type: array}]
  workspaces: [{name: shared}]
  steps:
  - name: write
    image: alpine
    script: |
      echo "hello $(params.who) from $(params.repo.url)@$(params.repo.rev)"
      printf 'hello %s' "$(params.who)" > $(results.greeting.path)
      echo "$(context.taskRun.name)" > $(workspaces.shared.path)/by
      pwd
      echo "HOME=$HOME"
  - name: args
    image: alpine
    command: [printf, "<%s>\\n"]
    args: ["$(params.files[*])"]
  - name: read
    image: python
    script: |
      #!/usr/bin/env python3
      import json
      print(open("/workspace/shared/by").read().strip())
      open("$(results.list.path)", "w").write(json.dumps(["a", "b"]))
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: greet-1}
spec:
  taskRef: {name: greet}
  params:
  - {name: files, value: ["one file", two]}
  - {name: repo, value: {url: "https://example.com/r.git", rev: main}}
  workspaces: [{name: shared, emptyDir: {}}]
"""


async def test_a_task_with_params_results_and_a_workspace(tmp_path: Path) -> None:
    resources = load(TASK)
    runs = runs_for(tmp_path, resources)
    tr = one(resources, tk.TaskRun)
    record = runs.task_run(tr, time.time())
    await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
    status = record.status()
    assert status["conditions"][0]["reason"] == "Succeeded", status
    assert status["conditions"][0]["message"] == "All Steps have completed executing"
    assert [s["terminated"]["reason"] for s in status["steps"]] == ["Completed"] * 3
    assert [s["image"] for s in status["steps"]] == ["alpine", "alpine", "python"]
    assert status["results"] == [
        {"name": "greeting", "type": "string", "value": "hello world"},
        {"name": "list", "type": "array", "value": ["a", "b"]},
    ]
    run_dir = runs.task_run_dir("default", "greet-1")
    assert log_of(runs, "default", "greet-1", "write").splitlines() == [
        "hello world from https://example.com/r.git@main",
        f"{run_dir}/workspace",
        f"HOME={run_dir}/home",
    ]
    assert log_of(runs, "default", "greet-1", "args") == "<one file>\n<two>\n"
    assert log_of(runs, "default", "greet-1", "read") == "greet-1\n"


async def test_step_failure_on_error_and_step_timeout(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: flaky}
        spec:
          taskSpec:
            steps:
            - {name: ignored, image: alpine, script: "exit 3", onError: continue}
            - {name: slow, image: alpine, script: "sleep 30", timeout: 200ms, onError: continue}
            - {name: exit-code, image: alpine, script: "cat $(steps.step-ignored.exitCode.path)"}
            - {name: fails, image: alpine, script: "echo no; exit 5"}
            - {name: never, image: alpine, script: "echo never"}
        """
    )
    runs = runs_for(tmp_path, resources)
    tr = one(resources, tk.TaskRun)
    record = runs.task_run(tr, time.time())
    await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
    status = record.status()
    assert status["conditions"][0]["reason"] == "Failed"
    assert status["conditions"][0]["message"] == '"step-fails" exited with code 5: Error'
    reasons = [
        (s["name"], s["terminationReason"], s["terminated"]["exitCode"]) for s in status["steps"]
    ]
    assert reasons[0] == ("ignored", "Continued", 3)
    assert reasons[1][:2] == ("slow", "TimeoutExceeded")
    assert reasons[2:] == [
        ("exit-code", "Completed", 0),
        ("fails", "Error", 5),
        ("never", "Skipped", 1),
    ]
    assert log_of(runs, "default", "flaky", "exit-code") == "3"


async def test_results_over_tektons_limit_fail_the_taskrun(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: big}
        spec:
          taskSpec:
            results: [{name: a}, {name: b}]
            steps:
            - image: alpine
              script: |
                head -c 3000 /dev/zero | tr '\\0' x > $(results.a.path)
                head -c 2000 /dev/zero | tr '\\0' y > $(results.b.path)
        """
    )
    runs = runs_for(tmp_path, resources)
    tr = one(resources, tk.TaskRun)
    record = runs.task_run(tr, time.time())
    await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
    cond = record.status()["conditions"][0]
    assert (cond["reason"], cond["message"]) == (
        "Failed",
        "Termination message is above max allowed size 4096, caused by large task result.",
    )


PIPELINE = """
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: meet}
spec:
  params: [{name: me}, {name: other}]
  workspaces: [{name: ws}]
  steps:
  - image: alpine
    script: |
      # Runs only if the other task runs at the same time: each waits for the other.
      touch $(workspaces.ws.path)/$(params.me)
      i=0
      while [ ! -e $(workspaces.ws.path)/$(params.other) ]; do
        i=$((i+1)); [ $i -lt 1500 ] || exit 9; sleep 0.02
      done
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: emit}
spec:
  params: [{name: text, default: ""}]
  results: [{name: out}]
  steps:
  - image: alpine
    script: |
      echo "got: $(params.text)"
      printf '%s' "$(params.text)+" > $(results.out.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: ci}
spec:
  params: [{name: deploy, default: "no"}]
  workspaces: [{name: ws}]
  results: [{name: joined, value: "$(tasks.join.results.out)"}]
  tasks:
  - {name: left, taskRef: {name: meet}, workspaces: [{name: ws}],
     params: [{name: me, value: left}, {name: other, value: right}]}
  - {name: right, taskRef: {name: meet}, workspaces: [{name: ws}],
     params: [{name: me, value: right}, {name: other, value: left}]}
  - name: first
    runAfter: [left, right]
    taskRef: {name: emit}
    params: [{name: text, value: "$(context.pipelineRun.name)"}]
  - name: join
    taskRef: {name: emit}
    params: [{name: text, value: "$(tasks.first.results.out)"}]
  - name: deploy
    runAfter: [join]
    when: [{input: "$(params.deploy)", operator: in, values: ["yes"]}]
    taskRef: {name: emit}
  - name: announce
    taskRef: {name: emit}
    params: [{name: text, value: "$(tasks.deploy.results.out)"}]
  - name: after-deploy
    runAfter: [deploy]
    taskRef: {name: emit}
    params: [{name: text, value: after}]
  - name: flaky
    runAfter: [after-deploy]
    retries: 2
    taskSpec:
      workspaces: [{name: ws}]
      steps:
      - image: alpine
        script: |
          echo x >> $(workspaces.ws.path)/attempts
          [ "$(wc -l < $(workspaces.ws.path)/attempts)" -ge 2 ]
    workspaces: [{name: ws}]
  - name: broken
    runAfter: [flaky]
    taskSpec:
      steps: [{image: alpine, script: "echo broken; exit 1"}]
  - name: never
    runAfter: [broken]
    taskRef: {name: emit}
  finally:
  - name: report
    taskRef: {name: emit}
    params:
    - {name: text, value: "$(tasks.status) $(tasks.broken.status) $(tasks.join.results.out)"}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: ci-1}
spec:
  pipelineRef: {name: ci}
  workspaces: [{name: ws, emptyDir: {}}]
"""


async def test_a_pipeline_graph(tmp_path: Path) -> None:
    resources = load(PIPELINE)
    runs = runs_for(tmp_path, resources)
    record = await run_pipeline(runs, one(resources, tk.PipelineRun))
    status = record.status()
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "Failed",
        "Tasks Completed: 8 (Failed: 1, Cancelled 0), Skipped: 3",
    )
    children = {t: n for n, t in record.children}
    state = {t: runs.task_runs[("default", n)] for t, n in children.items()}
    assert {t: s.reason for t, s in state.items()} == {
        "left": "Succeeded",
        "right": "Succeeded",  # left and right ran at the same time
        "first": "Succeeded",
        "join": "Succeeded",
        "after-deploy": "Succeeded",  # when guards deploy alone
        "flaky": "Succeeded",
        "broken": "Failed",
        "report": "Succeeded",  # finally runs after the failure
    }
    assert state["join"].results == {"out": "ci-1++"}
    assert len(state["flaky"].retries) == 1
    assert state["flaky"].status()["retriesStatus"][0]["conditions"][0]["reason"] == "Failed"
    assert status["skippedTasks"] == [
        {
            "name": "deploy",
            "reason": "When Expressions evaluated to false",
            "whenExpressions": [{"input": "$(params.deploy)", "operator": "in", "values": ["yes"]}],
        },
        {"name": "announce", "reason": "Results were missing"},
        {"name": "never", "reason": "PipelineRun was stopping"},
    ]
    assert log_of(runs, "default", "ci-1-report", "unnamed-0") == "got: Failed Failed ci-1++\n"
    assert status["results"] == [{"name": "joined", "value": "ci-1++"}]
    assert children["left"] == "ci-1-left"


TIMEOUTS = """
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: slow}
spec:
  tasks:
  - name: sleeper
    timeout: "$TASK_TIMEOUT"
    taskSpec:
      steps: [{image: alpine, script: "echo $$ > $(context.taskRun.name).pid; sleep 30"}]
  finally:
  - name: always
    taskSpec:
      steps: [{image: alpine, script: "echo finally"}]
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: slow-1}
spec:
  pipelineRef: {name: slow}
  timeouts: {pipeline: "$PIPELINE_TIMEOUT"}
"""


def timeouts(task: str, pipeline: str) -> list[Resource]:
    text = TIMEOUTS.replace("$TASK_TIMEOUT", task).replace("$PIPELINE_TIMEOUT", pipeline)
    return load(text)


async def test_a_task_timeout(tmp_path: Path) -> None:
    resources = timeouts("500ms", "1h")
    runs = runs_for(tmp_path, resources)
    record = await run_pipeline(runs, one(resources, tk.PipelineRun))
    sleeper = runs.task_runs[("default", "slow-1-sleeper")]
    assert (sleeper.reason, sleeper.message) == (
        "TaskRunTimeout",
        'TaskRun "slow-1-sleeper" failed to finish within "0.5s"',
    )
    assert runs.task_runs[("default", "slow-1-always")].succeeded
    assert (record.reason, record.message) == (
        "Failed",
        "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 0",
    )


async def test_a_pipeline_timeout(tmp_path: Path) -> None:
    resources = timeouts("1h", "500ms")
    runs = runs_for(tmp_path, resources)
    record = await run_pipeline(runs, one(resources, tk.PipelineRun))
    assert (record.state, record.reason, record.message) == (
        "False",
        "PipelineRunTimeout",
        'PipelineRun "slow-1" failed to finish within "0.5s"',
    )
    sleeper = runs.task_runs[("default", "slow-1-sleeper")]
    assert sleeper.reason == "TaskRunCancelled"
    assert sleeper.message.endswith(rec.CANCELLED_BY_PIPELINE_TIMEOUT)
    assert ("default", "slow-1-always") not in runs.task_runs  # finally is skipped
    assert record.status()["skippedTasks"] == [
        {"name": "always", "reason": "PipelineRun timeout has been reached"}
    ]


async def test_cancel_stops_the_running_step(tmp_path: Path) -> None:
    resources = timeouts("1h", "1h")
    runs = runs_for(tmp_path, resources)
    pr = one(resources, tk.PipelineRun)
    control = PipelineControl()
    record = runs.pipeline_run(pr, time.time())
    task = asyncio.ensure_future(runs.run_pipeline(pr, record, control))
    pid_file = runs.task_run_dir("default", "slow-1-sleeper") / "workspace" / "slow-1-sleeper.pid"
    await poll(lambda: pid_file.exists() and pid_file.read_text().strip(), "the step to start")
    pid = int(pid_file.read_text())
    control.cancel("Cancelled")
    await asyncio.wait_for(task, DEADLINE_S)
    assert (record.state, record.reason, record.message) == (
        "False",
        "Cancelled",
        'PipelineRun "slow-1" was cancelled',
    )
    sleeper = runs.task_runs[("default", "slow-1-sleeper")]
    assert sleeper.reason == "TaskRunCancelled"
    assert sleeper.steps[0].reason == "Cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert ("default", "slow-1-always") not in runs.task_runs


async def test_a_pipelinerun_with_a_missing_param_or_task(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: Pipeline
        metadata: {name: p}
        spec:
          params: [{name: needed}]
          tasks: [{name: a, taskRef: {name: nowhere}}]
        ---
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: p-1}
        spec: {pipelineRef: {name: p}}
        ---
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: p-2}
        spec:
          pipelineRef: {name: p}
          params: [{name: needed, value: x}]
        """
    )
    runs = runs_for(tmp_path, resources)
    first, second = [r for r in resources if isinstance(r, tk.PipelineRun)]
    one_record = await run_pipeline(runs, first)
    assert (one_record.reason, one_record.message) == (
        "ParameterMissing",
        "PipelineRun default/p-1: missing parameters: ['needed']",
    )
    two_record = await run_pipeline(runs, second)
    assert two_record.reason == "CouldntGetTask"
    assert "'nowhere'" in two_record.message


async def test_sidecars_configmaps_and_claims(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {greeting: hello, other: x}
        ---
        apiVersion: tekton.dev/v1
        kind: Task
        metadata: {name: count}
        spec:
          workspaces: [{name: config, readOnly: true}, {name: cache}]
          sidecars:
          - name: server
            image: redis
            script: |
              echo ready > $(workspaces.cache.path)/sidecar
              exec sleep 30
          steps:
          - name: count
            image: alpine
            script: |
              i=0
              while [ ! -e $(workspaces.cache.path)/sidecar ]; do
                i=$((i+1)); [ $i -lt 1500 ] || exit 9; sleep 0.02
              done
              echo "$(cat $(workspaces.config.path)/greeting)"
              echo run >> $(workspaces.cache.path)/runs
              wc -l < $(workspaces.cache.path)/runs
        ---
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: count-1}
        spec:
          taskRef: {name: count}
          workspaces:
          - {name: config, configMap: {name: settings, items: [{key: greeting, path: greeting}]}}
          - {name: cache, persistentVolumeClaim: {claimName: cache}}
        """
    )
    runs = runs_for(tmp_path, resources)
    first = one(resources, tk.TaskRun)
    second = first.model_copy(
        update={"metadata": first.metadata.model_copy(update={"name": "count-2"})}
    )
    for tr in (first, second):
        record = runs.task_run(tr, time.time())
        await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
        status = record.status()
        assert status["conditions"][0]["reason"] == "Succeeded", status
        assert status["sidecars"][0]["name"] == "server"
    # The claim's directory outlives a run; the sidecar was stopped with its TaskRun.
    assert log_of(runs, "default", "count-1", "count").split() == ["hello", "1"]
    assert log_of(runs, "default", "count-2", "count").split() == ["hello", "2"]
    assert not (
        runs.task_run_dir("default", "count-1") / "workspaces" / "config" / "other"
    ).exists()


async def test_what_tekton_propagates_and_older_spellings(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: loose}
        spec:
          params: [{name: word, value: hi}, {name: list, value: [a, b]}]
          workspaces: [{name: scratch, emptyDir: {}}]
          taskSpec:
            params: [{name: list, type: array}]
            steps:
            - name: shell-args
              image: busybox
              args: ["-c", "echo $(params.word) > $(workspaces.scratch.path)/w"]
            - name: whole-array
              image: busybox
              command: [echo]
              args: ["$(params.list)"]
            - name: older
              image: busybox
              script: |
                cat /workspace/scratch/w
                cat /tekton/steps/0/exitCode; echo
                echo "$(inputs.params.list[1])"
        """
    )
    runs = runs_for(tmp_path, resources)
    tr = one(resources, tk.TaskRun)
    record = runs.task_run(tr, time.time())
    await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
    assert record.reason == "Succeeded", record.message
    assert log_of(runs, "default", "loose", "whole-array") == "a b\n"
    assert log_of(runs, "default", "loose", "older") == "hi\n0\nb\n"


async def test_pipeline_results_from_finally(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: fin}
        spec:
          pipelineSpec:
            results:
            - {name: main, value: "$(tasks.a.results.r)"}
            - {name: last, value: "$(finally.f.results.r)"}
            tasks:
            - name: a
              taskSpec:
                results: [{name: r}]
                steps: [{image: alpine, script: "printf one > $(results.r.path)"}]
            finally:
            - name: f
              params: [{name: got, value: "$(tasks.a.results.r)"}]
              taskSpec:
                params: [{name: got}]
                results: [{name: r}]
                steps:
                - {image: alpine, script: "printf '%s-two' $(params.got) > $(results.r.path)"}
        """
    )
    runs = runs_for(tmp_path, resources)
    record = await run_pipeline(runs, one(resources, tk.PipelineRun))
    assert record.reason == "Succeeded", record.message
    assert record.results == [
        {"name": "main", "value": "one"},
        {"name": "last", "value": "one-two"},
    ]


async def test_a_matrix_fans_out_and_its_results_are_arrays(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: mx}
        spec:
          pipelineSpec:
            tasks:
            - name: build
              params: [{name: suffix, value: "!"}]
              matrix:
                params:
                - {name: os, value: [linux, mac]}
                - {name: arch, value: [amd64, arm64]}
              taskSpec:
                params: [{name: os}, {name: arch}, {name: suffix}]
                results: [{name: out}]
                steps:
                - image: alpine
                  script: |
                    printf '%s' "$(params.os)/$(params.arch)$(params.suffix)" \
                      > $(results.out.path)
            - name: report
              params:
              - {name: all, value: "$(tasks.build.results.out[*])"}
              - {name: n, value: "$(tasks.build.matrix.length)"}
              taskSpec:
                params: [{name: all, type: array}, {name: n}]
                steps:
                - {image: alpine, command: [echo, "$(params.n):"], args: ["$(params.all[*])"]}
        """
    )
    runs = runs_for(tmp_path, resources)
    record = await run_pipeline(runs, one(resources, tk.PipelineRun))
    assert record.reason == "Succeeded", record.message
    assert [n for n, t in record.children if t == "build"] == [f"mx-build-{i}" for i in range(4)]
    assert log_of(runs, "default", "mx-report", "unnamed-0") == (
        "4: linux/amd64! mac/amd64! linux/arm64! mac/arm64!\n"
    )


async def test_volumes_emptydir_and_configmap(tmp_path: Path) -> None:
    resources = load(
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: conf}
        data: {mode: fast}
        ---
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: vols}
        spec:
          params: [{name: cm, value: conf}]
          taskSpec:
            params: [{name: cm}]
            volumes:
            - {name: cache, emptyDir: {}}
            - {name: settings, configMap: {name: "$(params.cm)"}}
            stepTemplate:
              volumeMounts: [{name: settings, mountPath: /etc/app}]
            steps:
            - name: write
              image: alpine
              volumeMounts: [{name: cache, mountPath: /cache}]
              script: echo cached > /cache/file
            - name: read
              image: alpine
              volumeMounts: [{name: cache, mountPath: /workspace/data}]
              script: |
                cat /workspace/data/file
                cat /etc/app/mode; echo
        """
    )
    runs = runs_for(tmp_path, resources)
    tr = one(resources, tk.TaskRun)
    record = runs.task_run(tr, time.time())
    await asyncio.wait_for(runs.run_task_run(tr, record), DEADLINE_S)
    assert record.reason == "Succeeded", record.message
    assert log_of(runs, "default", "vols", "read") == "cached\nfast\n"


async def test_a_secret_workspace_is_its_values_as_files_only_the_runner_reads(
    tmp_path: Path,
) -> None:
    resources = load(
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        data: {token: czNjcjN0}   # "s3cr3t"
        stringData: {user: ci}
        ---
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: uses-secret}
        spec:
          workspaces:
          - {name: creds, secret: {secretName: creds}}
          - {name: picked, secret: {secretName: creds, items: [{key: user, path: who/name}]}}
          - {name: maybe, secret: {secretName: absent, optional: true}}
          taskSpec:
            workspaces: [{name: creds}, {name: picked}, {name: maybe}]
            steps:
            - name: read
              image: alpine
              script: |
                echo "$(cat $(workspaces.creds.path)/user):$(cat $(workspaces.creds.path)/token)"
                cat $(workspaces.picked.path)/who/name; echo
                ls $(workspaces.picked.path)
                ls -A $(workspaces.maybe.path) | wc -l
        ---
        apiVersion: tekton.dev/v1
        kind: TaskRun
        metadata: {name: missing-secret}
        spec:
          workspaces: [{name: creds, secret: {secretName: nowhere}}]
          taskSpec:
            workspaces: [{name: creds}]
            steps: [{name: never, image: alpine, script: "echo ran"}]
        """
    )
    runs = runs_for(tmp_path, resources)
    ok, missing = sorted((r for r in resources if isinstance(r, tk.TaskRun)), key=lambda r: r.name)[
        ::-1
    ]
    record = runs.task_run(ok, time.time())
    await asyncio.wait_for(runs.run_task_run(ok, record), DEADLINE_S)
    assert record.status()["conditions"][0]["reason"] == "Succeeded", record.status()
    assert log_of(runs, "default", "uses-secret", "read").split() == ["ci:s3cr3t", "ci", "who", "0"]
    token = runs.task_run_dir("default", "uses-secret") / "workspaces" / "creds" / "token"
    assert token.stat().st_mode & 0o777 == 0o400
    assert token.parent.stat().st_mode & 0o777 == 0o700
    failed = runs.task_run(missing, time.time())
    await asyncio.wait_for(runs.run_task_run(missing, failed), DEADLINE_S)
    condition = failed.status()["conditions"][0]
    assert condition["reason"] == "CreateContainerConfigError"
    assert 'secret "nowhere" not found' in condition["message"]
