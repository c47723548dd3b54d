"""The immutable, indexed snapshot of the mesh: services, endpoints and policies.

`build_snapshot` turns validated resources plus the live instances (registered by the
runtime when ready) into a `Snapshot`. Given the previous snapshot, it reuses every
value that did not change, so translators can cache by identity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from amimesh.model import hosts, intercepts, mtls, telemetry
from amimesh.model.selection import selects
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import kube
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload

Resolution = Literal["EDS", "STATIC", "DNS", "DNS_ROUND_ROBIN", "NONE"]

# The gateway name under which a VirtualService applies to sidecars.
MESH_GATEWAY = "mesh"


def gateway_ref(name: str, namespace: str) -> tuple[str, str] | None:
    """The (namespace, name) of the Gateway that `name` means in a VirtualService of
    `namespace` (`name` or `ns/name`); None for `mesh`, the sidecars."""
    if name == MESH_GATEWAY:
        return None
    ns, _, short = name.rpartition("/")
    return (ns or namespace, short)


@dataclass(frozen=True)
class Instance:
    """A running, ready replica of a workload, as the runtime registers it.

    `ports` maps each workload port to the host port that reaches it through the
    instance's sidecar (its inbound listener); `port_names` maps port names to
    workload ports, for Services whose targetPort is a name.
    """

    id: str
    workload: str
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    address: str = "127.0.0.1"
    ports: Mapping[int, int] = field(default_factory=dict)
    port_names: Mapping[str, int] = field(default_factory=dict)
    locality: str = ""
    ready: bool = True


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "HTTP"  # HTTP, HTTP2, GRPC, TCP, TLS, HTTPS, ...


@dataclass(frozen=True)
class MeshService:
    """A destination the mesh routes to, from a Kubernetes Service or a ServiceEntry."""

    hostname: str  # fully qualified: reviews.default.svc.cluster.local or api.example.com
    name: str
    namespace: str
    ports: tuple[ServicePort, ...]
    origin: Literal["kubernetes", "service-entry"] = "kubernetes"
    location: Literal["MESH_INTERNAL", "MESH_EXTERNAL"] = "MESH_INTERNAL"
    resolution: Resolution = "EDS"
    selector: Mapping[str, str] | None = None

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.port == number:
                return p
        return None


@dataclass(frozen=True)
class Endpoint:
    """One address of a service port.

    `tls_mode` says how clients reach it: `istio` (mutual TLS) for a workload with a
    sidecar (a registered instance, or a WorkloadEntry labelled
    `security.istio.io/tlsMode: istio`) whose PeerAuthentication does not DISABLE
    mutual TLS on that port; `disabled` (plain text) otherwise.
    """

    address: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    workload: str = ""
    namespace: str = "default"
    service_account: str = "default"
    locality: str = ""
    weight: int = 1
    tls_mode: str = mtls.TLS_MODE_DISABLED


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything the translators read. Build it with `build_snapshot`."""

    version: int
    domain: str
    resources: Mapping[tuple[str, str, str], Resource]
    services: Mapping[str, MeshService]
    # (hostname, service port) -> endpoints; absent key = no endpoints.
    endpoints: Mapping[tuple[str, int], tuple[Endpoint, ...]]
    # hostname -> VirtualServices (non-delegate, however bound) whose hosts name it.
    virtual_services: Mapping[str, tuple[net.VirtualService, ...]]
    # VirtualServices whose hosts contain a wildcard, in stable order.
    wildcard_virtual_services: tuple[net.VirtualService, ...]
    # (namespace, name) -> delegate VirtualService (one without hosts).
    delegates: Mapping[tuple[str, str], net.VirtualService]
    destination_rules: Mapping[str, net.DestinationRule]
    workloads: Mapping[tuple[str, str], Workload]
    instances: tuple[Instance, ...]
    # (namespace, name) -> Gateway.
    gateways: Mapping[tuple[str, str], gw.Gateway] = field(default_factory=dict)
    # (namespace, name) of a Gateway -> VirtualServices bound to it, in snapshot order.
    gateway_virtual_services: Mapping[tuple[str, str], tuple[net.VirtualService, ...]] = field(
        default_factory=dict
    )
    # namespace -> its PeerAuthentications, by name (see `model.mtls`).
    peer_authentications: Mapping[str, tuple[sec.PeerAuthentication, ...]] = field(
        default_factory=dict
    )
    # namespace -> its Telemetries that set accessLogging, tracing or metrics, by name
    # (`model.telemetry`).
    telemetries: Mapping[str, tuple[tel.Telemetry, ...]] = field(default_factory=dict)
    # hostname -> the intercepts with a header of the workloads its Service selects
    # (`model.intercepts`): each is a subset `intercept-ID` and a route ahead of others.
    intercepts: Mapping[str, tuple[intercepts.Intercept, ...]] = field(default_factory=dict)
    # (hostname, service port) -> what the endpoints of the Workloads its Service selects
    # will be, ready or not (no address or port): whose identities the service's
    # clusters verify, so that a cluster does not change as its instances become ready.
    # Absent key = none.
    workload_endpoints: Mapping[tuple[str, int], tuple[Endpoint, ...]] = field(default_factory=dict)

    def resolve(self, host: str, namespace: str) -> str:
        """The hostname a reference to `host` from `namespace` means."""
        h = host.lower().rstrip(".")
        if h in self.services:
            return h
        return hosts.expand(h, namespace, self.domain)

    def service(self, hostname: str) -> MeshService | None:
        return self.services.get(hostname)

    def destination_rule(self, hostname: str) -> net.DestinationRule | None:
        return self.destination_rules.get(hostname)

    def subset_labels(self, hostname: str, subset: str) -> Mapping[str, str] | None:
        """Labels of a DestinationRule subset (or an intercept's); None if the subset
        is not defined."""
        if subset.startswith(intercepts.SUBSET_PREFIX):
            for icpt in self.intercepts.get(hostname, ()):
                if icpt.subset == subset:
                    return {intercepts.INTERCEPT_LABEL: icpt.id}
        dr = self.destination_rules.get(hostname)
        if dr is None:
            return None
        for s in dr.spec.subsets:
            if s.name == subset:
                return s.labels
        return None

    def endpoints_for(
        self, hostname: str, port: int, subset_labels: Mapping[str, str] | None = None
    ) -> tuple[Endpoint, ...]:
        eps = self.endpoints.get((hostname, port), ())
        if subset_labels and intercepts.INTERCEPT_LABEL in subset_labels:
            return tuple(e for e in eps if selects(subset_labels, e.labels))
        if any(intercepts.INTERCEPT_LABEL in e.labels for e in eps):
            shown = intercepts.visible(e.labels for e in eps)
            eps = tuple(e for e, v in zip(eps, shown, strict=True) if v)
        if not subset_labels:
            return eps
        return tuple(e for e in eps if selects(subset_labels, e.labels))

    def mtls_policies(self, namespace: str, labels: Mapping[str, str]) -> mtls.Policies:
        """The PeerAuthentications that decide a workload's inbound mutual TLS."""
        return mtls.policies(self.peer_authentications, namespace, labels)

    def access_log_policy(
        self, namespace: str, labels: Mapping[str, str]
    ) -> telemetry.AccessLogPolicy:
        """The Telemetry that decides whether a proxy writes an access log."""
        return telemetry.access_log_policy(self.telemetries, namespace, labels)

    def tracing_policy(self, namespace: str, labels: Mapping[str, str]) -> telemetry.TracingPolicy:
        """How a proxy traces (provider, sampling, custom tags), from Telemetry."""
        return telemetry.tracing_policy(self.telemetries, namespace, labels)

    def metrics_policy(self, namespace: str, labels: Mapping[str, str]) -> telemetry.MetricsPolicy:
        """Whether a proxy reports Istio's metrics, from Telemetry."""
        return telemetry.metrics_policy(self.telemetries, namespace, labels)

    def delegate(self, name: str, namespace: str) -> net.VirtualService | None:
        return self.delegates.get((namespace, name))

    def virtual_services_for_gateway(
        self, namespace: str, name: str
    ) -> tuple[net.VirtualService, ...]:
        """The VirtualServices whose `gateways` name Gateway `namespace/name`."""
        return self.gateway_virtual_services.get((namespace, name), ())

    def gateways_for(self, labels: Mapping[str, str]) -> list[gw.Gateway]:
        """The Gateways whose selector matches a gateway proxy's `labels`, in (namespace,
        name) order. Any namespace: in local mode a gateway serves every namespace's
        Gateways (Istio's default, without PILOT_SCOPE_GATEWAY_TO_NAMESPACE). An empty
        selector selects every gateway proxy."""
        return [g for _, g in sorted(self.gateways.items()) if selects(g.spec.selector, labels)]


