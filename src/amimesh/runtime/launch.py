"""`ami up`'s first steps, before its event loop and console are loaded: take the
mesh's state dir, decide its ports and tokens, write the control plane's and the node
agent's settings, and start them (and the mesh's JetStream server when the config has
a Broker), or find them still running from an `ami up` that died, to be adopted.

The control plane's start (its imports and the config's load, alone on one core) is
the first stretch of every `ami up`, so it begins as soon as the command line is read
(`cli.cmd_up`); `supervisor.Supervisor` then watches and restarts what was started
here. Nothing here imports asyncio.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from amimesh.agent.spawn import start, start_time
from amimesh.controlplane import mesh_config as cp_mesh
from amimesh.identity.spiffe import TRUST_DOMAIN
from amimesh.runtime import nats, state
from amimesh.runtime.node_config import NODE_TOKEN, STATUS_FILE, NodeConfig
from amimesh.runtime.ports import PortAllocator

AccessLogFormat = Literal["json", "text"]
# Workload certificates' lifetime (the control plane's default, `identity.service`).
DEFAULT_CERT_TTL_S = 24 * 3600.0
DEFAULT_GITOPS_POLL_S = 3.0

MESH_SUBDIR = "mesh"
# Directories of a config tree that hold no mesh config (the shop example's exercises).
EXCLUDE_DIRS = ("tasks",)
AMI: tuple[str, ...] = (sys.executable, "-m", "amimesh.cli.main")
# The processes `ami up` runs, in the order they start.
PROCESSES = ("nats", "controlplane", "node")


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
    gitops_poll_s: float = DEFAULT_GITOPS_POLL_S
    log_level: str = "info"
    # Live reload (`ami up --reload`): the node agent restarts Workloads whose files
    # change, the control plane makes Knative Services a new revision.
    reload: bool = False

    def problem(self) -> str | None:
        """What keeps this mesh from starting at all, if anything."""
        if not self.config_dir.is_dir():
            return f"not a directory: {self.config_dir}"
        if self.ca_certs_dir is not None and not self.ca_certs_dir.is_dir():
            return f"--ca-certs: not a directory: {self.ca_certs_dir}"
        return None


class Launch:
    """The mesh's processes as `ami up` starts them: `claim` the state dir, then
    `start`. What was started is in `started` (name -> process), what was found
    running from a run before in `running` (name -> (pid, start time))."""

    def __init__(self, config: UpConfig) -> None:
        self.config = config
        self.config_dir = config.config_dir.resolve()
        self.root = config_root(self.config_dir)
        root = config.state_root.resolve() if config.state_root is not None else None
        self.state = state.for_config(self.config_dir, root)
        level = ["--log-level", config.log_level]
        path = str(self.state.path)
        self.argv: dict[str, list[str]] = {
            "controlplane": [*AMI, "controlplane", "--state", path, *level],
            "node": [*AMI, "node", "--state", path, *level],
            "nats": [],  # the JetStream server's (its binary is looked up when wanted)
        }
        self.running: dict[str, tuple[int, int]] = {}
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.control_plane: cp_mesh.MeshControlPlane | None = None
        self.claimed = False
        self.launched = False

    @classmethod
    def early(cls, config: UpConfig) -> Launch | None:
        """Claimed and started at once; None when the mesh cannot start here (no such
        directory, or another `ami up` runs it): `ami up` then says why."""
        if config.problem() is not None:
            return None
        launch = cls(config)
        try:
            launch.start()
        except MeshRunning:
            return None
        except BaseException:
            launch.kill()  # nothing half started is left behind
            raise
        return launch

    def kill(self) -> None:
        """SIGKILL the process groups this launch started."""
        for proc in self.started.values():
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log(self, name: str) -> Path:
        return self.state.logs / f"{name}.log"

    @property
    def adopted(self) -> bool:
        return bool(self.running)

    def claim(self) -> None:
        """Take the mesh's state dir (raises MeshRunning if another `ami up` runs it).
        A control plane and node agent left running by an `ami up` that died are to be
        adopted; otherwise the last run's logs move to `logs.previous/`."""
        if self.claimed:
            return
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
        self.claimed = True
        for name in PROCESSES:
            mpid, started = int(info.get(f"{name}_pid", 0)), info.get(f"{name}_started")
            if mpid > 0 and started is not None and start_time(mpid) == int(started):
                self.running[name] = (mpid, int(started))
        if not self.running:
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

    def start(self) -> None:
        """Claim (if not yet), write the settings, and start whatever is not running:
        the JetStream server first when the config has a Broker (the node agent starts
        the broker, which wants it), then the control plane and the node agent at
        once (the node agent waits for the control plane's API by itself)."""
        self.claim()
        if self.launched:
            return
        st = self.state
        cfg = self.config
        if not (self.adopted and st.token_file.exists()):
            st.write_token(secrets.token_urlsafe(32))
            cp_mesh.write_secret(st.path / NODE_TOKEN, secrets.token_urlsafe(32))
        cp = self._with_nats(self._control_plane_config())
        cp_mesh.write(st.path, cp)
        self.control_plane = cp
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
            self.argv["nats"] = nats.argv(st.path)
            if "nats" not in self.running and nats.wanted(self.root):
                self._start("nats")
        for name in ("controlplane", "node"):
            if name not in self.running:
                self._start(name)
        self.launched = True

    @property
    def api(self) -> str:
        assert self.control_plane is not None, "not started"
        return f"http://127.0.0.1:{self.control_plane.api_port}"

    def _start(self, name: str) -> None:
        self.started[name] = start(self.argv[name], log=self.log(name))

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
            same = "controlplane" in self.running or all(
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
        if nats.names_a_cluster(self.root):
            return cp_mesh.MeshControlPlane(**{**cp.__dict__, "nats_port": 0})
        port = cp.nats_port
        if "nats" not in self.running:
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
