"""`ami up`'s supervisor: the mesh's control plane and its node agent, as processes.

    ami up ─┬─ ami controlplane --state DIR   (config intake, xDS, CA, API, telemetry)
            └─ ami node --state DIR           (every instance's Envoy and app)

Each runs in a session of its own with its output in a file (`logs/controlplane.log`,
`logs/node.log`), so neither dies with `ami up` or with the other. `ami up` restarts
either one when it exits (with backoff); killed itself, it leaves both running, and
`ami up` run again adopts them (their pids and start times are in `mesh.json`).

Ports and tokens are decided once per mesh and kept in the state dir: a control plane
started again binds the same ports, so every Envoy reconnects to it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amimesh.agent.process import Child, kill_group, naming
from amimesh.agent.spawn import start_time
from amimesh.controlplane import mesh_config as cp_mesh
from amimesh.runtime import nats, state
from amimesh.runtime.launch import Launch, UpConfig
from amimesh.runtime.node_config import NODE_TOKEN, STATUS_FILE, read_pids

log = logging.getLogger(__name__)

RESTART_MAX_S = 5.0
STOP_TIMEOUT_S = 60.0
NODE_START_TIMEOUT_S = 60.0
NODE_POLL_S = 0.02
NATS_POLL_S = 0.2  # how often `ami up` looks whether the control plane wants a server


class Managed:
    """One process of the mesh (the control plane or the node agent): started or
    adopted, restarted with backoff whenever it exits, until `stop`."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.child: Child | None = None
        self.restarts = 0
        self.on_start: list[Callable[[], None]] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def take(self, launch: Launch) -> None:
        """What `launch` started or found running of this process, if anything."""
        if self.name in launch.running:
            pid, started = launch.running[self.name]
            self.child = Child.adopt(pid, started)
            if self.child is not None:
                log.info("%s adopted (pid %d)", self.name, pid)
        elif self.name in launch.started:
            self.child = Child.of(launch.started[self.name])
            log.info("%s started (pid %d)", self.name, self.child.pid)

    def spawn(self) -> None:
        self.child = Child.spawn(self.argv, log=self.log_path)
        log.info("%s started (pid %d)", self.name, self.child.pid)
        for callback in self.on_start:
            callback()

    def watch(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"watch-{self.name}")

    async def _watch(self) -> None:
        delay = 0.1
        while not self._closing:
            if self.child is None:
                self.spawn()
            assert self.child is not None
            code = await self.child.wait()
            if self._closing:
                return
            self.restarts += 1
            log.warning("%s exited (%d): restarting in %gs", self.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)
            self.child = None

    async def stop(self, timeout_s: float) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.child is not None:
            await self.child.stop(timeout_s)

    def kill(self) -> None:
        self._closing = True
        if self.child is not None:
            self.child.kill()

    def record(self) -> dict[str, int]:
        if self.child is None:
            return {}
        return {f"{self.name}_pid": self.child.pid, f"{self.name}_started": self.child.started}