class _Selectable:
    """Instances and WorkloadEntries indexed by (namespace, label, value).

    A selector is matched only against the candidates that carry its first label,
    so selecting endpoints for S services costs about S lookups, not S × instances.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        entries: Sequence[net.WorkloadEntry],
        peer_auth: mtls.PeerAuthIndex,
    ) -> None:
        # Decides the endpoints' `tls_mode`.
        self.peer_auth = peer_auth
        self.instances: dict[tuple[str, str, str], list[Instance]] = defaultdict(list)
        self.entries: dict[tuple[str, str, str], list[net.WorkloadEntry]] = defaultdict(list)
        for i in instances:
            for k, v in i.labels.items():
                self.instances[(i.namespace, k, v)].append(i)
        for e in entries:
            for k, v in e.spec.labels.items():
                self.entries[(e.namespace, k, v)].append(e)

    def select_instances(self, namespace: str, selector: Mapping[str, str]) -> list[Instance]:
        if not selector:
            return []
        k, v = next(iter(selector.items()))
        return [i for i in self.instances.get((namespace, k, v), ()) if selects(selector, i.labels)]

    def select_entries(
        self, namespace: str, selector: Mapping[str, str]
    ) -> list[net.WorkloadEntry]:
        if not selector:
            return []
        k, v = next(iter(selector.items()))
        return [
            e for e in self.entries.get((namespace, k, v), ()) if selects(selector, e.spec.labels)
        ]


def build_snapshot(
    resources: Iterable[Resource],
    instances: Sequence[Instance] = (),
    *,
    version: int = 0,
    domain: str = hosts.DEFAULT_DOMAIN,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Index `resources` and ready `instances` into a snapshot.

    Values equal to the `previous` snapshot's are reused (same object), so an
    unchanged service keeps its identity across snapshots.
    """
    by_key: dict[tuple[str, str, str], Resource] = {}
    for r in sorted(resources, key=lambda r: r.key):
        by_key[r.key] = r
    ready = tuple(sorted((i for i in instances if i.ready), key=lambda i: i.id))

    services: dict[str, MeshService] = {}
    endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    workload_endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    peer_auth = mtls.index(r for r in by_key.values() if isinstance(r, sec.PeerAuthentication))
    selectable = _Selectable(
        ready, [r for r in by_key.values() if isinstance(r, net.WorkloadEntry)], peer_auth
    )
    planned = _Selectable(
        [_planned(r) for r in by_key.values() if isinstance(r, Workload)], [], peer_auth
    )
    for r in by_key.values():
        if isinstance(r, kube.Service):
            svc = _kube_service(r, domain)
            services[svc.hostname] = svc
            for sp in svc.ports:
                endpoints[(svc.hostname, sp.port)] = _kube_endpoints(svc, sp, selectable)
                expected = _kube_endpoints(svc, sp, planned)
                if expected:
                    workload_endpoints[(svc.hostname, sp.port)] = expected
        elif isinstance(r, net.ServiceEntry):
            for svc, eps in _service_entry(r, selectable):
                services.setdefault(svc.hostname, svc)
                endpoints.update(eps)

    vs_by_host: dict[str, list[net.VirtualService]] = defaultdict(list)
    wildcard: list[net.VirtualService] = []
    delegates: dict[tuple[str, str], net.VirtualService] = {}
    drs: dict[str, net.DestinationRule] = {}
    workloads: dict[tuple[str, str], Workload] = {}
    gateways: dict[tuple[str, str], gw.Gateway] = {}
    bound: dict[tuple[str, str], list[net.VirtualService]] = defaultdict(list)
    for r in by_key.values():
        if isinstance(r, net.VirtualService):
            if not r.spec.hosts:
                delegates[(r.namespace, r.name)] = r
                continue
            for g in dict.fromkeys(r.spec.gateways):
                ref = gateway_ref(g, r.namespace)
                if ref is not None:
                    bound[ref].append(r)
            for h in r.spec.hosts:
                if hosts.is_wildcard(h):
                    if r not in wildcard:
                        wildcard.append(r)
                    continue
                host = h.lower() if h.lower() in services else hosts.expand(h, r.namespace, domain)
                vs_by_host[host].append(r)
        elif isinstance(r, net.DestinationRule):
            host = r.spec.host.lower()
            if host not in services:
                host = hosts.expand(host, r.namespace, domain)
            # A rule in the service's own namespace wins over one elsewhere.
            current = drs.get(host)
            owner = services.get(host)
            if current is None or (owner is not None and r.namespace == owner.namespace):
                drs[host] = r
        elif isinstance(r, Workload):
            workloads[(r.namespace, r.name)] = r
        elif isinstance(r, gw.Gateway):
            gateways[(r.namespace, r.name)] = r

    snap = Snapshot(
        version=version,
        domain=domain,
        resources=by_key,
        services=services,
        endpoints=endpoints,
        virtual_services={h: tuple(v) for h, v in vs_by_host.items()},
        wildcard_virtual_services=tuple(wildcard),
        delegates=delegates,
        destination_rules=drs,
        workloads=workloads,
        instances=ready,
        gateways=gateways,
        gateway_virtual_services={k: tuple(v) for k, v in bound.items()},
        peer_authentications=peer_auth,
        telemetries=telemetry.index(r for r in by_key.values() if isinstance(r, tel.Telemetry)),
        intercepts=intercepts.by_service(
            workloads.values(),
            {
                s.hostname: (s.namespace, s.selector)
                for s in services.values()
                if s.origin == "kubernetes" and s.selector
            },
        ),
        workload_endpoints=workload_endpoints,
    )
    return _reuse(snap, previous) if previous is not None else snap


