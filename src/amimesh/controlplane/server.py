"""The control plane: config store → snapshot → translation → xDS, in one process.

The snapshot is rebuilt lazily: a store change only marks it stale and tells the xDS
server, whose debounce coalesces bursts; the first proxy translated afterwards
rebuilds the snapshot once for everybody.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amimesh import gcstart
from amimesh.config.directory import DirectorySource
from amimesh.config.store import Store
from amimesh.controlplane.applied import Applied
from amimesh.controlplane.gatewayapi import GatewayApiController
from amimesh.controlplane.httpproxy import HTTPProxyController
from amimesh.controlplane.intercepts import Intercepts
from amimesh.controlplane.nodes import Nodes
from amimesh.controlplane.serving import REVISIONS_FILE, ServingController
from amimesh.identity import store as ca_store
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.service import DEFAULT_TTL, IdentityService
from amimesh.identity.spiffe import TRUST_DOMAIN
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.telemetry.trace_store import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SPANS

if TYPE_CHECKING:
    from amimesh.controlplane.api import ApiServer
    from amimesh.controlplane.eventing import EventingController
    from amimesh.controlplane.gitops import GitOpsController
    from amimesh.controlplane.pipelines import PipelineStatus
    from amimesh.controlplane.triggers import TriggersController
    from amimesh.telemetry.metrics import MeshMetrics
    from amimesh.telemetry.metrics_file import MetricsFile
    from amimesh.telemetry.traces import TraceCollector, TraceSettings
    from amimesh.translate.built import ProxyConfig
    from amimesh.xds.server import XdsServer

# What serving xDS and telemetry needs (translation, gRPC, Envoy's protos, the metric and
# trace stores), in an order where each import is a modest step: `start` loads them
# one by one after the HTTP API answers, so that node agents get their config and
# certificates while the rest of the control plane is still loading.
PLANE_MODULES = (
    "google.protobuf.descriptor_pool",
    "envoy.config.core.v3.base_pb2",
    "envoy.config.accesslog.v3.accesslog_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "amimesh.translate.metrics_log",
    "amimesh.telemetry.metrics",
    "amimesh.telemetry.metrics_file",
    "prometheus_client",
    "amimesh.telemetry.metrics_receiver",
    "amimesh.controlplane.serving_metrics",
    "grpc",
    "amimesh.telemetry.trace_forward",
    "amimesh.telemetry.traces",
    "amimesh.translate.clusters",
    "amimesh.translate.listeners",
    "amimesh.translate.gateway_listeners",
    "amimesh.translate.generate",
    "amimesh.xds.server",
)

# What starts once xDS serves (Tekton's run status, Eventing, Triggers, GitOps, the
# config directory's watch): loaded on a thread too, while the node agents' first
# certificate requests and Envoys' first xDS streams are being answered.
REST_MODULES = (
    "amimesh.controlplane.pipelines",
    "amimesh.controlplane.eventing",
    "amimesh.controlplane.triggers",
    "amimesh.controlplane.gitops",
    "watchfiles",
    "anyio._backends._asyncio",
)

# With node agents, REST_MODULES' part starts once no instance of theirs is starting
# (their first reports), or after REST_AFTER_S.
REST_AFTER_S = 10.0
REST_POLL_S = 0.1

log = logging.getLogger(__name__)


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)


# What Argo CD Applications had synced (`controlplane.gitops.STATE_FILE`): GitOps's
# modules load before the API serves only when there is one.
GITOPS_STATE = "gitops.json"
# Tekton Triggers' API group: a config with one of its kinds has listeners to run.
TRIGGERS_GROUP = "triggers.tekton.dev"
# Knative Eventing's API groups: a config with one of their kinds has brokers to run.
EVENTING_GROUPS = frozenset(
    {"eventing.knative.dev", "sources.knative.dev", "messaging.knative.dev", "flows.knative.dev"}
)


@dataclass(frozen=True)
class ControlPlaneConfig:
    xds_host: str = "127.0.0.1"
    xds_port: int = 0
    config_dir: Path | None = None
    # Directories under config_dir whose files are not config (the shop's `tasks/`).
    exclude_dirs: tuple[str, ...] = ()
    debounce_s: float = 0.05
    domain: str = "cluster.local"
    watch: bool = True
    # The HTTP API (`ami apply/get/status`): None serves none, 0 picks a free port.
    api_port: int | None = None
    api_host: str = "127.0.0.1"
    # Bearer token every API request must carry; required when the API is served.
    api_token: str | None = None
    # The CA: a self-signed root kept in `ca_dir` (made on first start), or the
    # user's root or intermediate in `ca_certs_dir` (Istio's cacerts layout: ca-cert.pem,
    # ca-key.pem, root-cert.pem, cert-chain.pem). Neither: a root in memory only.
    trust_domain: str = TRUST_DOMAIN
    ca_dir: Path | None = None
    ca_certs_dir: Path | None = None
    cert_ttl_s: float = DEFAULT_TTL.total_seconds()
    # Traces: the SQLite store (None: in memory) and its bounds, where every OTLP export
    # is forwarded (`host:port`, gRPC; None: nowhere), and the Zipkin span receiver's
    # port on `xds_host` (None: none; 0: a free one), for the Zipkin tracer (B3).
    trace_db: Path | None = None
    trace_max_spans: int = DEFAULT_MAX_SPANS
    trace_max_age_s: float = DEFAULT_MAX_AGE_S
    trace_forward: str | None = None
    zipkin_port: int | None = None
    # Where the control plane keeps what must outlive it (a mesh's state dir): the
    # resources applied through the API and the node agents' reports. None: memory only.
    state_dir: Path | None = None
    # The node agents' token: it gets certificates for any identity of the trust domain
    # (`IdentityService.grant_node`). None: no node agent.
    node_token: str | None = None
    # Where the node agent's activator listens on loopback (Knative revisions with no
    # ready instance are routed there). None: no activator, no scale to zero.
    activator_port: int | None = None
    # The mesh's JetStream server (loopback) for Knative brokers. None: no brokers run.
    nats_port: int | None = None
    # Argo CD Applications: how often each one's repository is fetched (seconds).
    gitops_poll_s: float = 3.0
    # Live reload: the directory Workloads' and Knative containers' `workingDir` is
    # relative to (None: no live reload), and whether it applies without an annotation
    # (`ami up --reload`): a Knative Service whose files change gets a new revision.
    work_dir: Path | None = None
    reload: bool = False

    def __post_init__(self) -> None:
        if self.api_port is not None and not self.api_token:
            raise ValueError("ControlPlaneConfig: api_token is required when api_port is set")
        if self.cert_ttl_s <= 0:
            raise ValueError(
                f"ControlPlaneConfig: cert_ttl_s must be positive, got {self.cert_ttl_s}"
            )
        if self.gitops_poll_s <= 0:
            raise ValueError("ControlPlaneConfig: gitops_poll_s must be positive")
        if self.trace_max_spans < 1 or self.trace_max_age_s <= 0:
            raise ValueError("ControlPlaneConfig: trace store bounds must be positive")
        if self.trace_forward is not None:
            from amimesh.telemetry.trace_forward import parse_target

            try:
                parse_target(self.trace_forward)
            except ValueError as err:
                raise ValueError(f"ControlPlaneConfig: trace_forward: {err}") from None


def make_ca(config: ControlPlaneConfig) -> CertificateAuthority:
    """The CA `config` asks for (reads or writes its files)."""
    if config.ca_certs_dir is not None:
        return ca_store.load(config.ca_certs_dir, config.trust_domain)
    if config.ca_dir is not None:
        return ca_store.load_or_create(config.ca_dir, config.trust_domain)
    now = datetime.datetime.now(datetime.UTC)
    return CertificateAuthority.self_signed(config.trust_domain, now=now)


class ControlPlane:
    """Owns the store, the snapshot, the generator, the xDS server, the HTTP API and
    the CA (`identity`: token grants and CSR signing).

    `nodes` holds what the node agents report: their instances (registered in the
    store) and one status row per instance (workload, namespace, instance, pid, state,
    ready, restarts, since, reason) for `GET /api/v1/status`; before any node reported,
    the API lists the store's registered instances.
    """

    def __init__(self, config: ControlPlaneConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else Store()
        self.identity = IdentityService(
            make_ca(config), ttl=datetime.timedelta(seconds=config.cert_ttl_s)
        )
        if config.node_token:
            self.identity.grant_node(config.node_token)
        state = config.state_dir
        self.nodes = Nodes(self.store, state / "nodes.json" if state else None)
        self.applied = Applied(self.store, state / "applied.json") if state else None
        # Knative Serving: revisions and the mesh resources that run and route them.
        self.serving = ServingController(
            self.store,
            state / REVISIONS_FILE if state else None,
            activator_port=config.activator_port,
            work_dir=config.work_dir,
            reload=config.reload,
        )
        # The Gateway API: Istio Gateways and VirtualServices made of Gateways and routes.
        self.gateway_api = GatewayApiController(self.store)
        # Intercepts (`ami intercept`): their Workloads, held by leases.
        self.intercepts = Intercepts(self.store)
        # Contour's HTTPProxies: a Gateway and a VirtualService per served root.
        self.httpproxy = HTTPProxyController(self.store)
        self._state = state
        self._eventing_started = False
        self._triggers_started = False
        self._config_seen = self.store.config_version
        self._config_waiters: set[asyncio.Future[None]] = set()
        self._snapshot_version = -1
        self._snapshot: Snapshot | None = None
        self._build()
        self._source = (
            DirectorySource(self.store, config.config_dir, exclude_dirs=config.exclude_dirs)
            if config.config_dir
            else None
        )
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._rest_task: asyncio.Task[None] | None = None
        self._unsubscribe = self.store.subscribe(self._on_store_change)
        self.xds_port = 0
        self.api_port = 0  # the bound API port while started with an API
        self._api: ApiServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics_task: asyncio.Task[None] | None = None
        self._autoscale_task: asyncio.Task[None] | None = None

    # --- the data plane's side: built on first use (`start` builds it after the API) --

    @cached_property
    def _plane(self) -> _Plane:
        return _Plane(self)

    @property
    def plane_ready(self) -> bool:
        """Whether xDS and telemetry are built (the API may answer before)."""
        return "_plane" in self.__dict__

    @property
    def xds(self) -> XdsServer:
        return self._plane.xds

    @property
    def metrics(self) -> MeshMetrics:
        """Istio's metrics, from every proxy's stats sink (`translate.metrics_log`)."""
        return self._plane.metrics

    @property
    def metrics_file(self) -> MetricsFile | None:
        return self._plane.metrics_file

    @property
    def traces(self) -> TraceCollector:
        """OTLP on the xDS server's gRPC port, a store, forwarding (`telemetry.traces`)."""
        return self._plane.traces

    @property
    def grpc_services(self) -> list[Callable[[Any], None]]:
        """More gRPC services on the xDS server (telemetry receivers), each added by a
        function of the server; add before `start`."""
        return self._plane.grpc_services

    def _build(self) -> Snapshot:
        version = self.store.version
        snap = build_snapshot(
            self.store.resources(),
            self.store.instances(),
            version=version,
            domain=self.config.domain,
            previous=self._snapshot,
        )
        self._snapshot = snap
        self._snapshot_version = version
        return snap

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot_version != self.store.version:
            snap = self._build()
            if self.plane_ready:
                self._plane.generator.update(snap)
        assert self._snapshot is not None
        return self._snapshot

    def _generate(self, proxy: Proxy) -> ProxyConfig:
        generator = self._plane.generator
        if self._snapshot_version != self.store.version:
            generator.update(self._build())
        return generator.generate(proxy)

    def _on_store_change(self) -> None:
        # Store writers may run in any thread; the xDS server hands over to its loop.
        if self.plane_ready:
            self.xds.config_changed()
        if self.store.config_version != self._config_seen and self._loop is not None:
            self._loop.call_soon_threadsafe(self._config_changed)

    def _config_changed(self) -> None:
        version = self.store.config_version
        if version == self._config_seen:
            return
        self._config_seen = version
        if self.applied is not None:
            self.applied.save()
        for waiter in self._config_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_config(self, since: int, timeout_s: float) -> int:
        """The config version once it differs from `since`, or after `timeout_s`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self.store.config_version == since:
            waiter = asyncio.get_running_loop().create_future()
            self._config_waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                pass
            finally:
                self._config_waiters.discard(waiter)
        return self.store.config_version

    async def start(self) -> int:
        """Load config, serve the HTTP API if configured (node agents get their config
        and certificates from here on), then load and start xDS and telemetry; returns
        the xDS port. The API's port is then `api_port`."""
        self._loop = asyncio.get_running_loop()
        if self.applied is not None:
            self.applied.load()
        if self._state is not None and (self._state / GITOPS_STATE).exists():
            self.gitops.load()  # what Applications had synced, before anything is served
        self.nodes.load()  # the endpoints of the last run, before the first push
        self._config_seen = self.store.config_version
        if self._source is not None:
            errors = self._source.sync()
            for e in errors:
                log.warning("%s", e)
        self.serving.reconcile()  # what Knative resources run, before anyone asks
        self.serving.watch(self._loop)
        self.gateway_api.reconcile()
        self.gateway_api.watch(self._loop)
        self.httpproxy.reconcile()  # Contour's HTTPProxies as the ingress gateway's routes
        self.httpproxy.watch(self._loop)
        if any(r.API_GROUP in EVENTING_GROUPS for r in self.store.resources()):
            self._start_eventing()  # the broker's workload in the first node config
        self._autoscale_task = asyncio.create_task(self.serving.autoscale(), name="autoscaler")
        self.intercepts.start()
        if self.config.api_port is not None:
            from amimesh.controlplane.api import ApiServer  # aiohttp only when serving it

            assert self.config.api_token is not None  # checked by ControlPlaneConfig
            api = ApiServer(self, self.config.api_token)
            self.api_port = await api.start(self.config.api_host, self.config.api_port)
            self._api = api
            if any(r.API_GROUP == TRIGGERS_GROUP for r in self.store.resources()):
                self._start_triggers()  # the listeners' workloads in the first node config
        try:
            await self._start_plane()
        except BaseException:
            if self._api is not None:
                await self._api.stop()
                self._api = None
            raise
        if self.config.node_token is not None:
            # Node agents are starting the first instances: their apps, Envoys and
            # certificates go first, the rest once they are up.
            self._rest_task = asyncio.create_task(self._start_rest_later(), name="start-rest")
        else:
            await self._start_rest()
        log.info("xDS serving on %s:%d", self.config.xds_host, self.xds_port)
        return self.xds_port

    async def _start_rest_later(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REST_AFTER_S
        while loop.time() < deadline and not self.nodes.settled():  # noqa: ASYNC110
            await asyncio.sleep(REST_POLL_S)  # node agents' reports come in as requests
        await self._start_rest()

    async def _start_rest(self) -> None:
        """What xDS does not need: Tekton's run status, Eventing and Triggers (if not
        started already), GitOps, the config directory's watch."""
        assert self._loop is not None
        await asyncio.to_thread(_import_all, REST_MODULES)
        self.pipelines  # noqa: B018 - Tekton's modules, loaded once the rest serves
        self._start_eventing()
        self._start_triggers()
        if "gitops" not in self.__dict__:
            self.gitops.load()
        self.gitops.watch(self._loop)
        if self._source is not None and self.config.watch:
            self._watch_task = asyncio.create_task(
                self._source.watch(self._stop), name="config-watch"
            )
        gcstart.started()

    @cached_property
    def eventing(self) -> EventingController:
        """Knative Eventing: the broker's workload, on the mesh's JetStream server
        (loaded when the config has eventing kinds at start, else once xDS serves)."""
        from amimesh.controlplane.eventing import EventingController, runner_for

        state, nats = self._state, self.config.nats_port or 0
        return EventingController(self.store, runner_for(state, nats, sys.executable), state)

    def _start_triggers(self) -> None:
        if self._api is None or self._triggers_started:
            return
        self._triggers_started = True
        assert self._loop is not None
        host = self.config.api_host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.triggers.reconcile(f"http://{host}:{self.api_port}")
        self.triggers.watch(self._loop)

    def _start_eventing(self) -> None:
        if self._eventing_started:
            return
        self._eventing_started = True
        assert self._loop is not None
        self.eventing.reconcile()
        self.eventing.watch(self._loop)

    @cached_property
    def pipelines(self) -> PipelineStatus:
        """Tekton: the runs' status, as the node agents that run them report it (loaded
        on first use: Tekton's modules are not on the way to the first config)."""
        from amimesh.controlplane.pipelines import STATUS_FILE, PipelineStatus

        state = self._state
        status = PipelineStatus(state / STATUS_FILE if state else None)
        status.load()
        return status

    @cached_property
    def triggers(self) -> TriggersController:
        """Tekton Triggers: each EventListener's mesh service, and its webhooks."""
        from amimesh.controlplane.triggers import TriggersController

        return TriggersController(self.store, self._state, self.config.api_token)

    @cached_property
    def gitops(self) -> GitOpsController:
        """Argo CD Applications: each one's repository revision, synced into the store."""
        from amimesh.controlplane.gitops import GitOpsController

        return GitOpsController(
            self.store,
            self._state,
            poll_s=self.config.gitops_poll_s,
            knative_status=self.serving.status_of,
            instance_rows=self.nodes.status_rows,
        )

    async def _start_plane(self) -> None:
        if not self.plane_ready:
            # Imported on a thread: the loop keeps answering the API (node agents' config
            # and certificates) at full speed meanwhile, instead of one step per import.
            await asyncio.to_thread(_import_all, PLANE_MODULES)
        plane = self._plane
        if plane.metrics_file is not None:
            plane.metrics_file.load()
            self._metrics_task = asyncio.create_task(plane.metrics_file.run(), name="metrics-file")
        await plane.traces.start()
        try:
            self.xds_port = await plane.xds.start(self.config.xds_host, self.config.xds_port)
        except BaseException:
            await plane.traces.stop()
            raise

    async def stop(self) -> None:
        self._stop.set()
        if self._rest_task is not None:
            self._rest_task.cancel()
            await asyncio.gather(self._rest_task, return_exceptions=True)
            self._rest_task = None
        self.serving.close()
        self.gateway_api.close()
        self.httpproxy.close()
        await self.intercepts.close()
        if "eventing" in self.__dict__:
            self.eventing.close()
        if "triggers" in self.__dict__:
            self.triggers.close()
        if "gitops" in self.__dict__:
            await self.gitops.close()
        if self._autoscale_task is not None:
            self._autoscale_task.cancel()
            await asyncio.gather(self._autoscale_task, return_exceptions=True)
            self._autoscale_task = None
        if self._api is not None:
            await self._api.stop()
            self._api = None
            self.api_port = 0
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except asyncio.CancelledError:
                pass
            self._watch_task = None
        self._unsubscribe()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            await asyncio.gather(self._metrics_task, return_exceptions=True)
            self._metrics_task = None
        if self.plane_ready:
            if self.metrics_file is not None:
                self.metrics_file.save()
            await self.xds.stop()
            await self.traces.stop()

    def _service_of(self, node_id: str) -> str | None:
        """The service a proxy's spans name (`translate.tracing.service_name`)."""
        from amimesh.translate import tracing

        for proxy in self.xds.proxies():
            if proxy.id == node_id:
                return tracing.service_name(proxy)
        return None


class _Plane:
    """What serves proxies: the generator, the xDS server, the metrics receiver and
    file, the trace collector (built together: each names the others)."""

    def __init__(self, cp: ControlPlane) -> None:
        from amimesh.controlplane.serving_metrics import AutoscalerCollector
        from amimesh.telemetry import metrics_receiver
        from amimesh.telemetry.metrics import MeshMetrics
        from amimesh.telemetry.metrics_file import MetricsFile
        from amimesh.telemetry.traces import TraceCollector
        from amimesh.translate.generate import Generator
        from amimesh.xds.server import XdsServer

        config, state = cp.config, cp.config.state_dir
        self.generator = Generator(cp.snapshot)
        self.grpc_services: list[Callable[[Any], None]] = []
        self.xds = XdsServer(
            cp._generate,
            debounce_s=config.debounce_s,
            on_disconnect=lambda proxy: self.generator.forget(proxy.id),
            services=self.grpc_services,
        )
        self.metrics = MeshMetrics()
        # Knative's autoscaler gauges, read from the serving controller at each scrape.
        self.metrics.registry.register(AutoscalerCollector(cp.serving.scaling))
        self.metrics_file = MetricsFile(self.metrics, state / "metrics.json") if state else None
        directories = metrics_receiver.Directories(
            lambda: cp.snapshot, self.xds.proxies, config.trust_domain
        )
        self.grpc_services.append(
            metrics_receiver.add_to_server(
                metrics_receiver.MetricsReceiver(self.metrics, directories)
            )
        )
        self.traces = TraceCollector(_trace_settings(config), service_of=cp._service_of)
        self.grpc_services.append(self.traces.add_to_server)


def _trace_settings(config: ControlPlaneConfig) -> TraceSettings:
    from amimesh.telemetry.traces import TraceSettings

    return TraceSettings(
        db=config.trace_db,
        max_spans=config.trace_max_spans,
        max_age_s=config.trace_max_age_s,
        forward=config.trace_forward,
        zipkin_port=config.zipkin_port,
        zipkin_host=config.xds_host,
    )
