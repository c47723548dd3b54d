"""Tekton through the mesh's own path: a PipelineRun applied to the control plane's
API is run by the node agent's pipeline runner (real processes), whose reports the
API serves; a cancel through the API stops it. No Envoy is needed for this."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.runtime.pipelines import PipelineAgent

TOKEN = "pipelines-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE_S = 30.0

CONFIG = """
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: say}
spec:
  params: [{name: text}]
  results: [{name: said}]
  steps:
  - name: say
    image: alpine
    script: |
      echo "$(params.text)"
      printf '%s' "$(params.text)" > $(results.said.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: hello}
spec:
  params: [{name: who, default: mesh}, {name: wait, default: "true"}]
  tasks:
  - {name: greet, taskRef: {name: say}, params: [{name: text, value: "hello $(params.who)"}]}
  - name: wait
    runAfter: [greet]
    taskSpec:
      steps: [{name: wait, image: alpine, script: "$(params.wait)"}]
  results: [{name: greeting, value: "$(tasks.greet.results.said)"}]
"""


def pipeline_run(name: str, wait: str) -> str:
    return f"""
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {{name: {name}}}
spec:
  pipelineRef: {{name: hello}}
  params: [{{name: wait, value: "{wait}"}}]
"""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[test_utils.TestClient[Any, Any], str]]:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01, state_dir=tmp_path / "cp"))
    (tmp_path / "cp").mkdir()
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    base = str(client.make_url("")).rstrip("/")
    agent = PipelineAgent(base, TOKEN, "local", tmp_path / "node" / "pipelines")
    await agent.start()
    try:
        yield client, base
    finally:
        await agent.stop()
        await client.close()


async def apply(client: test_utils.TestClient[Any, Any], text: str) -> None:
    resp = await client.post("/api/v1/apply", data=text.encode(), headers=AUTH)
    assert resp.status == 200, await resp.text()


async def wait_for(
    client: test_utils.TestClient[Any, Any], kind: str, name: str, done: Any
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        resp = await client.get(f"/api/v1/pipelines/runs?kind={kind}&name={name}", headers=AUTH)
        assert resp.status == 200
        items = (await resp.json())["items"]
        if items and done(items[0]):
            return dict(items[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} {name}: {items}")
        await asyncio.sleep(0.05)


def finished(obj: dict[str, Any]) -> bool:
    return bool(obj["status"]["conditions"][0]["status"] != "Unknown")


async def test_apply_runs_a_pipeline_and_the_api_serves_its_status(
    api: tuple[test_utils.TestClient[Any, Any], str],
) -> None:
    client, _ = api
    await apply(client, CONFIG + "---" + pipeline_run("hello-1", "true"))
    run = await wait_for(client, "PipelineRun", "hello-1", finished)
    status = run["status"]
    assert status["conditions"][0]["reason"] == "Succeeded"
    assert status["results"] == [{"name": "greeting", "value": "hello mesh"}]
    assert [c["name"] for c in status["childReferences"]] == ["hello-1-greet", "hello-1-wait"]
    greet = await wait_for(client, "TaskRun", "hello-1-greet", finished)
    assert greet["metadata"]["labels"]["tekton.dev/pipelineRun"] == "hello-1"
    assert greet["status"]["results"] == [{"name": "said", "type": "string", "value": "hello mesh"}]
    log = Path(greet["metadata"]["annotations"]["ami.dev/run-dir"]) / "logs" / "step-say.log"
    assert log.read_text() == "hello mesh\n"


async def test_cancel_through_the_api(api: tuple[test_utils.TestClient[Any, Any], str]) -> None:
    client, _ = api
    await apply(client, CONFIG + "---" + pipeline_run("hello-2", "sleep 30"))

    def waiting(obj: dict[str, Any]) -> bool:
        steps = obj["status"].get("steps", [])
        return bool(steps and "running" in steps[0])

    await wait_for(client, "TaskRun", "hello-2-wait", waiting)
    resp = await client.post("/api/v1/pipelines/cancel/PipelineRun/default/hello-2", headers=AUTH)
    assert resp.status == 200, await resp.text()
    run = await wait_for(client, "PipelineRun", "hello-2", finished)
    cond = run["status"]["conditions"][0]
    assert (cond["reason"], cond["message"]) == ("Cancelled", 'PipelineRun "hello-2" was cancelled')
    resp = await client.get(
        "/api/v1/resources?kind=PipelineRun&namespace=default&name=hello-2", headers=AUTH
    )
    (item,) = (await resp.json())["items"]
    assert item["spec"]["status"] == "Cancelled"  # as `tkn pipelinerun cancel` patches it
    resp = await client.post("/api/v1/pipelines/cancel/PipelineRun/default/nope", headers=AUTH)
    assert resp.status == 404


async def test_delete_cancels_and_forgets(api: tuple[test_utils.TestClient[Any, Any], str]) -> None:
    client, _ = api
    await apply(client, CONFIG + "---" + pipeline_run("hello-3", "sleep 30"))

    def waiting(obj: dict[str, Any]) -> bool:
        steps = obj["status"].get("steps", [])
        return bool(steps and "running" in steps[0])

    running = await wait_for(client, "TaskRun", "hello-3-wait", waiting)
    run_dir = Path(running["metadata"]["annotations"]["ami.dev/run-dir"])
    resp = await client.delete("/api/v1/resources/PipelineRun/default/hello-3", headers=AUTH)
    assert resp.status == 200, await resp.text()
    deadline = time.monotonic() + DEADLINE_S
    while True:
        resp = await client.get("/api/v1/pipelines/runs?name=hello-3", headers=AUTH)
        if not (await resp.json())["items"]:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(run_dir.exists)  # its files stay; the run left the API


async def test_a_node_agent_started_again_does_not_run_again(tmp_path: Path) -> None:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01, state_dir=tmp_path / "cp"))
    (tmp_path / "cp").mkdir()
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    base = str(client.make_url("")).rstrip("/")
    root = tmp_path / "node" / "pipelines"
    try:
        first = PipelineAgent(base, TOKEN, "local", root)
        await first.start()
        await apply(client, CONFIG + "---" + pipeline_run("once", "true"))
        done = await wait_for(client, "PipelineRun", "once", finished)
        await first.stop()
        log = root / "taskruns" / "default" / "once-greet" / "logs" / "step-say.log"
        log.unlink()
        second = PipelineAgent(base, TOKEN, "local", root)
        await second.start()
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:  # until the second agent has taken the config (and what it ran)
                if any(o["metadata"]["name"] == "once" for o in second.objects()):
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert second.runs.task_runs == {}  # nothing started again
            again = await wait_for(client, "PipelineRun", "once", finished)
            assert again["status"] == done["status"]
            assert not log.exists()
        finally:
            await second.stop()
    finally:
        await client.close()


AGENT = """
import asyncio, sys
from pathlib import Path
from amimesh.runtime.pipelines import PipelineAgent

