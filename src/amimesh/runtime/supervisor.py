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
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from amimesh.agent.process import Child, kill_group, naming, start_time
from amimesh.controlplane import mesh_config as cp_mesh
from amimesh.identity.spiffe import TRUST_DOMAIN
from amimesh.runtime import nats, state
from amimesh.runtime.node_config import NODE_TOKEN, STATUS_FILE, NodeConfig, read_pids
from amimesh.runtime.ports import PortAllocator

AccessLogFormat = Literal["json", "text"]
# Workload certificates' lifetime (the control plane's default, `identity.service`).
DEFAULT_CERT_TTL_S = 24 * 3600.0

log = logging.getLogger(__name__)

MESH_SUBDIR = "mesh"
# Directories of a config tree that hold no mesh config (the shop example's exercises).
EXCLUDE_DIRS = ("tasks",)
AMI: tuple[str, ...] = (sys.executable, "-m", "amimesh.cli.main")
RESTART_MAX_S = 5.0
STOP_TIMEOUT_S = 60.0
NODE_START_TIMEOUT_S = 60.0
NODE_POLL_S = 0.02
NATS_POLL_S = 0.2  # how often `ami up` looks whether the control plane wants a server


def config_root(config_dir: Path) -> Path:
    """Where a mesh's config lives: `DIR/mesh/` if there is one, else DIR itself."""
    sub = config_dir / MESH_SUBDIR
    return sub if sub.is_dir() else config_dir


class MeshRunning(RuntimeError):
    """The mesh of this DIR already runs (in another `ami up`)."""


