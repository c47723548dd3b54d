"""Where a Destination points, and the status and problems of what the expansion
reads. Pure.

A `ref` names a Knative Service (`http://NAME.NS.svc.cluster.local`, its route), a
Kubernetes Service (`...:PORT`, its first port), a Broker (its address at the broker's
ingress), a channel, a Sequence or a Parallel (their first channel); a `uri` is taken
as written, and with a `ref` it is a path on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.eventing.config import BrokerConfig, broker_url, channel_url
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
