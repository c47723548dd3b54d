"""One instance under the node agent: run its data plane (`agent.Agent`), follow its
events, restart it.

The agent's events drive the control plane: `ready` registers the instance (its
endpoints enter EDS), `not-ready`, `exited` and `failed` deregister it. When a run
ends, `policy.Restarts` decides: restart after a backoff, or stay `completed` /
`exited`. The pids and start times of a run's Envoy and app are recorded
(`instances/<id>/pids.json`), so that a node agent started again adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Protocol

from amimesh.agent import config as agent_config
from amimesh.agent import events, machine
from amimesh.agent.agent import Adopted, Agent
from amimesh.agent.process import Child, kill_group
from amimesh.model.snapshot import Instance
from amimesh.runtime.node_config import PIDS_FILE, read_pids
from amimesh.runtime.plan import InstanceSpec
from amimesh.runtime.policy import Backoff, Restarts

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "not-ready", "exited", "backoff", "completed"]
# The exit code an instance counts as when its run failed without one.
FAILED = 1
LOG_TAIL_LINES = 5


class Registry(Protocol):
    """Where ready instances go (the control plane, through the node's reports)."""

    def register_instance(self, instance: Instance) -> None: ...

    def deregister_instance(self, instance_id: str) -> None: ...


AgentFactory = Callable[
    [agent_config.AgentConfig, Callable[[dict[str, Any]], None], Adopted | None], Agent
]


def adoptable(spec: InstanceSpec) -> Adopted | None:
    """The recorded Envoy and app of `spec`, if they still run as recorded."""
    pids = read_pids(spec.config_path.parent)
    envoy = Child.adopt(int(pids.get("envoy_pid", 0)), int(pids.get("envoy_started", -1)))
    if envoy is None:
        return None
    was_ready = pids.get("ready") is True
    if spec.agent.app is None:
        return Adopted(envoy, None, was_ready)
    app = Child.adopt(int(pids.get("app_pid", 0)), int(pids.get("app_started", -1)))
    return Adopted(envoy, app, was_ready) if app is not None else None


class InstanceRunner:
    def __init__(
        self,
        spec: InstanceSpec,
        registry: Registry,
        agent_factory: AgentFactory,
        *,
        on_change: Callable[[InstanceRunner], None] = lambda _: None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        adopted: Adopted | None = None,
    ) -> None:
        self.spec = spec
        self._registry = registry
        self._factory = agent_factory
        self._on_change = on_change
        self._clock = clock
        self._adopted = adopted
        self.restarts = Restarts(spec.restart_policy, backoff)
        self.restarts.count = (
            int(read_pids(spec.config_path.parent).get("restarts", 0)) if adopted else 0
        )
        self.state: State = "starting"
        self.ready = False
        self.since = time.time()
        self.pid: int | None = adopted.app.pid if adopted and adopted.app else None
        self.envoy_pid: int | None = adopted.envoy.pid if adopted else None
        self.exit_code: int | None = None
        self.reason = ""
        self.probe = ""  # the last readiness probe's failure ("" once it passes)
        self._liveness = ""  # the liveness probe's failure that is stopping the app
        self._agent: Agent | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- control -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"instance-{self.spec.id}")

    @property
    def stopping(self) -> bool:
        """Stopped (or being stopped) by the node, not by itself."""
        return self._stopping.is_set()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Stop gracefully (not-ready first, then the app, then Envoy drains); SIGKILL
        what is left after `timeout_s`."""
        self._stopping.set()
        if self._agent is not None:
            self._agent.post(machine.Terminate())
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.warning("%s did not stop in %gs: killing it", self.spec.id, timeout_s)
            self.kill()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def kill(self) -> None:
        """SIGKILL its Envoy and its app, now."""
        self._stopping.set()
        for pid in (self.pid, self.envoy_pid):
            if pid is not None:
                kill_group(pid)

    def status(self) -> dict[str, Any]:
        """This instance as `ami status` shows it."""
        return {
            "workload": self.spec.workload,
            "namespace": self.spec.namespace,
            "instance": self.spec.name,
            "id": self.spec.id,
            "kind": self.spec.agent.proxy.kind,
            "pid": self.pid if self.spec.agent.app is not None else self.envoy_pid,
            "envoy_pid": self.envoy_pid,
            "state": self.state,
            "ready": self.ready,
            "restarts": self.restarts.count,
            "since": self.since,
            "exit_code": self.exit_code,
            "reason": self.reason or (self.probe if not self.ready else ""),
            "probe": self.probe,
        }

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._supervise()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing may escape to `stop()`: the instance just ends, and says why.
            log.exception("supervising %s failed", self.spec.id)
            self.reason = "node agent error (see logs/node.log)"
            self.kill()
            self._unregister()
            self._set("exited")

    async def _supervise(self) -> None:
        self.spec.config_path.parent.mkdir(parents=True, exist_ok=True)
        agent_config.write(self.spec.config_path, self.spec.agent)
        final: State = "exited"
        while not self._stopping.is_set():
            self._set("starting")
            self.restarts.started(self._clock())
            code = await self._run_agent()
            if self._stopping.is_set():
                break
            decision = self.restarts.exited(code, self._clock())
            if decision.outcome != "restart":
                final = decision.outcome
                break
            log.info("%s exited (%d): restart in %gs", self.spec.id, code, decision.delay_s)
            self._set("backoff")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), decision.delay_s)
        self._forget_pids()
        self._set(final)

    async def _run_agent(self) -> int:
        """Run the instance once; the app's exit code (or why the instance failed)."""
        adopted, self._adopted = self._adopted, None
        if adopted is None:
            self.pid = self.envoy_pid = None
        self._code: int | None = None
        agent = self._factory(self.spec.agent, self._follow, adopted)
        self._agent = agent
        if self._stopping.is_set():  # stop() came before the agent was made
            agent.post(machine.Terminate())
        try:
            rc = await agent.run()
        finally:
            self._agent = None
            self._unregister()
        code = self._code if self._code is not None else rc
        self.exit_code = code
        return code

    def _follow(self, event: dict[str, Any]) -> None:
        """Apply one agent event."""
        e = events.read(event)
        if e is None:
            return
        match e.event:
            case "envoy-started" | "envoy-ready":
                self.envoy_pid = e.pid
                self._record_pids()
            case "started":
                self.pid = e.pid
                self.reason = self.probe = ""
                self._record_pids()
            case "probe":
                self.probe = str(event.get("problem", ""))
                self._on_change(self)
            case "liveness":
                self._liveness = str(event.get("problem", ""))
            case "ready":
                self.reason = self.probe = ""
                self._register()
            case "not-ready":
                self._unregister()
                # An exit or a stop follows: only a failing probe is a state of its own.
                if e.reason not in (events.EXITED, events.STOPPING) and not self._stopping.is_set():
                    self._set("not-ready")
            case "exited":
                self._unregister()
                self._code = e.code if e.code is not None else FAILED
                if not self._stopping.is_set():
                    self.reason = self._exit_reason(self._code)
                    if self._liveness:
                        self.reason = f"liveness probe failed ({self._liveness}): stopped"
                self._liveness = ""
            case "failed":
                self._unregister()
                self.reason = e.reason
                self._code = FAILED
                log.warning("%s failed: %s", self.spec.id, e.reason)
            case "envoy-exited":
                self.reason = f"envoy exited ({e.code})"

    def _exit_reason(self, code: int) -> str:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        app = self.spec.agent.app
        tail = _tail(Path(app.log)) if app is not None else ""
        return f"{how}" + (f"; last output:\n{tail}" if tail else "")

    def _register(self) -> None:
        if self.spec.registration is not None:
            self._registry.register_instance(replace(self.spec.registration, ready=True))
        self.ready = True
        self._record_pids()
        self._set("ready")

    def _unregister(self) -> None:
        if self.spec.registration is not None:
            self._registry.deregister_instance(self.spec.id)
        if self.ready:
            self.ready = False
            self._record_pids()

    def _record_pids(self) -> None:
        agent = self._agent
        record: dict[str, Any] = {"restarts": self.restarts.count, "ready": self.ready}
        if agent is not None and agent.envoy is not None:
            record |= {"envoy_pid": agent.envoy.pid, "envoy_started": agent.envoy.started}
        if agent is not None and agent.app is not None:
            record |= {"app_pid": agent.app.pid, "app_started": agent.app.started}
        path = self.spec.config_path.parent / PIDS_FILE
        tmp = path.with_name(f".{PIDS_FILE}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)

    def _forget_pids(self) -> None:
        (self.spec.config_path.parent / PIDS_FILE).unlink(missing_ok=True)

    def _set(self, state: State) -> None:
        if state != self.state or state == "starting":
            self.state = state
            self.since = time.time()
        self._on_change(self)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