@dataclass(frozen=True)
class UpConfig:
    config_dir: Path
    state_root: Path | None = None  # default: $AMI_STATE_DIR or ~/.local/state/ami
    gateway_port: int | None = None
    grace_s: float = 0.5
    # Workload certificates: their lifetime, the trust domain, and a user-supplied CA
    # (Istio's cacerts layout) instead of the self-signed root kept in the state dir.
    cert_ttl_s: float = DEFAULT_CERT_TTL_S
    trust_domain: str = TRUST_DOMAIN
    ca_certs_dir: Path | None = None
    # Every proxy's access log (logs/<id>.access.log): one JSON object or text line each.
    access_log_format: AccessLogFormat = "json"
    # Where the control plane forwards every trace export (`host:port`, OTLP/gRPC).
    trace_forward: str | None = None
    # How often each Argo CD Application's repository is fetched.
    gitops_poll_s: float = 3.0
    log_level: str = "info"
    # Live reload (`ami up --reload`): the node agent restarts Workloads whose files
    # change, the control plane makes Knative Services a new revision.
    reload: bool = False


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

    def adopt(self, pid: int, started: int) -> bool:
        self.child = Child.adopt(pid, started)
        return self.child is not None

    async def spawn(self) -> None:
        self.child = await Child.spawn(self.argv, log=self.log_path)
        log.info("%s started (pid %d)", self.name, self.child.pid)
        for callback in self.on_start:
            callback()

    def watch(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"watch-{self.name}")

    async def _watch(self) -> None:
        delay = 0.1
        while not self._closing:
            if self.child is None:
                await self.spawn()
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
    def __init__(self, config: UpConfig) -> None:
        self.config = config
        self.config_dir = config.config_dir.resolve()
        self.root = config_root(self.config_dir)
        root = config.state_root.resolve() if config.state_root is not None else None
        self.state = state.for_config(self.config_dir, root)
        level = ["--log-level", config.log_level]
        path = str(self.state.path)
        self.controlplane = Managed(
            "controlplane",
            [*AMI, "controlplane", "--state", path, *level],
            self.state.logs / "controlplane.log",
        )
        self.node = Managed(
            "node", [*AMI, "node", "--state", path, *level], self.state.logs / "node.log"
        )
        # The JetStream server of the mesh's brokers: started when the config has a
        # Broker (its binary is looked up then).
        self.nats = Managed("nats", [], self.state.logs / "nats.log")
        self.api = ""
        self.adopted = False
        self._claimed = False
        self._info_ready = False
        self._nats_waiter: asyncio.Task[None] | None = None
        self._nats_wanted = False  # the config has a Broker (`nats.decide`, at start)

    @property
    def status_file(self) -> Path:
        return self.state.path / STATUS_FILE

    # --- start -------------------------------------------------------------------------

    def claim(self) -> None:
        """Take the mesh's state dir (raises MeshRunning if another `ami up` runs it).
        A control plane and node agent left running by an `ami up` that died are
        adopted; otherwise the last run's logs move to `logs.previous/`."""
        st = self.state
        info: dict[str, Any] = {}
        if st.info_file.exists():
            with contextlib.suppress(ValueError, OSError):
                info = json.loads(st.info_file.read_text())
        pid = int(info.get("pid", 0))
        if pid and pid != os.getpid() and state.pid_alive(pid):
            raise MeshRunning(
                f"the mesh of {self.config_dir} already runs (pid {pid}); "
                f"stop it with `ami down {st.path.name}`"
            )
        st.create()
        self._claimed = True
        for managed in (self.controlplane, self.node, self.nats):
            mpid, started = info.get(f"{managed.name}_pid", 0), info.get(f"{managed.name}_started")
            if mpid and started is not None and managed.adopt(int(mpid), int(started)):
                self.adopted = True
        if not self.adopted:
            # The last run's logs stay readable for one more run.
            previous = st.path / "logs.previous"
            if any(st.logs.iterdir()):
                shutil.rmtree(previous, ignore_errors=True)
                st.logs.rename(previous)
                st.logs.mkdir()
            # A new run starts from DIR alone: what the last run's control plane kept
            # for its own restarts (applied resources, reports, counters) goes.
            for f in (STATUS_FILE, "nodes.json", "applied.json", "metrics.json"):
                (st.path / f).unlink(missing_ok=True)

    async def start(self) -> None:
        """Start (or adopt) the control plane and the node agent, at once: the node
        agent waits for the control plane's API by itself."""
        if not self._claimed:
            self.claim()
        st = self.state
        cfg = self.config
        if not (self.adopted and st.token_file.exists()):
            st.write_token(secrets.token_urlsafe(32))
            cp_mesh.write_secret(st.path / NODE_TOKEN, secrets.token_urlsafe(32))
        cp = self._control_plane_config()
        cp = self._with_nats(cp)
        cp_mesh.write(st.path, cp)
        self.api = f"http://127.0.0.1:{cp.api_port}"
        NodeConfig(
            config_dir=str(self.config_dir),
            config_root=str(self.root),
            api=self.api,
            xds_port=cp.xds_port,
            zipkin_port=cp.zipkin_port,
            activator_port=cp.activator_port,
            trust_domain=cfg.trust_domain,
            gateway_port=cfg.gateway_port,
            grace_s=cfg.grace_s,
            access_log_format=cfg.access_log_format,
            reload=cfg.reload,
        ).write(st.path)
        if cp.nats_port:
            self.nats.argv = nats.argv(st.path)
            self.nats.on_start.append(self._write_info)
            if self.nats.child is not None or self._nats_wanted:
                # Before the broker can ask for it: the node agent starts the broker.
                if self.nats.child is None:
                    await self.nats.spawn()
                self.nats.watch()
            else:
                # No Broker yet: the server starts when the control plane first wants
                # one (a Broker or a channel applied later), with no restart.
                self._nats_waiter = asyncio.create_task(
                    self._start_nats_when_wanted(), name="nats-on-demand"
                )
        for managed in (self.controlplane, self.node):
            managed.on_start.append(self._write_info)
            if managed.child is None:
                await managed.spawn()
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

    @property
    def _port_owner(self) -> str:
        """Who this mesh's control ports are noted for on this machine (`ports`); the
        node agent notes its instances' ports as another owner, so that neither hands
        out a port the other picked and has not bound yet."""
        return f"{self.state.path.resolve()}#up"

    def _control_plane_config(self) -> cp_mesh.MeshControlPlane:
        """The ports of the last run when they can be had again (its Envoys may still
        run and reconnect), else new ones."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            old = cp_mesh.read(self.state.path)
            ports = PortAllocator(owner=self._port_owner)
            same = self.controlplane.child is not None or all(
                ports.claim(p)
                for p in (old.xds_port, old.api_port, old.zipkin_port, old.activator_port)
                if p
            )
            if same and old.activator_port:
                return cp_mesh.MeshControlPlane(
                    **{**old.__dict__, **self._settings()},
                )
        ports = PortAllocator(owner=self._port_owner)
        return cp_mesh.MeshControlPlane(
            xds_port=ports.allocate(),
            api_port=ports.allocate(),
            zipkin_port=ports.allocate(),
            activator_port=ports.allocate(),
            **self._settings(),
        )

    def _with_nats(self, cp: cp_mesh.MeshControlPlane) -> cp_mesh.MeshControlPlane:
        """`cp` with the JetStream server's port (the last run's when it can be had
        again) and its config written, whether or not the config has a Broker yet:
        one applied later is served without a restart. Without a config-nats
        cluster, that is: then the mesh runs no server."""
        cluster, self._nats_wanted = nats.decide(self.root)
        if cluster:
            return cp_mesh.MeshControlPlane(**{**cp.__dict__, "nats_port": 0})
        port = cp.nats_port
        if self.nats.child is None:
            if not (port and PortAllocator(owner=self._port_owner).claim(port)):
                port = PortAllocator(owner=self._port_owner).allocate()
            nats.write_config(self.state.path, port)
            # The control plane says again whether it wants the server.
            nats.wanted_marker(self.state.path).unlink(missing_ok=True)
        return cp_mesh.MeshControlPlane(**{**cp.__dict__, "nats_port": port})

    def _settings(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "config_dir": str(self.root),
            "trust_domain": cfg.trust_domain,
            "cert_ttl_s": cfg.cert_ttl_s,
            "exclude_dirs": EXCLUDE_DIRS,
            "ca_certs_dir": str(cfg.ca_certs_dir.resolve()) if cfg.ca_certs_dir else None,
            "trace_forward": cfg.trace_forward,
            "gitops_poll_s": cfg.gitops_poll_s,
            "reload": cfg.reload,
            "work_dir": str(self.config_dir),
        }

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
        if not self._claimed:
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
