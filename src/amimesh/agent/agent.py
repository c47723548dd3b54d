"""One instance's data plane inside the node agent: its Envoy and its app, the thin
I/O shell of `machine`.

The shell performs the machine's actions as tasks it owns (one per name: `envoy`,
`app`, `probe`, `wait`, `stop-app`, `stop-envoy`, `identity`, and the gateway's
credential renewals), and each task feeds what happened back as an event. With an
identity in its config, the instance's own SDS socket serves that identity's
certificate (kept and renewed by the node's `Identities`) before Envoy starts.

Envoy and the app run in sessions of their own, writing to files: they outlive the
node agent, and a node agent started again adopts them (`Adopted`). Reports go to
`report` (one dict each, `agent.events`); nothing is restarted here: the node's
instance runner reads the reports and decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.agent import certs, credentials, events, listening, machine, probe, sds
from amimesh.agent import config as agent_config
from amimesh.agent.bootstrap import bootstrap, envoy_command, write_bootstrap
from amimesh.agent.env import app_command, app_env
from amimesh.agent.identities import Identities
from amimesh.agent.machine import Event
from amimesh.agent.process import Child
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

log = logging.getLogger(__name__)

ENVOY_READY_TIMEOUT_S = 30.0
ENVOY_STOP_TIMEOUT_S = 5.0
# Until the first success, probe this often (at most every periodSeconds), so that an
# instance takes traffic as soon as it answers.
STARTUP_PROBE_PERIOD_S = 0.05
OTHER_PORTS_EVERY_S = 1.0
# Envoy's admin /ready, polled this often while it starts.
ENVOY_POLL_S = 0.02


@dataclass(frozen=True)
class Adopted:
    """An instance's processes that run already (a node agent started again)."""

    envoy: Child
    app: Child | None
    # Ready when the last node agent left it: it stays in EDS while probed again.
    ready: bool = False


