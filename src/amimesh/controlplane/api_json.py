"""The JSON the HTTP API speaks: resources, proxies' sync state, instances.

Plain functions from the control plane's values to JSON-compatible dicts (and back,
for instances), so the shapes are tested without a server.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance
from amimesh.resources.kube import Secret
from amimesh.resources.meta import Resource
from amimesh.translate.type_urls import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from amimesh.xds.status import Nack, ProxySyncStatus, TypeSyncStatus

# The xDS types a proxy's status lists, in push order, by their usual short names.
TYPE_NAMES: dict[str, str] = {
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    LISTENER: "LDS",
    ROUTE: "RDS",
    SECRET: "SDS",
}

SYNCED = "SYNCED"
NOT_SENT = "NOT SENT"
STALE = "STALE"
NACK = "NACK"


def resource_json(
    resource: Resource, source: str | None = None, *, redact: bool = True
) -> dict[str, Any]:
    """A resource as `kubectl get -o json` shows it: defaults and unset fields left out,
    the namespace always written. `source` (where it comes from) is added when given.
    A Secret's values are shown redacted, unless `redact` is False (what the control
    plane keeps on disk for itself, never what it serves)."""
    if redact and isinstance(resource, Secret):
        resource = resource.redacted()
    data = resource.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    data["metadata"] = {"name": resource.name, "namespace": resource.namespace, **data["metadata"]}
    if source is not None:
        data["source"] = source
    return data


def type_state(status: TypeSyncStatus | None) -> str:
    """SYNCED, NOT SENT, STALE (sent, not yet acknowledged) or NACK (rejected)."""
    if status is None or not status.sent_version:
        return NOT_SENT
    if status.rejected:
        return NACK
    if status.awaiting_ack or status.acked_version != status.sent_version:
        return STALE
    return SYNCED


def nack_json(nack: Nack | None) -> dict[str, Any] | None:
    if nack is None:
        return None
    return {
        "version": nack.version,
        "nonce": nack.nonce,
        "message": nack.message,
        "code": nack.code,
        "resource_names": list(nack.resource_names),
        "at": nack.at,
    }


def type_json(status: TypeSyncStatus) -> dict[str, Any]:
    return {
        "type_url": status.type_url,
        "state": type_state(status),
        "sent_version": status.sent_version,
        "acked_version": status.acked_version,
        "awaiting_ack": status.awaiting_ack,
        "rejected": status.rejected,
        "subscribed": len(status.subscribed),
        "wildcard": status.wildcard,
        "responses_sent": status.responses_sent,
        "resources_sent": status.resources_sent,
        "last_nack": nack_json(status.last_nack),
    }


def proxy_json(status: ProxySyncStatus, proxy: Proxy | None) -> dict[str, Any]:
    """One ADS stream: who the proxy is, and per xDS type what it holds."""
    types: dict[str, Any] = {}
    for t in status.types:
        types[TYPE_NAMES.get(t.type_url, t.type_url)] = type_json(t)
    out: dict[str, Any] = {
        "id": status.proxy_id,
        "stream_id": status.stream_id,
        "mode": status.mode,
        "connected_since": status.connected_since,
        "synced": status.synced,
        "types": types,
    }
    if proxy is not None:
        out.update(
            kind=proxy.kind,
            workload=proxy.workload,
            namespace=proxy.namespace,
            labels=dict(proxy.labels),
            address=proxy.address,
            admin_port=proxy.admin_port,
        )
    return out


def instance_json(instance: Instance) -> dict[str, Any]:
    """A registered instance, in the shape of the runtime's instance status."""
    return {
        "instance": instance.id,
        "workload": instance.workload,
        "namespace": instance.namespace,
        "pid": None,
        "state": "ready" if instance.ready else "not-ready",
        "ready": instance.ready,
        "restarts": 0,
        "since": None,
        "labels": dict(instance.labels),
        "address": instance.address,
        "ports": {str(k): v for k, v in sorted(instance.ports.items())},
    }


PortNumber = Annotated[int, Field(ge=1, le=65535)]


class InstanceBody(BaseModel):
    """`PUT /api/v1/instances/{id}`: what an agent or tool says about a live instance."""

    model_config = ConfigDict(extra="forbid")

    workload: str = Field(min_length=1)
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    service_account: str = "default"
    address: str = "127.0.0.1"
    # workload port -> host port of the instance's sidecar inbound listener
    ports: dict[PortNumber, PortNumber] = Field(default_factory=dict)
    port_names: dict[str, PortNumber] = Field(default_factory=dict)
    locality: str = ""
    ready: bool = True


class BadBody(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def instance_from_json(instance_id: str, data: Any) -> Instance:
    """An `Instance` from a request body; `BadBody` lists every problem (`field: message`)."""
    try:
        body = InstanceBody.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "body"
            problems.append(f"{loc}: {e['msg']}")
        raise BadBody(problems) from None
    return Instance(
        id=instance_id,
        workload=body.workload,
        namespace=body.namespace,
        labels=body.labels,
        service_account=body.service_account,
        address=body.address,
        ports=body.ports,
        port_names=body.port_names,
        locality=body.locality,
        ready=body.ready,
    )


def instance_body(instance: Instance) -> dict[str, Any]:
    """An `Instance` as the body `instance_from_json` reads (with its id)."""
    return {
        "id": instance.id,
        "workload": instance.workload,
        "namespace": instance.namespace,
        "labels": dict(instance.labels),
        "service_account": instance.service_account,
        "address": instance.address,
        "ports": {str(k): v for k, v in sorted(instance.ports.items())},
        "port_names": dict(instance.port_names),
        "locality": instance.locality,
        "ready": instance.ready,
    }