def _planned(workload: Workload) -> Instance:
    """What every instance of `workload` registers as, but its address and ports."""
    ports = workload.spec.ports
    return Instance(
        id=f"{workload.name}.{workload.namespace}",
        workload=workload.name,
        namespace=workload.namespace,
        labels=dict(workload.metadata.labels),
        service_account=workload.spec.serviceAccount,
        address="",
        ports={p.port: 0 for p in ports},
        port_names={p.name: p.port for p in ports if p.name},
        locality=workload.spec.locality or "",
    )


def _reuse(new: Snapshot, old: Snapshot) -> Snapshot:
    """Swap in the old snapshot's objects wherever they equal the new ones."""

    return Snapshot(
        version=new.version,
        domain=new.domain,
        resources=_keep(new.resources, old.resources),
        services=_keep(new.services, old.services),
        endpoints=_keep(new.endpoints, old.endpoints),
        virtual_services=_keep(new.virtual_services, old.virtual_services),
        wildcard_virtual_services=(
            old.wildcard_virtual_services
            if old.wildcard_virtual_services == new.wildcard_virtual_services
            else new.wildcard_virtual_services
        ),
        delegates=_keep(new.delegates, old.delegates),
        destination_rules=_keep(new.destination_rules, old.destination_rules),
        workloads=_keep(new.workloads, old.workloads),
        instances=old.instances if old.instances == new.instances else new.instances,
        gateways=_keep(new.gateways, old.gateways),
        gateway_virtual_services=_keep(new.gateway_virtual_services, old.gateway_virtual_services),
        peer_authentications=_keep(new.peer_authentications, old.peer_authentications),
        telemetries=_keep(new.telemetries, old.telemetries),
        intercepts=_keep(new.intercepts, old.intercepts),
        workload_endpoints=_keep(new.workload_endpoints, old.workload_endpoints),
    )


