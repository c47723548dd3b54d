"""InstanceRunner against a fake agent (a small script speaking the event protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from amimesh.agent.config import AgentConfig, AppSpec, EnvoySpec, XdsSpec
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance
from amimesh.runtime.instance import InstanceRunner
from amimesh.runtime.plan import InstanceSpec
from amimesh.runtime.policy import Backoff, RestartPolicy

FAKE_AGENT = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

mode = sys.argv[1]
config = Path(sys.argv[sys.argv.index("--config") + 1])
runs = config.with_name("runs")
run = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(run + 1))

def say(**event):
    print(json.dumps(event), flush=True)

def on_term(*_):
    say(event="not-ready", reason="stopping")
    say(event="exited", code=-15)
    say(event="stopped", code=0)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
say(event="envoy-ready", pid=os.getpid())
if mode == "orphan":
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    say(event="started", pid=child.pid)
    os._exit(9)  # dies without stopping its app
say(event="started", pid=os.getpid())
say(event="ready")
if mode == "job" or (mode == "crash-once" and run == 0):
    code = 0 if mode == "job" else 3
    say(event="not-ready", reason="exited")
    say(event="exited", code=code)
    say(event="stopped", code=code)
    sys.exit(code)
while True:
    time.sleep(0.05)
"""


class Registry:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.live: dict[str, Instance] = {}

    def register_instance(self, instance: Instance) -> None:
        self.calls.append(("register", instance.id))
        self.live[instance.id] = instance

    def deregister_instance(self, instance_id: str) -> None:
        self.calls.append(("deregister", instance_id))
        self.live.pop(instance_id, None)


def spec(tmp_path: Path, policy: RestartPolicy) -> InstanceSpec:
    proxy = Proxy(id="api-0.default", workload="api")
    return InstanceSpec(
        name="api-0",
        namespace="default",
        workload="api",
        restart_policy=policy,
        agent=AgentConfig(
            name="api-0",
            proxy=proxy,
            xds=XdsSpec(port=1),
            envoy=EnvoySpec(bootstrap="b", log="l"),
            app=AppSpec(command=("x",), cwd=".", log="l"),
        ),
        config_path=tmp_path / "inst" / "agent.json",
        agent_log=tmp_path / "logs" / "agent.log",
        registration=Instance(id="api-0.default", workload="api", ports={8080: 1234}),
    )


class Watched:
    """A runner and an event set on each of its state changes."""

    def __init__(self, tmp_path: Path, mode: str, policy: RestartPolicy, reg: Registry) -> None:
        script = tmp_path / "fake_agent.py"
        script.write_text(FAKE_AGENT)
        self.changed = asyncio.Event()
        self.runner = InstanceRunner(
            spec(tmp_path, policy),
            reg,
            on_change=lambda _: self.changed.set(),
            backoff=Backoff(initial_s=0.05),
            agent_command=(sys.executable, str(script), mode),
        )

    async def until(self, predicate: Callable[[InstanceRunner], bool]) -> InstanceRunner:
        async with asyncio.timeout(10):
            while not predicate(self.runner):
                self.changed.clear()
                await self.changed.wait()
        return self.runner


def runner(tmp_path: Path, mode: str, policy: RestartPolicy, reg: Registry) -> Watched:
    w = Watched(tmp_path, mode, policy, reg)
    w.runner.start()
    return w


async def test_ready_registers_and_a_crash_is_restarted(tmp_path: Path) -> None:
    reg = Registry()
    w = runner(tmp_path, "crash-once", "Always", reg)
    r = w.runner
    try:
        await w.until(lambda r: r.restarts.count == 1 and r.state == "ready")
        assert reg.live["api-0.default"].ready
        assert reg.live["api-0.default"].ports == {8080: 1234}
        assert reg.calls[:2] == [("register", "api-0.default"), ("deregister", "api-0.default")]
        status = r.status()
        assert status["restarts"] == 1 and status["ready"] and status["exit_code"] == 3
        assert status["instance"] == "api-0" and status["state"] == "ready"
    finally:
        await r.stop()
    assert r.done and r.state == "exited"
    assert "api-0.default" not in reg.live
    assert (tmp_path / "inst" / "agent.json").exists()


@pytest.mark.parametrize(("policy", "final"), [("Never", "completed"), ("OnFailure", "completed")])
async def test_a_job_that_succeeds_completes(
    tmp_path: Path, policy: RestartPolicy, final: str
) -> None:
    reg = Registry()
    r = await runner(tmp_path, "job", policy, reg).until(is_done)
    assert r.state == final and r.restarts.count == 0 and r.exit_code == 0
    assert reg.live == {}


async def test_a_failure_under_never_stays_exited(tmp_path: Path) -> None:
    r = await runner(tmp_path, "crash-once", "Never", Registry()).until(is_done)
    assert r.state == "exited" and r.exit_code == 3 and r.restarts.count == 0


async def test_an_agent_that_dies_leaves_no_app_behind(tmp_path: Path) -> None:
    r = await runner(tmp_path, "orphan", "Never", Registry()).until(is_done)
    assert r.exit_code == 9  # the agent's own status: it never told
    assert r.pid is not None
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(r.pid).wait(timeout=5)


def is_done(r: InstanceRunner) -> bool:
    return r.state in ("completed", "exited")
