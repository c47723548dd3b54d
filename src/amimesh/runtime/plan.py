"""What to run for a Workload replica or the ingress gateway: an `InstanceSpec`.

No processes here: ports come from the `allocate` callable, paths from the state dir,
so each decision (names, ports, env-visible upstreams, probe, working directory) is a
value that tests can check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from amimesh.agent.config import (
    AgentConfig,
    AppSpec,
    CredentialSpec,
    EnvoySpec,
    IdentitySpec,
    ProbeSpec,
    XdsSpec,
)
from amimesh.identity.spiffe import TRUST_DOMAIN, workload_id
from amimesh.model import intercepts
from amimesh.model.proxy import AccessLogFormat, GatewayPort, InboundPort, Proxy, Upstream
from amimesh.model.sidecars import ProxySettings
from amimesh.model.snapshot import Instance, MeshService
from amimesh.resources.workload import (
    IDLE_TIMEOUT,
    REQUEST_TIMEOUT,
    Probe,
    Workload,
    max_concurrency,
    timeout_s,
)
from amimesh.runtime.policy import RestartPolicy
from amimesh.runtime.state import StateDir

Allocate = Callable[[], int]
NO_SETTINGS = ProxySettings()

# Service port protocols that get a local upstream port (AMI_UPSTREAM_*): clients that
# cannot use an HTTP proxy.
UPSTREAM_PROTOCOLS = frozenset({"GRPC", "HTTP2", "TCP"})
GATEWAY_LABELS: Mapping[str, str] = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
GATEWAY_WORKLOAD = "istio-ingressgateway"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
# What the agent writes on every renewal, for `ami identity` (public: no key).
CERT_FILE = "cert.pem"
BUNDLE_FILE = "trust-bundle.pem"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
# Until the first ready, a workload without a probe is checked this often for its port.
DEFAULT_TCP_PERIOD_S = 1.0
# Envoy worker threads. A sidecar runs one, as Linkerd's proxy does by default: every
# instance's sidecar shares the machine's cores with every other instance and app, and
# a second worker costs each Envoy a third more CPU to start (its own copy of every
# cluster and listener) for throughput one app rarely needs. One worker also keeps a
# sidecar that limits the requests in flight to its app (`ami.dev/max-concurrency`)
# right: Envoy's circuit breakers are shared by its workers but each worker has
# connection pools of its own, so a request waiting in one worker's pool would not be
# given the connection another worker frees (a 503 where Knative would queue it). The
# ingress gateway, which carries every instance's outside traffic, runs two (Istio's
# default). A ProxyConfig's `concurrency` sets either.
ENVOY_WORKERS = 1
GATEWAY_ENVOY_WORKERS = 2


class PlanError(ValueError):
    """A workload that cannot run as written (e.g. a probe on an undeclared port)."""


@dataclass(frozen=True)
class InstanceSpec:
    """One instance to run: its Envoy and (unless a gateway) its app."""

    name: str  # web-0
    namespace: str
    workload: str
    restart_policy: RestartPolicy
    agent: AgentConfig
    config_path: Path  # where agent.json goes (for the record and adoption)
    # What the control plane learns when the instance is ready; None for a gateway.
    registration: Instance | None

    @property
    def id(self) -> str:
        return self.agent.proxy.id


def instance_id(name: str, namespace: str) -> str:
    """`web-0` in `default` → `web-0.default` (the proxy id, as Istio's `pod.namespace`)."""
    return f"{name}.{namespace}"


def replica_name(workload: str, index: int, generation: int = 0) -> str:
    """`web-0`; `web-0-r2` for the replica a second live reload started."""
    return f"{workload}-{index}" + (f"-r{generation}" if generation else "")


def upstreams(
    services: Iterable[MeshService], namespace: str, allocate: Allocate
) -> tuple[Upstream, ...]:
    """A local port for every GRPC, HTTP2 or TCP port of the namespace's Services."""
    out = []
    for svc in sorted(services, key=lambda s: s.hostname):
        if svc.origin != "kubernetes" or svc.namespace != namespace:
            continue
        for sp in sorted(svc.ports, key=lambda p: p.port):
            if sp.protocol in UPSTREAM_PROTOCOLS:
                out.append(Upstream(svc.hostname, sp.port, allocate(), sp.protocol))
    return tuple(out)


def envoy_workers(settings: ProxySettings, default: int) -> int:
    """Envoy's worker threads: a ProxyConfig's `concurrency` if it sets one (0: one per
    core, Envoy's own default: the agent then passes no `--concurrency`), else `default`."""
    return default if settings.concurrency is None else settings.concurrency


def holds_app(annotations: Mapping[str, str]) -> bool:
    """Istio's `proxy.istio.io/config` annotation asks the app to wait for its sidecar
    (`holdApplicationUntilProxyStarts: true`); without it both start at once."""
    text = annotations.get(PROXY_CONFIG_ANNOTATION, "")
    if not text or len(text) > 64 * 1024:
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("holdApplicationUntilProxyStarts") is True


def probe_spec(probe: Probe | None, inbound: tuple[InboundPort, ...]) -> ProbeSpec | None:
    """The agent's probe: the Workload's readinessProbe aimed at the app's real port;
    without one, a TCP check of the first port; None (ready once started) with no ports."""
    if probe is None:
        if not inbound:
            return None
        return ProbeSpec(kind="tcp", port=inbound[0].app_port, period_s=DEFAULT_TCP_PERIOD_S)
    return _aimed(probe, inbound, "readinessProbe")


def liveness_spec(probe: Probe | None, inbound: tuple[InboundPort, ...]) -> ProbeSpec | None:
    """The agent's liveness probe: the Workload's livenessProbe aimed at the app's real
    port; none without one."""
    return None if probe is None else _aimed(probe, inbound, "livenessProbe")


def _aimed(probe: Probe, inbound: tuple[InboundPort, ...], what: str) -> ProbeSpec:
    action = probe.httpGet or probe.tcpSocket
    assert action is not None  # validated: exactly one of them
    http = probe.httpGet
    return ProbeSpec(
        kind="http" if http is not None else "tcp",
        port=_app_port(action.port, inbound, what),
        path=http.path if http is not None else "/",
        initial_delay_s=probe.initialDelaySeconds,
        period_s=probe.periodSeconds,
        timeout_s=probe.timeoutSeconds,
        failure_threshold=probe.failureThreshold,
    )


def _app_port(port: int | str | None, inbound: tuple[InboundPort, ...], what: str) -> int:
    for p in inbound:
        if port is None or p.port == port or (p.name and p.name == port):
            return p.app_port
    if not inbound:
        raise PlanError(f"{what} needs a port: the workload declares none")
    raise PlanError(f"{what} port {port!r} is not one of the workload's ports")


def access_log_path(state: StateDir, iid: str) -> str:
    """Where instance `iid`'s Envoy writes its access log (`ami logs NAME --access`)."""
    return str(state.logs / f"{iid}.access.log")


def workload_instance(
    workload: Workload,
    index: int,
    *,
    services: Iterable[MeshService],
    allocate: Allocate,
    state: StateDir,
    xds_port: int,
    config_dir: Path,
    grace_s: float = 0.5,
    trust_domain: str | None = TRUST_DOMAIN,
    access_log_format: AccessLogFormat = "json",
    telemetry_port: int = 0,
    settings: ProxySettings = NO_SETTINGS,
    generation: int = 0,
) -> InstanceSpec:
    """Replica `index` of `workload`: every port allocated, every path decided.
    `settings` are what the ProxyConfigs selecting it set (Envoy's workers and env).
    `telemetry_port` is the control plane's Zipkin span receiver (0: none);
    `trust_domain` None: no identity (no certificate, no SDS); `generation` > 0: the
    replica as a live reload started it anew beside the one it replaces."""
    spec = workload.spec
    name = replica_name(workload.name, index, generation)
    ns = workload.namespace
    iid = instance_id(name, ns)
    # An intercept's process may listen on a port of the developer's choosing.
    fixed = intercepts.fixed_port(workload.metadata.annotations)
    inbound = tuple(
        InboundPort(
            port=p.port,
            listen_port=allocate(),
            app_port=fixed if fixed is not None and i == 0 else allocate(),
            name=p.name or "",
            protocol=p.protocol,
        )
        for i, p in enumerate(spec.ports)
    )
    proxy = Proxy(
        id=iid,
        workload=workload.name,
        namespace=ns,
        labels=dict(workload.metadata.labels),
        service_account=spec.serviceAccount,
        outbound_port=allocate(),
        inbound=inbound,
        locality=spec.locality or "",
        upstreams=upstreams(services, ns, allocate),
        admin_port=allocate(),
        access_log=access_log_path(state, iid),
        access_log_format=access_log_format,
        max_concurrency=max_concurrency(workload.metadata.annotations),
        request_timeout_s=timeout_s(workload.metadata.annotations, REQUEST_TIMEOUT),
        idle_timeout_s=timeout_s(workload.metadata.annotations, IDLE_TIMEOUT),
    )
    cwd = (config_dir / spec.workingDir) if spec.workingDir else config_dir
    app = AppSpec(
        command=(*spec.command, *spec.args),  # $(VAR) expanded by the agent (agent/env.py)
        cwd=str(cwd.resolve()),
        log=str(state.logs / f"{iid}.log"),
        env={e.name: e.value for e in spec.env},
        probe=probe_spec(spec.readinessProbe, inbound),
        liveness=liveness_spec(spec.livenessProbe, inbound),
    )
    registration = Instance(
        id=iid,
        workload=workload.name,
        namespace=ns,
        labels=dict(workload.metadata.labels),
        service_account=spec.serviceAccount,
        ports={p.port: p.listen_port for p in inbound},
        port_names={p.name: p.port for p in inbound if p.name},
        locality=spec.locality or "",
    )
    return _spec(
        state,
        name,
        proxy,
        xds_port,
        app,
        spec.restartPolicy,
        registration,
        grace_s=grace_s,
        hold_app=holds_app(workload.metadata.annotations),
        trust_domain=trust_domain,
        telemetry_port=telemetry_port,
        envoy_workers=envoy_workers(settings, ENVOY_WORKERS),
        envoy_cwd=config_dir,
        envoy_env=dict(settings.environment),
    )


def gateway_instance(
    ports: Iterable[GatewayPort],
    *,
    allocate: Allocate,
    state: StateDir,
    xds_port: int,
    trust_domain: str | None = TRUST_DOMAIN,
    credentials: tuple[CredentialSpec, ...] = (),
    access_log_format: AccessLogFormat = "json",
    telemetry_port: int = 0,
    config_dir: Path | None = None,
    settings: ProxySettings = NO_SETTINGS,
) -> InstanceSpec:
    """The ingress gateway: an Envoy alone, labelled as Istio's ingress gateway, serving
    its Gateways' `credentials` (with an identity only: they come by SDS)."""
    name = f"{GATEWAY_WORKLOAD}-0"
    iid = instance_id(name, GATEWAY_NAMESPACE)
    proxy = Proxy(
        id=iid,
        kind="gateway",
        workload=GATEWAY_WORKLOAD,
        namespace=GATEWAY_NAMESPACE,
        labels=dict(GATEWAY_LABELS),
        service_account=GATEWAY_SERVICE_ACCOUNT,
        gateway_ports=tuple(ports),
        admin_port=allocate(),
        access_log=access_log_path(state, iid),
        access_log_format=access_log_format,
    )
    spec = _spec(
        state,
        name,
        proxy,
        xds_port,
        None,
        "Always",
        None,
        grace_s=0.0,
        trust_domain=trust_domain,
        telemetry_port=telemetry_port,
        envoy_workers=envoy_workers(settings, GATEWAY_ENVOY_WORKERS),
        envoy_cwd=config_dir,
        envoy_env=dict(settings.environment),
    )
    if trust_domain is None or not credentials:
        return spec
    return replace(spec, agent=replace(spec.agent, credentials=credentials))


def _spec(
    state: StateDir,
    name: str,
    proxy: Proxy,
    xds_port: int,
    app: AppSpec | None,
    restart_policy: RestartPolicy,
    registration: Instance | None,
    *,
    grace_s: float,
    trust_domain: str | None = TRUST_DOMAIN,
    telemetry_port: int = 0,
    hold_app: bool = False,
    envoy_workers: int = ENVOY_WORKERS,
    envoy_cwd: Path | None = None,
    envoy_env: Mapping[str, str] | None = None,
) -> InstanceSpec:
    home = state.instances / proxy.id
    identity = None
    if trust_domain is not None:
        identity = IdentitySpec(
            spiffe_id=workload_id(proxy.namespace, proxy.service_account, trust_domain).uri,
            sds_socket=str(home / "sds.sock"),
            cert_file=str(home / CERT_FILE),
            bundle_file=str(home / BUNDLE_FILE),
        )
    agent = AgentConfig(
        name=name,
        proxy=proxy,
        xds=XdsSpec(port=xds_port, telemetry_port=telemetry_port),
        envoy=EnvoySpec(
            bootstrap=str(home / "envoy.json"),
            log=str(state.logs / f"{proxy.id}.envoy.log"),
            concurrency=envoy_workers,
            cwd=str(envoy_cwd.resolve()) if envoy_cwd is not None else None,
            env=dict(envoy_env or {}),
        ),
        app=app,
        grace_s=grace_s,
        identity=identity,
        hold_app=hold_app,
    )
    return InstanceSpec(
        name=name,
        namespace=proxy.namespace,
        workload=proxy.workload,
        restart_policy=restart_policy,
        agent=agent,
        config_path=home / "agent.json",
        registration=registration,
    )
