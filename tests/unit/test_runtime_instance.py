"""InstanceRunner against a fake agent (in-process, speaking the agent's events)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amimesh.agent import events
from amimesh.agent.config import AgentConfig, AppSpec, EnvoySpec, XdsSpec
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance
from amimesh.runtime.instance import InstanceRunner
from amimesh.runtime.plan import InstanceSpec
from amimesh.runtime.policy import Backoff, RestartPolicy


class FakeAgent:
    """Speaks the agent's events as a real one would, in mode `mode`: `crash-once`
    (its first run's app exits 3), `job` (the app exits 0), `serve` (runs until told to
    stop). Run numbers count across the runner's restarts."""

    runs = 0

    def __init__(self, mode: str, report: Callable[[dict[str, Any]], None]) -> None:
        self.mode = mode
        self.report = report
        self.envoy = self.app = None
        self.stop = asyncio.Event()
        self.run_no = FakeAgent.runs
        FakeAgent.runs += 1

    def post(self, event: object) -> None:
        self.stop.set()

    async def run(self) -> int:
        await asyncio.sleep(0)
        self.report(events.envoy_ready(100 + self.run_no))
        self.report(events.started(200 + self.run_no))
        self.report(events.ready())
        if self.mode == "job" or (self.mode == "crash-once" and self.run_no == 0):
            code = 0 if self.mode == "job" else 3
            self.report(events.not_ready(events.EXITED))
            self.report(events.exited(code))
            return code
        await self.stop.wait()
        self.report(events.not_ready(events.STOPPING))
        self.report(events.exited(-15))
        return 0


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
        registration=Instance(id="api-0.default", workload="api", ports={8080: 1234}),
    )


class Watched:
    """A runner and an event set on each of its state changes."""

    def __init__(self, tmp_path: Path, mode: str, policy: RestartPolicy, reg: Registry) -> None:
        FakeAgent.runs = 0
        self.changed = asyncio.Event()
        self.runner = InstanceRunner(
            spec(tmp_path, policy),
            reg,
            lambda config, report, adopted: FakeAgent(mode, report),  # type: ignore[return-value]
            on_change=lambda _: self.changed.set(),
            backoff=Backoff(initial_s=0.05),
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


def is_done(r: InstanceRunner) -> bool:
    return r.state in ("completed", "exited")
