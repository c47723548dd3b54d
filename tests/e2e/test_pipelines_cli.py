"""`ami pipeline|pipelinerun|task|taskrun` as a user runs them, against a control
plane's API whose runs a node agent's pipeline runner runs (real step processes)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amimesh.cli.main import main
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.runtime.pipelines import PipelineAgent
from amimesh.runtime.state import MeshInfo, StateDir

CONFIG = """
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: say}
spec:
  description: Says something.
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
  params:
  - {name: who, default: mesh}
  - {name: wait, default: "true"}
  - {name: names, type: array, default: [x]}
  workspaces: [{name: scratch}]
  tasks:
  - {name: greet, taskRef: {name: say}, params: [{name: text, value: "hello $(params.who)"}]}
  - name: then
    runAfter: [greet]
    workspaces: [{name: scratch}]
    taskSpec:
      workspaces: [{name: scratch}]
      steps:
      - name: wait
        image: busybox
        script: |
          $(params.wait)
          echo "then"
      - name: names
        image: busybox
        command: [echo]
        args: ["$(params.names[*])"]
"""


@dataclass
class Mesh:
    state: Path
    config: Path


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("tkn")
    token = secrets.token_urlsafe(24)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = ControlPlaneConfig(debounce_s=0.02, api_port=0, api_token=token)

    async def start() -> tuple[ControlPlane, PipelineAgent]:
        cp = ControlPlane(config)
        await cp.start()
        api = f"http://127.0.0.1:{cp.api_port}"
        agent = PipelineAgent(api, token, "local", workdir / "node" / "pipelines")
        await agent.start()
        return cp, agent

    cp, agent = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    state = StateDir(workdir / "state").create()
    state.write_token(token)
    state.write_info(
        MeshInfo(
            name="tkn",
            config_dir=str(workdir),
            pid=os.getpid(),
            api=f"http://127.0.0.1:{cp.api_port}",
            xds_port=cp.xds_port,
        )
    )
    (workdir / "pipeline.yaml").write_text(CONFIG)
    try:
        yield Mesh(state.path, workdir / "pipeline.yaml")
    finally:

        async def stop() -> None:
            await agent.stop()
            await cp.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def ami(capsys: pytest.CaptureFixture[str], mesh: Mesh, *args: str) -> tuple[int, str]:
    code = main([*args, "--mesh", str(mesh.state)])
    out = capsys.readouterr()
    return code, out.out + out.err


def started(output: str) -> str:
    m = re.search(r"(PipelineRun|TaskRun) started: (\S+)", output)
    assert m is not None, output
    return m.group(2)


def test_start_a_pipeline_and_follow_its_logs(
    capsys: pytest.CaptureFixture[str], mesh: Mesh
) -> None:
    code, out = ami(capsys, mesh, "apply", "-f", str(mesh.config))
    assert code == 0, out
    code, out = ami(capsys, mesh, "pipeline", "list")
    assert code == 0 and re.search(r"hello\s+\S+\s+---", out), out
    code, out = ami(
        capsys,
        mesh,
        "pipeline",
        "start",
        "hello",
        "-p",
        "who=cli",
        "-p",
        "names=a,b",
        "-w",
        "name=scratch,emptyDir=",
        "--showlog",
    )
    assert code == 0, out
    name = started(out)
    assert re.match(r"hello-run-[a-z0-9]{5}$", name)
    assert out.splitlines()[1:] == [
        "[greet : say] hello cli",
        "[then : wait] then",
        "[then : names] a b",
    ]
    code, out = ami(capsys, mesh, "pipelinerun", "list")
    assert code == 0 and re.search(rf"{name}\s+.*\s+Succeeded", out), out
    code, out = ami(capsys, mesh, "pipelinerun", "describe", name)
    assert code == 0, out
    assert "steps run as processes on this host" in out
    assert re.search(rf"{name}-greet\s+greet\s+.*Succeeded", out), out
    code, out = ami(capsys, mesh, "taskrun", "describe", f"{name}-then")
    assert code == 0 and re.search(r"names\s+busybox\s+Completed\s+0", out), out
    code, out = ami(capsys, mesh, "taskrun", "logs", f"{name}-greet")
    assert (code, out) == (0, "[greet : say] hello cli\n")
    code, out = ami(capsys, mesh, "pipeline", "describe", "hello")
    assert code == 0 and "greet" in out and name in out, out


def test_start_a_task(capsys: pytest.CaptureFixture[str], mesh: Mesh) -> None:
    ami(capsys, mesh, "apply", "-f", str(mesh.config))
    code, out = ami(capsys, mesh, "task", "list")
    assert code == 0 and re.search(r"say\s+Says something\.", out), out
    code, out = ami(capsys, mesh, "task", "start", "say", "-p", "text=once", "--showlog")
    assert code == 0, out
    name = started(out)
    assert out.splitlines()[1:] == ["[say : say] once"]
    code, out = ami(capsys, mesh, "taskrun", "list")
    assert re.search(rf"{name}\s+.*Succeeded", out), out


def test_cancel_and_a_failing_logs_exit(capsys: pytest.CaptureFixture[str], mesh: Mesh) -> None:
    ami(capsys, mesh, "apply", "-f", str(mesh.config))
    code, out = ami(
        capsys,
        mesh,
        "pipeline",
        "start",
        "hello",
        "-p",
        "wait=sleep 30",
        "-w",
        "name=scratch,emptyDir=",
    )
    assert code == 0, out
    name = started(out)
    assert f"ami pipelinerun logs {name} -f -n default" in out
    deadline = time.monotonic() + 30
    while True:  # until the sleeping step runs
        code, out = ami(capsys, mesh, "taskrun", "describe", f"{name}-then")
        if code == 0 and re.search(r"wait\s+busybox\s+Running", out):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    code, out = ami(capsys, mesh, "pipelinerun", "cancel", name)
    assert (code, out) == (0, f"PipelineRun cancelled: {name}\n")
    code, out = ami(capsys, mesh, "pipelinerun", "logs", name, "-f")
    assert code == 1, out
    code, out = ami(capsys, mesh, "pipelinerun", "describe", name)
    assert f'PipelineRun "{name}" was cancelled' in out, out
    code, out = ami(capsys, mesh, "pipelinerun", "cancel", "nope")
    assert code == 1 and 'pipelineruns.tekton.dev "nope" not found' in out, out