class Agent:
    def __init__(
        self,
        config: agent_config.AgentConfig,
        *,
        report: Callable[[dict[str, Any]], None],
        environ: Mapping[str, str],
        python_bin: str,
        identities: Identities | None = None,
        ca: certs.CaClient | None = None,
        adopted: Adopted | None = None,
    ) -> None:
        self.config = config
        app = config.app
        self.machine = machine.Machine(
            has_app=app is not None,
            has_probe=app is not None and app.probe is not None,
            grace_s=config.grace_s,
            failure_threshold=app.probe.failure_threshold if app and app.probe else 3,
            hold_app=config.hold_app,
        )
        self._report = report
        self._environ = environ
        self._python_bin = python_bin
        self._identities = identities
        self._ca = ca
        self._adopted = adopted
        self._unsubscribe: Callable[[], None] = lambda: None
        self._identity_ready: asyncio.Future[str | None] | None = None
        self.probe_problem = ""
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()
        self.envoy: Child | None = None
        self.app: Child | None = None
        self.sds: sds.SdsServer | None = None
        self.rotator: certs.Rotator | None = None
        self._sds_private: Path | None = None

    def post(self, event: Event) -> None:
        """Feed an event (from a signal handler, a task or a test)."""
        self._events.put_nowait(event)

    async def run(self) -> int:
        """Run until the machine exits; returns the agent's exit code."""
        try:
            actions = self._adopt() if self._adopted is not None else self.machine.start()
            while True:
                for action in actions:
                    code = self._do(action)
                    if code is not None:
                        return code
                actions = self.machine.handle(await self._events.get())
        finally:
            await self._close()

    def _adopt(self) -> list[machine.Action]:
        adopted = self._adopted
        assert adopted is not None
        self.envoy, self.app = adopted.envoy, adopted.app
        self._own("identity", self._serve_identity_again())
        self._own("envoy", self._follow_envoy(adopted.envoy))
        if adopted.app is not None:
            self._own("app", self._follow_app(adopted.app))
        return self.machine.adopt(was_ready=adopted.ready)

    async def _serve_identity_again(self) -> None:
        # The Envoy holds its certificate and reconnects to its SDS socket by itself.
        try:
            await self._start_identity()
        except (certs.CaRefused, certs.CaUnavailable, credentials.CredentialError, OSError) as e:
            log.error("%s: no certificate to serve again: %s", self.config.proxy.id, e)

    async def _follow_envoy(self, envoy: Child) -> None:
        self.post(machine.EnvoyExited(await envoy.wait()))

    async def _follow_app(self, app: Child) -> None:
        self.post(machine.AppExited(await self._watch(app)))

    async def _watch(self, app: Child) -> int:
        """Wait for `app` to exit (its code), probing its liveness meanwhile."""
        spec = self.config.app.liveness if self.config.app is not None else None
        watcher = asyncio.create_task(self._liveness(app, spec)) if spec is not None else None
        try:
            return await app.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _liveness(self, app: Child, spec: agent_config.ProbeSpec) -> None:
        """As the kubelet's liveness probe: from `initial_delay_s`, every `period_s`;
        after `failure_threshold` failures in a row the app is stopped (its exit is
        then an exit as any other: restarted by the restart policy)."""
        assert self.config.app is not None
        await asyncio.sleep(spec.initial_delay_s)
        failures = 0
        while True:
            problem = await probe.failure(spec)
            failures = failures + 1 if problem else 0
            if failures >= spec.failure_threshold:
                log.warning("%s: liveness probe failed: %s", self.config.proxy.id, problem)
                self._report({"event": "liveness", "problem": problem})
                await app.stop(self.config.app.stop_timeout_s)
                return
            await asyncio.sleep(spec.period_s)

    # --- actions -----------------------------------------------------------------------

    def _do(self, action: machine.Action) -> int | None:
        match action:
            case machine.Report(event=event):
                log.info("%s: %s", self.config.proxy.id, event)
                self._report(event)
            case machine.StartEnvoy():
                self._own("envoy", self._start_envoy())
            case machine.StartApp():
                self._own("app", self._start_app())
            case machine.StartProbing():
                self._own("probe", self._probe_loop())
            case machine.StopProbing():
                self._cancel("probe")
            case machine.Wait(seconds=seconds):
                self._own("wait", self._wait(seconds))
            case machine.StopApp():
                self._own("stop-app", self._stop_app())
            case machine.StopEnvoy(drain=drain):
                self._own("stop-envoy", self._stop_envoy(drain))
            case machine.Exit(code=code):
                return code
        return None

    def _own(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._cancel(name)
        self._tasks[name] = asyncio.create_task(self._guard(name, coro), name=f"agent-{name}")

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        # A task that breaks must not leave the machine waiting for its event forever.
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("agent task %s failed", name)
            self._recover(name, f"agent error: {e!r}")

    def _recover(self, name: str, reason: str) -> None:
        """Feed the event a broken task owed the machine, as best it can be told."""
        if name == "envoy":
            self.post(machine.EnvoyFailed(reason))
        elif name == "app":
            self.post(machine.AppFailed(reason))
        elif name == "wait":
            self.post(machine.GraceOver())
        elif name == "stop-app" and self.app is not None:
            self.app.kill()  # its exit reaches the machine through the `app` task
        elif name == "stop-envoy":
            if self.envoy is not None:
                self.envoy.kill()
            self.post(machine.EnvoyStopped())
        elif name.startswith("certs"):
            # The certificate in hand serves on; a renewal loop that broke is logged.
            pass
        else:
            self.post(machine.Terminate())

    def _cancel(self, name: str) -> asyncio.Task[None] | None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)
        return task

    async def _close(self) -> None:
        for name in list(self._tasks):
            self._cancel(name)
        # Children left by an error on the way are killed, never orphaned.
        for child in (self.app, self.envoy):
            if child is not None and child.returncode is None:
                child.kill()
                await child.wait()
        # Every task's end is awaited: none outlives the agent.
        await asyncio.gather(*self._ending, return_exceptions=True)
        await self.close_sds()

    async def close_sds(self) -> None:
        self._unsubscribe()
        self._unsubscribe = lambda: None
        if self.sds is not None:
            await self.sds.stop()
            self.sds = None
        sds.remove_private_dir(self._sds_private)
        self._sds_private = None

    # --- identity ----------------------------------------------------------------------

    def _sds_path(self) -> str:
        """Where this instance's SDS socket is (or will be, once Envoy's task serves
        it), "" without an identity: known without waiting for the server, so that the
        app starts at once."""
        spec = self.config.identity
        if spec is None or self._identities is None:
            return ""
        if self.sds is not None:
            return str(self.sds.path)
        try:
            return str(sds.socket_path(Path(spec.sds_socket))[0])
        except OSError as e:
            log.warning("%s: no SDS socket for the app: %s", self.config.proxy.id, e)
            return ""

    async def _serve_sds(self) -> str | None:
        """This instance's SDS socket, served (still empty); its path, None without an
        identity. Raises OSError."""
        spec = self.config.identity
        if spec is None or self._identities is None:
            return None
        if self.sds is None:
            path, self._sds_private = sds.socket_path(Path(spec.sds_socket))
            creds = self.config.credentials
            expected = [c.name for c in creds]
            expected += [c.name + credentials.CA_SECRET_SUFFIX for c in creds if c.ca_secret]
            server = sds.SdsServer(path, name=f"sds {self.config.proxy.id}", expected=expected)
            await server.start()
            self.sds = server
        return str(self.sds.path)

    async def _fill_sds(self) -> None:
        """Serve the identity's certificate (and a gateway's credentials) on the SDS
        socket; Envoy, started meanwhile, waits for them. Raises certs.CaRefused,
        CaUnavailable, credentials.CredentialError."""
        spec = self.config.identity
        if spec is None or self._identities is None or self.sds is None:
            return
        secrets, issued, self._unsubscribe = await self._identities.acquire(
            spec.spiffe_id, self._on_cert
        )
        self._on_cert(secrets, issued)
        if self.config.credentials:
            # A gateway's credentials too: its listeners would not open without them.
            assert self._ca is not None
            gateway = credentials.Credentials(
                self.config.credentials, self.sds, self._ca, SpiffeId.parse(spec.spiffe_id)
            )
            loops = await gateway.start(issued.trust_bundle, timeout_s=ENVOY_READY_TIMEOUT_S)
            for i, loop in enumerate(loops):
                self._own(f"certs-{i}", loop)

    async def _start_identity(self) -> None:
        await self._serve_sds()
        await self._fill_sds()

    def _on_cert(self, secrets: sds.Secrets, issued: Issued) -> None:
        if self.sds is None or self.config.identity is None:
            return
        self.sds.update(secrets)
        spec = self.config.identity
        try:
            certs.write_public(issued, spec.cert_file, spec.bundle_file)
        except OSError as e:
            log.warning("cannot write %s: %s", spec.cert_file, e)

    # --- Envoy -------------------------------------------------------------------------

    async def _start_envoy(self) -> None:
        cfg = self.config
        path = Path(cfg.envoy.bootstrap)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            sds_socket = await self._serve_sds()
        except OSError as e:
            self.post(machine.EnvoyFailed(f"no certificate for {cfg.proxy.id}: {e}"))
            return
        write_bootstrap(
            path,
            bootstrap(
                cfg.proxy,
                xds_host=cfg.xds.host,
                xds_port=cfg.xds.port,
                admin_port=cfg.proxy.admin_port,
                delta=cfg.xds.delta,
                locality=cfg.proxy.locality,
                sds_socket=sds_socket,
                telemetry_http_port=cfg.xds.telemetry_port,
            ),
        )
        argv = envoy_command(
            path,
            log_level=cfg.envoy.log_level,
            drain_time_s=max(1, math.ceil(cfg.envoy.drain_s)),
            concurrency=cfg.envoy.concurrency or None,  # 0: Envoy's default, every core
        )
        try:
            env = {**os.environ, **cfg.envoy.env} if cfg.envoy.env else None
            self.envoy = await Child.spawn(
                argv, log=Path(cfg.envoy.log), cwd=cfg.envoy.cwd, env=env
            )
        except OSError as e:
            self.post(machine.EnvoyFailed(f"cannot run envoy: {e}"))
            return
        self._report(events.envoy_started(self.envoy.pid))
        # The certificate comes while Envoy starts: its listeners wait for it.
        try:
            await self._fill_sds()
        except (certs.CaRefused, certs.CaUnavailable, credentials.CredentialError) as e:
            self.post(machine.EnvoyFailed(f"no certificate for {cfg.proxy.id}: {e}"))
            return
        reason = await self._envoy_live(self.envoy)
        if reason:
            self.post(machine.EnvoyFailed(reason))
            return
        self.post(machine.EnvoyReady(self.envoy.pid))
        self.post(machine.EnvoyExited(await self.envoy.wait()))

    async def _envoy_live(self, envoy: Child) -> str:
        """ "" once the admin `/ready` says LIVE, else why not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ENVOY_READY_TIMEOUT_S
        while loop.time() < deadline:
            if envoy.returncode is not None:
                return f"envoy exited ({envoy.returncode}):\n{self._envoy_log_tail()}"
            with contextlib.suppress(OSError, TimeoutError):
                status, body = await probe.request(self.config.proxy.admin_port, "/ready")
                if status == 200 and body.strip() == "LIVE":
                    return ""
            await asyncio.sleep(ENVOY_POLL_S)
        return f"envoy not ready after {ENVOY_READY_TIMEOUT_S:g}s:\n{self._envoy_log_tail()}"

    def _envoy_log_tail(self, lines: int = 10) -> str:
        try:
            text = Path(self.config.envoy.log).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def _stop_envoy(self, drain: bool) -> None:
        start = self._cancel("envoy")
        if start is not None:
            await asyncio.gather(start, return_exceptions=True)
        envoy = self.envoy
        if envoy is not None and envoy.returncode is None:
            if drain:
                with contextlib.suppress(OSError, TimeoutError):
                    await probe.request(
                        self.config.proxy.admin_port,
                        "/drain_listeners?graceful",
                        method="POST",
                    )
                await asyncio.sleep(self.config.envoy.drain_s)
            await envoy.stop(ENVOY_STOP_TIMEOUT_S)
        self.post(machine.EnvoyStopped())

    # --- app ---------------------------------------------------------------------------

    async def _start_app(self) -> None:
        app = self.config.app
        assert app is not None
        sds_socket = self._sds_path()  # the app may speak mTLS as its identity itself
        env = app_env(self.config, self._environ, self._python_bin, sds_socket)
        command = app_command(self.config, sds_socket)
        try:
            self.app = await Child.spawn(command, log=Path(app.log), cwd=app.cwd, env=env)
        except OSError as e:
            self.post(machine.AppFailed(f"cannot run {command[0]!r} in {app.cwd}: {e}"))
            return
        self.post(machine.AppStarted(self.app.pid))
        self.post(machine.AppExited(await self._watch(self.app)))

    async def _stop_app(self) -> None:
        assert self.config.app is not None
        if self.app is not None:
            await self.app.stop(self.config.app.stop_timeout_s)

    async def _probe_loop(self) -> None:
        assert self.config.app is not None and self.config.app.probe is not None
        spec = self.config.app.probe
        await asyncio.sleep(spec.initial_delay_s)
        passed = False
        loop = asyncio.get_running_loop()
        # Which ports the app took instead is read from /proc: at most once a second,
        # not on every refused probe of a starting app.
        other_ports, looked_at = "", loop.time()
        while True:
            problem = await probe.failure(spec)
            if problem and self.app is not None and "refused" in problem:
                if loop.time() - looked_at >= OTHER_PORTS_EVERY_S:
                    other_ports, looked_at = self._other_ports(spec.port), loop.time()
                problem += other_ports
            if problem != self.probe_problem:
                self.probe_problem = problem
                self._report({"event": "probe", "problem": problem})
            passed = passed or not problem
            self.post(machine.Probe(not problem))
            await asyncio.sleep(
                spec.period_s if passed else min(STARTUP_PROBE_PERIOD_S, spec.period_s)
            )

    def _other_ports(self, port: int) -> str:
        """What the app listens on instead of `port`, said plainly."""
        assert self.app is not None
        ports = sorted(listening.listening_ports(self.app.pid) - {port})
        if not ports:
            return ""
        names = ", ".join(str(p) for p in ports)
        return f": the app listens on {names} instead (it should listen on $PORT={port})"

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.post(machine.GraceOver())
