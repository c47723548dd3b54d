"""The local runtime: the control plane, every Workload replica and the ingress gateway.

    Supervisor.start():  state dir → config (DIR/mesh or DIR, not tasks/) → control plane
                         (xDS + HTTP API on free ports, the CA in `ca/`) → gateway → one
                         InstanceRunner per replica, each with its own CA token → mesh.json
    config changes:      Workloads added, removed, changed or rescaled are reconciled
                         (a changed replica is stopped, then started anew)
    Supervisor.stop():   every instance drained and stopped (endpoints removed first),
                         the gateway stopped, the control plane stopped, mesh.json removed

The supervisor owns every task it starts; `stop` ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.config.directory import DirectorySource
from amimesh.config.store import Store
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity.service import DEFAULT_TTL
from amimesh.identity.spiffe import TRUST_DOMAIN, SpiffeId
from amimesh.model.proxy import AccessLogFormat
from amimesh.resources import ConfigError
from amimesh.resources.workload import Workload
from amimesh.runtime import gateway, plan, state
from amimesh.runtime.instance import InstanceRunner
from amimesh.runtime.ports import PortAllocator

log = logging.getLogger(__name__)

MESH_SUBDIR = "mesh"
# Directories of a config tree that hold no mesh config (the shop example's exercises).
EXCLUDE_DIRS = ("tasks",)
STATUS_FILE = "status.json"
# The trace store, in the state dir.
TRACES_DB = "traces.db"


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
    watch: bool = True
    # Workload certificates: their lifetime, the trust domain, and a user-supplied CA
    # (Istio's cacerts layout) instead of the self-signed root kept in the state dir.
    cert_ttl_s: float = DEFAULT_TTL.total_seconds()
    trust_domain: str = TRUST_DOMAIN
    ca_certs_dir: Path | None = None
    # Every proxy's access log (logs/<id>.access.log): one JSON object or text line each.
    access_log_format: AccessLogFormat = "json"
    # Where the control plane forwards every trace export (`host:port`, OTLP/gRPC).
    trace_forward: str | None = None


class Supervisor:
    def __init__(
        self, config: UpConfig, *, on_change: Callable[[InstanceRunner], None] | None = None
    ) -> None:
        self.config = config
        self.config_dir = config.config_dir.resolve()
        self.root = config_root(self.config_dir)
        root = config.state_root.resolve() if config.state_root is not None else None
        self.state = state.for_config(self.config_dir, root)
        self.ports = PortAllocator()
        self.store = Store()
        self.source = DirectorySource(self.store, self.root, exclude_dirs=EXCLUDE_DIRS)
        self.config_errors: list[ConfigError] = []
        self.plan_errors: dict[str, str] = {}  # instance id → why it cannot run
        self.runners: dict[str, InstanceRunner] = {}
        self.gateway: InstanceRunner | None = None
        self.gateway_urls: tuple[str, ...] = ()
        self._on_change = on_change
        self._cp: ControlPlane | None = None
        self._workload_of: dict[str, Workload] = {}
        self._ports_of: dict[str, set[int]] = {}
        self._tokens: dict[str, str] = {}  # instance id → its CA token
        self._retiring: dict[str, asyncio.Task[None]] = {}
        self._workloads_seen: list[Workload] | None = None
        self._stop_watch = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None
        self._closing = False
        self._claimed = False

    @property
    def cp(self) -> ControlPlane:
        assert self._cp is not None, "not started"
        return self._cp

    # --- start -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; returns once every process is spawned (not yet ready)."""
        if not self._claimed:
            self.claim()
        self.config_errors = self.source.sync()
        token = secrets.token_urlsafe(32)
        cfg = self.config
        cp = ControlPlane(
            ControlPlaneConfig(
                xds_port=0,
                api_port=0,
                api_token=token,
                trust_domain=cfg.trust_domain,
                ca_dir=self.state.ca,
                ca_certs_dir=cfg.ca_certs_dir.resolve() if cfg.ca_certs_dir else None,
                cert_ttl_s=cfg.cert_ttl_s,
                trace_db=self.state.path / TRACES_DB,
                trace_forward=cfg.trace_forward,
                zipkin_port=0,
            ),
            store=self.store,
        )
        await cp.start()
        self._cp = cp
        cp.runtime_status = self.status
        self.state.write_token(token)
        self._start_gateway()
        self.state.write_info(
            state.MeshInfo(
                name=self.state.path.name,
                config_dir=str(self.config_dir),
                pid=os.getpid(),
                api=f"http://127.0.0.1:{cp.api_port}",
                xds_port=cp.xds_port,
                gateway_urls=self.gateway_urls,
            )
        )
        self.state.mark_current()
        loop = asyncio.get_running_loop()

        def on_store_change() -> None:  # the store may call from another thread
            loop.call_soon_threadsafe(self._on_store_change)

        self._unsubscribe = self.store.subscribe(on_store_change)
        self._reconcile()
        if self.config.watch:
            self._watch_task = asyncio.create_task(
                self.source.watch(self._stop_watch), name="config-watch"
            )

    def claim(self) -> None:
        """Take the mesh's state dir (raises MeshRunning if its mesh runs already): the
        last run's logs move to `logs.previous/`, its instance files are removed."""
        st = self.state
        if st.info_file.exists():
            with contextlib.suppress(ValueError, TypeError, OSError):
                info = st.read_info()
                if info.pid != os.getpid() and state.pid_alive(info.pid):
                    raise MeshRunning(
                        f"the mesh of {self.config_dir} already runs (pid {info.pid}); "
                        f"stop it with `ami down {st.path.name}`"
                    )
        st.create()
        self._claimed = True
        # The last run's logs stay readable for one more run.
        previous = st.path / "logs.previous"
        if any(st.logs.iterdir()):
            shutil.rmtree(previous, ignore_errors=True)
            st.logs.rename(previous)
            st.logs.mkdir()
        shutil.rmtree(st.instances, ignore_errors=True)
        st.instances.mkdir()

    def _start_gateway(self) -> None:
        schemes = gateway.server_ports(self.cp.snapshot)
        if not schemes:
            return
        ports = gateway.host_ports(schemes, self.ports, first=self.config.gateway_port)
        iid = plan.instance_id(f"{plan.GATEWAY_WORKLOAD}-0", plan.GATEWAY_NAMESPACE)
        spec = plan.gateway_instance(
            ports,
            allocate=self.ports.allocate,
            state=self.state,
            xds_port=self.cp.xds_port,
            ca=self._ca_access(iid),
            credentials=gateway.credentials(self.cp.snapshot, self.root),
            access_log_format=self.config.access_log_format,
            telemetry_port=self.cp.traces.zipkin_port,
        )
        self._grant(spec)
        self.gateway_urls = gateway.urls(ports, schemes)
        self.gateway = InstanceRunner(spec, self.store, on_change=self._changed)
        self.gateway.start()

    # --- reconcile workloads -----------------------------------------------------------

    def _on_store_change(self) -> None:
        workloads = self._workloads()
        if workloads != self._workloads_seen:
            self._reconcile()

    def _workloads(self) -> list[Workload]:
        found = [r for r in self.store.resources() if isinstance(r, Workload)]
        return sorted(found, key=lambda w: w.key)

    def _reconcile(self) -> None:
        """Make the running instances match the Workloads in the store."""
        if self._closing:
            return
        workloads = self._workloads()
        self._workloads_seen = workloads
        desired: dict[str, tuple[Workload, int]] = {}
        for w in workloads:
            for i in range(w.spec.replicas):
                desired[plan.instance_id(f"{w.name}-{i}", w.namespace)] = (w, i)
        for iid in list(self.runners):
            wanted = desired.get(iid)
            if wanted is None or _template(wanted[0]) != _template(self._workload_of[iid]):
                self._retire(iid)
            else:
                self._workload_of[iid] = wanted[0]
        for iid, (w, i) in desired.items():
            if iid not in self.runners and iid not in self._retiring:
                self._launch(iid, w, i)

    def _launch(self, iid: str, workload: Workload, index: int) -> None:
        taken: set[int] = set()

        def allocate() -> int:
            port = self.ports.allocate()
            taken.add(port)
            return port

        try:
            spec = plan.workload_instance(
                workload,
                index,
                services=self.cp.snapshot.services.values(),
                allocate=allocate,
                state=self.state,
                xds_port=self.cp.xds_port,
                config_dir=self.config_dir,
                grace_s=self.config.grace_s,
                ca=self._ca_access(iid),
                access_log_format=self.config.access_log_format,
                telemetry_port=self.cp.traces.zipkin_port,
            )
        except plan.PlanError as e:
            self._revoke(iid)
            for port in taken:
                self.ports.release(port)
            self.plan_errors[iid] = f"{workload.ref}: {e}"
            log.error("%s", self.plan_errors[iid])
            return
        self.plan_errors.pop(iid, None)
        self._grant(spec)
        runner = InstanceRunner(spec, self.store, on_change=self._changed)
        self.runners[iid] = runner
        self._workload_of[iid] = workload
        self._ports_of[iid] = taken
        runner.start()

    def _retire(self, iid: str) -> None:
        runner = self.runners.pop(iid)
        self._workload_of.pop(iid)

        async def retire() -> None:
            try:
                await runner.stop()
            finally:
                self._revoke(iid)
                for port in self._ports_of.pop(iid, ()):
                    self.ports.release(port)
                self._retiring.pop(iid, None)
                self._write_status()
                self._reconcile()  # a changed workload's replica starts anew now

        self._retiring[iid] = asyncio.create_task(retire(), name=f"retire-{iid}")

    # --- identity ----------------------------------------------------------------------

    def _ca_access(self, iid: str) -> plan.CaAccess:
        """A new token for instance `iid` (granted once its spec says who it is)."""
        token = secrets.token_urlsafe(32)
        self._tokens[iid] = token
        return plan.CaAccess(
            url=f"http://127.0.0.1:{self.cp.api_port}",
            token=token,
            trust_domain=self.cp.identity.trust_domain,
        )

    def _grant(self, spec: plan.InstanceSpec) -> None:
        identity = spec.agent.identity
        assert identity is not None
        # Only the gateway may get certificates for server names (its credentials).
        self.cp.identity.grant(
            SpiffeId.parse(identity.spiffe_id),
            identity.token,
            serving=spec.agent.proxy.kind == "gateway",
        )

    def _revoke(self, iid: str) -> None:
        token = self._tokens.pop(iid, None)
        if token is not None and self._cp is not None:
            self._cp.identity.revoke(token)

    # --- status ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Every instance (the gateway last) as `ami status` shows it."""
        runners = sorted(self.runners.values(), key=lambda r: r.spec.id)
        if self.gateway is not None:
            runners.append(self.gateway)
        return [r.status() for r in runners]

    def _changed(self, runner: InstanceRunner) -> None:
        self._write_status()
        if self._on_change is not None:
            self._on_change(runner)

    def _write_status(self) -> None:
        path = self.state.path / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"time": time.time(), "instances": self.status()}))
            tmp.replace(path)

    # --- stop --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything gracefully; returns when no process of the mesh is left."""
        self._closing = True
        self._unsubscribe()
        self._stop_watch.set()
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        runners = list(self.runners.values())
        if self.gateway is not None:
            runners.append(self.gateway)
        await asyncio.gather(*(r.stop() for r in runners))
        await asyncio.gather(*self._retiring.values(), return_exceptions=True)
        for iid in list(self._tokens):
            self._revoke(iid)
        if self._cp is not None:
            await self._cp.stop()
        self._write_status()
        self._release_state_dir()

    def kill(self) -> None:
        """SIGKILL every process of the mesh now (a second Ctrl-C)."""
        for r in [*self.runners.values(), *([self.gateway] if self.gateway else [])]:
            r.kill()

    def _release_state_dir(self) -> None:
        if not self._claimed:
            return
        st = self.state
        st.token_file.unlink(missing_ok=True)
        with contextlib.suppress(ValueError, TypeError, OSError):
            if st.read_info().pid == os.getpid():
                st.info_file.unlink()
        current = st.path.parent / state.CURRENT
        with contextlib.suppress(OSError):
            if current.is_symlink() and current.resolve() == st.path.resolve():
                current.unlink()


def _template(w: Workload) -> dict[str, Any]:
    """What a replica is made from: all but `replicas`, whose change only adds or
    removes replicas (as a Deployment's does)."""
    return {"labels": w.metadata.labels, "spec": w.spec.model_dump(exclude={"replicas"})}