K = TypeVar("K")
V = TypeVar("V")


def _keep(new_map: Mapping[K, V], old_map: Mapping[K, V]) -> dict[K, V]:
    out: dict[K, V] = {}
    for k, v in new_map.items():
        o = old_map.get(k)
        out[k] = o if o is not None and o == v else v
    return out


def _protocol_of(name: str | None, app_protocol: str | None) -> str:
    """Istio's protocol selection: appProtocol first, then the port name's prefix."""
    candidates = [app_protocol or "", (name or "").split("-")[0]]
    for c in candidates:
        c = c.lower()
        if c in ("http", "http2", "grpc", "grpc-web", "tcp", "tls", "https", "mongo", "udp"):
            return {"grpc-web": "HTTP"}.get(c, c.upper())
        if c in ("h2c", "kubernetes.io/h2c"):
            return "HTTP2"
    # Ami is an HTTP mesh first: unnamed ports are treated as HTTP (Istio sniffs them).
    return "HTTP"


def _upstream_h2(r: kube.Service) -> set[str]:
    """The ports (names and numbers) Contour's `projectcontour.io/upstream-protocol.h2c`
    (or `.h2`: HTTP/2, which the mesh's mutual TLS carries) annotation names."""
    named: set[str] = set()
    for suffix in ("h2c", "h2"):
        value = r.metadata.annotations.get(kube.UPSTREAM_PROTOCOL + suffix, "")
        named.update(v.strip() for v in value.split(",") if v.strip())
    return named