async def main():
    agent = PipelineAgent(sys.argv[1], sys.argv[2], "local", Path(sys.argv[3]))
    await agent.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_node_agents_running_steps_are_stopped_by_the_next(
    tmp_path: Path,
) -> None:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01, state_dir=tmp_path / "cp"))
    (tmp_path / "cp").mkdir()
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    base = str(client.make_url("")).rstrip("/")
    root = tmp_path / "node" / "pipelines"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, base, TOKEN, str(root), env=env
    )
    try:
        await apply(client, CONFIG + "---" + pipeline_run("orphan", "echo $$ > pid; sleep 30"))

        def waiting(obj: dict[str, Any]) -> bool:
            steps = obj["status"].get("steps", [])
            return bool(steps and "running" in steps[0])

        tr = await wait_for(client, "TaskRun", "orphan-wait", waiting)
        pid_file = Path(tr["metadata"]["annotations"]["ami.dev/run-dir"]) / "workspace" / "pid"
        deadline = time.monotonic() + DEADLINE_S
        while True:
            text = await asyncio.to_thread(
                lambda: pid_file.read_text() if pid_file.exists() else ""
            )
            if text.strip():
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        step_pid = int(text)
        first.kill()  # the node agent dies; its step goes on
        await first.wait()
        os.kill(step_pid, 0)
        second = PipelineAgent(base, TOKEN, "local", root)
        await second.start()
        try:
            run = await wait_for(client, "PipelineRun", "orphan", finished)
            cond = run["status"]["conditions"][0]
            assert (cond["reason"], cond["message"]) == (
                "Failed",
                "the node agent restarted while it ran",
            )
            deadline = time.monotonic() + DEADLINE_S
            while True:
                try:
                    os.kill(step_pid, 0)
                except ProcessLookupError:
                    break
                assert time.monotonic() < deadline, "the step left behind still runs"
                await asyncio.sleep(0.02)
        finally:
            await second.stop()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
        await client.close()


async def test_a_run_through_the_api_reads_its_secret_workspace_and_no_other_secret_goes_out(
    api: tuple[test_utils.TestClient[Any, Any], str],
) -> None:
    client, _ = api
    secrets = """
apiVersion: v1
kind: Secret
metadata: {name: deploy-key}
stringData: {key: sekret}
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated}
stringData: {key: private}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: with-secret}
spec:
  workspaces: [{name: creds, secret: {secretName: deploy-key}}]
  taskSpec:
    workspaces: [{name: creds}]
    results: [{name: key}]
    steps:
    - name: read
      image: alpine
      script: printf '%s' "$(cat $(workspaces.creds.path)/key)" > $(results.key.path)
"""
    await apply(client, secrets)
    run = await wait_for(client, "TaskRun", "with-secret", finished)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", run["status"]
    assert run["status"]["results"] == [{"name": "key", "type": "string", "value": "sekret"}]
    resp = await client.get("/api/v1/pipelines/config", headers=AUTH)
    body = await resp.text()
    assert resp.status == 200
    assert "deploy-key" in body and "private" not in body
