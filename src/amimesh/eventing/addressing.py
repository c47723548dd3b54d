"""Where a Destination points, and the status and problems of what the expansion
reads. Pure.

A `ref` names a Knative Service (`http://NAME.NS.svc.cluster.local`, its route), a
Kubernetes Service (`...:PORT`, its first port), a Broker (its address at the broker's
ingress), a channel, a Sequence or a Parallel (their first channel); a `uri` is taken
as written, and with a `ref` it is a path on it.

`direct_cluster` says when the broker may deliver to a subscriber straight to its
instances' inbound sidecars (mutual TLS as the broker's identity) instead of through
its own sidecar: when that sidecar would do nothing but pick an instance, retry a 503
and open mutual TLS, which the broker then does itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.eventing.config import BrokerConfig, broker_url, channel_url
from amimesh.model import hosts
from amimesh.resources import gateway_api as gw
from amimesh.resources import istio_envoyfilter as ief
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.resources import istio_sidecar as isc
from amimesh.resources import knative_eventing as ke
from amimesh.resources import knative_messaging as km
from amimesh.resources import knative_serving as ks
from amimesh.resources.kube import Service as KubeService
from amimesh.resources.meta import Resource

CLUSTER_DOMAIN = "svc.cluster.local"
Key = tuple[str, str, str]
NO_SERVER = "the mesh has no JetStream server: `ami up` starts one when its config has a Broker"


@dataclass(frozen=True)
class Problem:
    """A Trigger that cannot deliver: the resource, its field and why."""

    ref: str
    field: str
    message: str
    reason: str

    def __str__(self) -> str:
        return f"{self.ref}: {self.field}: {self.message}"


@dataclass
class EventingPlan:
    config: BrokerConfig
    derived: list[dict[str, Any]] = field(default_factory=list)
    status: dict[Key, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Credentials the control plane writes for the broker process: a file name (under
    # the runner's `secrets_dir`) and its text, `user:password`.
    secrets: dict[str, str] = field(default_factory=dict)


def ready_status(ready: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, str] = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        condition["reason"] = reason or "NotReady"
        if message:
            condition["message"] = message
    return {"conditions": [condition]}


def addressed(server: bool, url: str) -> dict[str, Any]:
    status = ready_status(server, "NoServer", NO_SERVER)
    if server:
        status["address"] = {"url": url}
    return status


def destination_url(dest: ke.Destination, namespace: str, resources: Sequence[Resource]) -> str:
    """The URL of a Destination, or "!" and why it has none."""
    ref = dest.ref
    if ref is None:
        return dest.uri or "!no ref or uri"
    ns = ref.namespace or namespace
    group = ref.apiVersion.rpartition("/")[0]
    path = dest.uri or ""
    if path and not path.startswith("/"):
        path = "/" + path
    if (group, ref.kind) == ("eventing.knative.dev", "Broker"):
        if not defined(resources, ke.Broker, ns, ref.name):
            return f'!no Broker "{ref.name}" in namespace "{ns}"'
        return broker_url(ns, ref.name) + path
    if group == km.MESSAGING_GROUP and ref.kind in {m.KIND for m in km.CHANNELS}:
        model = next(m for m in km.CHANNELS if m.KIND == ref.kind)
        if not defined(resources, model, ns, ref.name):
            return f'!no {ref.kind} "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, ref.name) + path
    if (group, ref.kind) == ("flows.knative.dev", "Sequence"):
        if not defined(resources, km.Sequence, ns, ref.name):
            return f'!no Sequence "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, f"{ref.name}-kn-sequence-0") + path
    if (group, ref.kind) == ("flows.knative.dev", "Parallel"):
        if not defined(resources, km.Parallel, ns, ref.name):
            return f'!no Parallel "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, f"{ref.name}-kn-parallel") + path
    if (group, ref.kind) == ("serving.knative.dev", "Service"):
        if not defined(resources, ks.Service, ns, ref.name):
            return f'!no Knative Service "{ref.name}" in namespace "{ns}"'
        return f"http://{ref.name}.{ns}.{CLUSTER_DOMAIN}{path}"
    if (group, ref.kind) == ("", "Service"):
        svc = next(
            (
                r
                for r in resources
                if isinstance(r, KubeService) and (r.namespace, r.name) == (ns, ref.name)
            ),
            None,
        )
        if svc is None:
            return f'!no Service "{ref.name}" in namespace "{ns}"'
        port = svc.spec.ports[0].port
        where = "" if port == 80 else f":{port}"
        return f"http://{ref.name}.{ns}.{CLUSTER_DOMAIN}{where}{path}"
    return f"!Ami cannot address {ref.kind} ({ref.apiVersion}) yet"


def defined(resources: Sequence[Resource], kind: type[Resource], ns: str, name: str) -> bool:
    return any(isinstance(r, kind) and (r.namespace, r.name) == (ns, name) for r in resources)


# Kinds any one of which changes what a sidecar's outbound hop does (or may), mesh-wide.
_ANY_CHANGES_OUTBOUND = (isc.Sidecar, ief.EnvoyFilter)


def direct_cluster(dest: ke.Destination, namespace: str, resources: Sequence[Resource]) -> str:
    """The cluster (`outbound|PORT||HOST`) of a subscriber that the broker may reach
    straight at its instances' inbound sidecars, or "" for the way through its sidecar.

    Only a Kubernetes Service of the mesh's own workloads (it has a selector) whose
    first port is HTTP/1.1 (not HTTP/2, gRPC or TCP), on the mesh's default route: no
    VirtualService (for the mesh), no DestinationRule and no ServiceEntry names its
    host, no Gateway API route has it as a parent, and nothing of the mesh-wide kinds
    that change outbound hops (a Sidecar, an EnvoyFilter) nor a PeerAuthentication
    turning mutual TLS off is there. Anything else keeps the broker's sidecar in the
    path, which applies it.
    """
    ref = dest.ref
    if ref is None or (ref.apiVersion.rpartition("/")[0], ref.kind) != ("", "Service"):
        return ""
    ns = ref.namespace or namespace
    svc = next(
        (
            r
            for r in resources
            if isinstance(r, KubeService) and (r.namespace, r.name) == (ns, ref.name)
        ),
        None,
    )
    if svc is None or not svc.spec.selector or not _plain_http(svc):
        return ""
    host = hosts.fqdn(ref.name, ns)
    for r in resources:
        if isinstance(r, _ANY_CHANGES_OUTBOUND):
            return ""
        if isinstance(r, sec.PeerAuthentication) and _turns_mtls_off(r):
            return ""
        if isinstance(r, net.VirtualService):
            mesh = not r.spec.gateways or "mesh" in r.spec.gateways
            if mesh and _names(r.spec.hosts, r.namespace, host):
                return ""
        elif isinstance(r, net.DestinationRule):
            if _names([r.spec.host], r.namespace, host):
                return ""
        elif isinstance(r, net.ServiceEntry):
            if _names(r.spec.hosts, r.namespace, host):
                return ""
        elif isinstance(r, gw.HTTPRoute | gw.GRPCRoute):
            if any(p.kind == "Service" for p in r.spec.parentRefs):
                return ""
    return f"outbound|{svc.spec.ports[0].port}||{host}"


# Port protocols (appProtocol, or the port name's prefix, as Istio selects them) other
# than HTTP/1.1: their outbound hop speaks another protocol to the instance.
_NOT_HTTP1 = frozenset(
    {"http2", "grpc", "h2c", "kubernetes.io/h2c", "tcp", "tls", "https", "mongo", "udp"}
)


def _plain_http(svc: KubeService) -> bool:
    """Whether the Service's first port is reached over HTTP/1.1 (and no annotation
    asks for HTTP/2 upstream)."""
    port = svc.spec.ports[0]
    choices = [(port.appProtocol or "").lower(), (port.name or "").split("-")[0].lower()]
    if any(c in _NOT_HTTP1 for c in choices):
        return False
    return not any("upstream-protocol" in k for k in svc.metadata.annotations)


def _names(patterns: Sequence[str], namespace: str, host: str) -> bool:
    """Whether any of a resource's host `patterns` (short names read in `namespace`,
    wildcards) covers `host`."""
    return any(hosts.wildcard_matches(hosts.expand(p, namespace), host) for p in patterns)


def _turns_mtls_off(policy: sec.PeerAuthentication) -> bool:
    modes = [policy.spec.mtls.mode] if policy.spec.mtls is not None else []
    modes += [m.mode for m in (policy.spec.portLevelMtls or {}).values()]
    return "DISABLE" in modes