def _kube_service(r: kube.Service, domain: str) -> MeshService:
    h2 = _upstream_h2(r)
    ports = tuple(
        ServicePort(
            name=p.name or str(p.port),
            port=p.port,
            target_port=p.targetPort if p.targetPort is not None else p.port,
            protocol=(
                "HTTP2"
                if str(p.port) in h2 or (p.name and p.name in h2)
                else _protocol_of(p.name, p.appProtocol)
            ),
        )
        for p in r.spec.ports
    )
    return MeshService(
        hostname=hosts.fqdn(r.name, r.namespace, domain),
        name=r.name,
        namespace=r.namespace,
        ports=ports,
        selector=dict(r.spec.selector),
    )


def _kube_endpoints(
    svc: MeshService, sp: ServicePort, selectable: _Selectable
) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    if not svc.selector:
        return ()
    for i in selectable.select_instances(svc.namespace, svc.selector):
        target = sp.target_port
        workload_port = i.port_names.get(target) if isinstance(target, str) else target
        if workload_port is None or workload_port not in i.ports:
            continue
        out.append(
            Endpoint(
                address=i.address,
                port=i.ports[workload_port],
                labels=dict(i.labels),
                workload=i.workload,
                namespace=i.namespace,
                service_account=i.service_account,
                locality=i.locality,
                # Every registered instance runs beside its own sidecar.
                tls_mode=mtls.endpoint_tls_mode(
                    selectable.peer_auth, i.namespace, i.labels, workload_port, sidecar=True
                ),
            )
        )
    for we in selectable.select_entries(svc.namespace, svc.selector):
        ep = _entry_endpoint(we.spec, sp, we.namespace, selectable.peer_auth)
        if ep is not None:
            out.append(ep)
    return tuple(out)


def _entry_endpoint(
    spec: net.WorkloadEntrySpec, sp: ServicePort, namespace: str, peer_auth: mtls.PeerAuthIndex
) -> Endpoint | None:
    if not spec.address:
        return None
    if sp.name in spec.ports:
        port = spec.ports[sp.name]
    elif isinstance(sp.target_port, int):
        port = sp.target_port
    else:
        return None
    return Endpoint(
        address=spec.address,
        port=port,
        labels=dict(spec.labels),
        namespace=namespace,
        service_account=spec.serviceAccount or "default",
        locality=spec.locality or "",
        weight=spec.weight or 1,
        tls_mode=mtls.endpoint_tls_mode(
            peer_auth,
            namespace,
            spec.labels,
            port,
            sidecar=spec.labels.get(mtls.TLS_MODE_LABEL) == mtls.TLS_MODE_ISTIO,
        ),
    )


def _service_entry(
    r: net.ServiceEntry, selectable: _Selectable
) -> Iterable[tuple[MeshService, dict[tuple[str, int], tuple[Endpoint, ...]]]]:
    spec = r.spec
    ports = tuple(
        ServicePort(
            name=p.name,
            port=p.number,
            target_port=p.targetPort or p.number,
            protocol=p.protocol,
        )
        for p in spec.ports
    )
    selector = dict(spec.workloadSelector.labels) if spec.workloadSelector else None
    for host in spec.hosts:
        svc = MeshService(
            hostname=host.lower(),
            name=host.lower(),
            namespace=r.namespace,
            ports=ports,
            origin="service-entry",
            location=spec.location,
            resolution=spec.resolution,
            selector=selector,
        )
        eps: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
        for sp in ports:
            found: list[Endpoint] = []
            for e in spec.endpoints:
                ep = _entry_endpoint(e, sp, r.namespace, selectable.peer_auth)
                if ep is not None:
                    found.append(ep)
            if selector is not None:
                kube_like = MeshService(
                    hostname=svc.hostname,
                    name=svc.name,
                    namespace=svc.namespace,
                    ports=ports,
                    selector=selector,
                )
                found.extend(_kube_endpoints(kube_like, sp, selectable))
            eps[(svc.hostname, sp.port)] = tuple(found)
        yield svc, eps