class Supervisor:
    def __init__(self, config: UpConfig, launch: Launch | None = None) -> None:
        self.config = config
        self.launch = launch if launch is not None else Launch(config)
        self.config_dir = self.launch.config_dir
        self.root = self.launch.root
        self.state = self.launch.state
        self.controlplane = Managed(
            "controlplane", self.launch.argv["controlplane"], self.launch.log("controlplane")
        )
        self.node = Managed("node", self.launch.argv["node"], self.launch.log("node"))
        # The JetStream server of the mesh's brokers: started when the config has a
        # Broker (its binary is looked up then).
        self.nats = Managed("nats", [], self.launch.log("nats"))
        self.api = ""
        self._info_ready = False
        self._nats_waiter: asyncio.Task[None] | None = None

    @property
    def status_file(self) -> Path:
        return self.state.path / STATUS_FILE

    @property
    def adopted(self) -> bool:
        """Whether a control plane, node agent or JetStream server of a run before was
        found running (`claim`), to be adopted."""
        return self.launch.adopted

    # --- start -------------------------------------------------------------------------

    def claim(self) -> None:
        """Take the mesh's state dir (raises MeshRunning if another `ami up` runs it)."""
        self.launch.claim()

    async def start(self) -> None:
        """Start (unless `launch` did already) or adopt the JetStream server, the control
        plane and the node agent, and watch them: each is restarted when it exits."""
        self.launch.start()
        st = self.state
        cp = self.launch.control_plane
        assert cp is not None
        self.api = self.launch.api
        for managed in (self.nats, self.controlplane, self.node):
            managed.take(self.launch)
        if cp.nats_port:
            self.nats.argv = self.launch.argv["nats"]
            self.nats.on_start.append(self._write_info)
            if self.nats.child is not None:
                self.nats.watch()
            else:
                # No Broker yet: the server starts when the control plane first wants
                # one (a Broker or a channel applied later), with no restart.
                self._nats_waiter = asyncio.create_task(
                    self._start_nats_when_wanted(), name="nats-on-demand"
                )
        for managed in (self.controlplane, self.node):
            managed.on_start.append(self._write_info)
            managed.watch()
        # mesh.json says the mesh runs: written once the node agent has planned (the
        # gateway's URLs are known), rewritten when a process is restarted.
        for _ in range(int(NODE_START_TIMEOUT_S / NODE_POLL_S)):
            if self._node_started():
                break
            await asyncio.sleep(NODE_POLL_S)
        self._info_ready = True
        self._write_info()
        st.mark_current()

    async def _start_nats_when_wanted(self) -> None:
        marker = nats.wanted_marker(self.state.path)
        while not marker.exists():  # noqa: ASYNC110  # another process writes it
            await asyncio.sleep(NATS_POLL_S)
        log.info("the control plane wants a JetStream server: starting it")
        self.nats.watch()

    def _node_started(self) -> bool:
        child = self.node.child
        return child is not None and self.node_status().get("pid") == child.pid

    def _write_info(self) -> None:
        if not self._info_ready:
            return
        cp = cp_mesh.read(self.state.path)
        info = {
            "name": self.state.path.name,
            "config_dir": str(self.config_dir),
            "pid": os.getpid(),
            "api": self.api,
            "xds_port": cp.xds_port,
            "gateway_urls": list(self.gateway_urls()),
            **self.controlplane.record(),
            **self.node.record(),
            **self.nats.record(),
        }
        tmp = self.state.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.state.info_file)

    # --- status ------------------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        """What the node agent wrote last (`status.json`)."""
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def status(self) -> list[dict[str, Any]]:
        return list(self.node_status().get("instances", []))

    def gateway_urls(self) -> tuple[str, ...]:
        return tuple(self.node_status().get("gateway_urls", ()))

    # --- stop --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the node agent (it drains every instance), then the control plane;
        returns when no process of the mesh is left."""
        await self.node.stop(STOP_TIMEOUT_S)
        kill_instances(self.state)
        await self.controlplane.stop(10.0)
        if self._nats_waiter is not None:
            self._nats_waiter.cancel()
            await asyncio.gather(self._nats_waiter, return_exceptions=True)
        await self.nats.stop(10.0)
        self._release_state_dir()

    def kill(self) -> None:
        """SIGKILL every process of the mesh now (a second Ctrl-C)."""
        self.node.kill()
        kill_instances(self.state)
        self.controlplane.kill()
        if self._nats_waiter is not None:
            self._nats_waiter.cancel()
        self.nats.kill()

    def _release_state_dir(self) -> None:
        if not self.launch.claimed:
            return
        release(self.state)


def kill_instances(st: state.StateDir) -> None:
    """SIGKILL every instance process the node agent recorded, and any Envoy of this
    mesh it had no time to record (nothing is orphaned)."""
    if not st.instances.is_dir():
        return
    for home in st.instances.iterdir():
        pids = read_pids(home)
        for key in ("app", "envoy"):
            pid = int(pids.get(f"{key}_pid", 0))
            if pid > 0 and start_time(pid) == pids.get(f"{key}_started"):
                kill_group(pid, signal.SIGKILL)
    for pid in naming(st.instances):
        kill_group(pid, signal.SIGKILL)


def kill_mesh(st: state.StateDir) -> None:
    """SIGKILL the control plane, the node agent and every instance of the mesh whose
    state is `st` (what `mesh.json` and the instance records name), now."""
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(st.info_file.read_text())
        for who in ("node", "controlplane", "nats"):
            pid = int(info.get(f"{who}_pid", 0))
            if pid > 0 and start_time(pid) == info.get(f"{who}_started"):
                kill_group(pid, signal.SIGKILL)
    kill_instances(st)


def release(st: state.StateDir) -> None:
    """Forget the running mesh: tokens, mesh.json, `current` if it points here."""
    for name in (st.token_file, st.path / NODE_TOKEN, st.info_file):
        name.unlink(missing_ok=True)
    current = st.path.parent / state.CURRENT
    with contextlib.suppress(OSError):
        if current.is_symlink() and current.resolve() == st.path.resolve():
            current.unlink()
