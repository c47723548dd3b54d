"""One instance under supervision: spawn its agent, follow its events, restart it.

The agent's events (`agent.events`) drive the control plane: `ready` registers the
instance (its endpoints enter EDS), `not-ready`, `exited` and `failed` deregister it.
When the agent ends, `policy.Restarts` decides: restart after a backoff, or stay
`completed` / `exited`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

from amimesh.agent import config as agent_config
from amimesh.agent import events
from amimesh.agent.process import kill_group
from amimesh.model.snapshot import Instance
from amimesh.runtime.plan import InstanceSpec
from amimesh.runtime.policy import Backoff, Restarts

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "not-ready", "exited", "backoff", "completed"]
AGENT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "amimesh.cli.main", "agent")
# The exit code an instance counts as when its agent never told why it ended.
FAILED = 1
# How long the agent's last events may take to arrive once it has exited.
READ_DRAIN_S = 1.0
EXIT_POLL_S = 0.2


class Registry(Protocol):
    """Where ready instances go (the control plane's store)."""

    def register_instance(self, instance: Instance) -> None: ...

    def deregister_instance(self, instance_id: str) -> None: ...


class InstanceRunner:
    def __init__(
        self,
        spec: InstanceSpec,
        registry: Registry,
        *,
        on_change: Callable[[InstanceRunner], None] = lambda _: None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        agent_command: Sequence[str] = AGENT_COMMAND,
    ) -> None:
        self.spec = spec
        self._registry = registry
        self._on_change = on_change
        self._clock = clock
        self._command = tuple(agent_command)
        self.restarts = Restarts(spec.restart_policy, backoff)
        self.state: State = "starting"
        self.ready = False
        self.since = time.time()
        self.pid: int | None = None  # the app's
        self.envoy_pid: int | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._code: int | None = None  # of the current run, once the agent tells it
        self._clean = False  # the current run's agent said `stopped`
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- control -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"instance-{self.spec.id}")

    @property
    def stopping(self) -> bool:
        """Stopped (or being stopped) by the supervisor, not by itself."""
        return self._stopping.is_set()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Stop gracefully (the agent drains: not-ready first); SIGKILL after `timeout_s`."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.warning("%s did not stop in %gs: killing it", self.spec.id, timeout_s)
            self.kill()
            await self._task

    def kill(self) -> None:
        """SIGKILL the agent, its Envoy and its app, now."""
        self._stopping.set()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        self._kill_leftovers()

    def status(self) -> dict[str, Any]:
        """This instance as `ami status` shows it."""
        return {
            "workload": self.spec.workload,
            "namespace": self.spec.namespace,
            "instance": self.spec.name,
            "id": self.spec.id,
            "kind": self.spec.agent.proxy.kind,
            "pid": self.pid if self.spec.agent.app is not None else self.envoy_pid,
            "state": self.state,
            "ready": self.ready,
            "restarts": self.restarts.count,
            "since": self.since,
            "exit_code": self.exit_code,
            "reason": self.reason,
        }

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._supervise()
        except Exception:
            # Nothing may escape to `stop()`: the instance just ends, and says why.
            log.exception("supervising %s failed", self.spec.id)
            self.reason = "supervisor error (see logs/supervisor.log)"
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
            try:
                await asyncio.wait_for(self._stopping.wait(), decision.delay_s)
            except TimeoutError:
                pass
        self._set(final)

    async def _run_agent(self) -> int:
        """Run the agent once; the app's exit code (or why the instance failed)."""
        self.spec.agent_log.parent.mkdir(parents=True, exist_ok=True)
        err = os.open(self.spec.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # stdin stays open: its end tells the agent that its supervisor is gone.
            self._proc = proc = await asyncio.create_subprocess_exec(
                *self._command,
                "--config",
                str(self.spec.config_path),
                "--parent-stdin",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        except OSError as e:  # out of processes or files: a failure like any other
            self.reason = f"cannot start the agent: {e}"
            log.error("%s: %s", self.spec.id, self.reason)
            return FAILED
        finally:
            os.close(err)
        if self._stopping.is_set():  # stop() came while it was being spawned
            proc.send_signal(signal.SIGTERM)
        self.pid = self.envoy_pid = None
        self._code, self._clean = None, False
        assert proc.stdout is not None and proc.stdin is not None
        reader = asyncio.create_task(self._read(proc.stdout), name=f"events-{self.spec.id}")
        try:
            # Usually the events end when the agent does. A process it left behind
            # (it crashed) may hold the pipe open: then its exit is noticed by polling,
            # and what it left is killed, which ends the events too.
            while not reader.done() and proc.returncode is None:
                await asyncio.wait([reader], timeout=EXIT_POLL_S)
            if not reader.done():
                done, _ = await asyncio.wait([reader], timeout=READ_DRAIN_S)
                if not done:
                    self._kill_leftovers()
                    await asyncio.wait([reader], timeout=READ_DRAIN_S)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            proc.stdin.close()
            if not self._clean:
                self._kill_leftovers()
            rc = await proc.wait()
            self._unregister()
        code = self._code
        if code is None:  # it never said: stopped while starting, or it crashed
            code = 0 if self._clean else (rc or FAILED)
        self.exit_code = code
        return code

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            event = events.parse(line)
            if event is not None:
                self._clean = self._clean or event.event == "stopped"
                self._code = self._follow(event, self._code)

    def _follow(self, event: events.AgentEvent, code: int | None) -> int | None:
        """Apply one agent event; returns the instance's exit code if now known."""
        match event.event:
            case "envoy-ready":
                self.envoy_pid = event.pid
            case "started":
                self.pid = event.pid
                self.reason = ""
            case "ready":
                self._register()
            case "not-ready":
                self._unregister()
                # An exit or a stop follows: only a failing probe is a state of its own.
                if (
                    event.reason not in (events.EXITED, events.STOPPING)
                    and not self._stopping.is_set()
                ):
                    self._set("not-ready")
            case "exited":
                self._unregister()
                return event.code if event.code is not None else FAILED
            case "failed":
                self._unregister()
                self.reason = event.reason
                log.warning("%s failed: %s", self.spec.id, event.reason)
                return FAILED
            case "envoy-exited":
                self.reason = f"envoy exited ({event.code})"
        return code

    def _register(self) -> None:
        if self.spec.registration is not None:
            self._registry.register_instance(replace(self.spec.registration, ready=True))
        self.ready = True
        self._set("ready")

    def _unregister(self) -> None:
        if self.spec.registration is not None:
            self._registry.deregister_instance(self.spec.id)
        self.ready = False

    def _kill_leftovers(self) -> None:
        # The agent died without stopping its children (each leads its own group).
        for pid in (self.pid, self.envoy_pid):
            if pid is not None:
                kill_group(pid)

    def _set(self, state: State) -> None:
        if state != self.state or state == "starting":
            self.state = state
            self.since = time.time()
        self._on_change(self)
