"""The findings `ami analyze` reports: their codes, their shape, shared helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from amimesh.model.snapshot import Snapshot
from amimesh.resources import gateway_api as ga
from amimesh.resources import istio_authz as authz
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import kube

Severity = Literal["Error", "Warning", "Info"]

MESH_GATEWAY = "mesh"
GATEWAY_KIND = "Gateway"


@dataclass(frozen=True)
class Code:
    code: str
    severity: Severity
    title: str


# Every finding Ami reports. Codes are stable: scripts and docs may name them.
UNKNOWN_HOST = Code("AMI0101", "Error", "VirtualService routes to an unknown host")
UNKNOWN_SUBSET = Code("AMI0102", "Error", "VirtualService routes to an undefined subset")
UNKNOWN_PORT = Code("AMI0103", "Error", "VirtualService routes to a port the service lacks")
UNKNOWN_DELEGATE = Code("AMI0104", "Error", "VirtualService delegates to a missing delegate")
UNKNOWN_GATEWAY = Code("AMI0105", "Error", "VirtualService is bound to a missing Gateway")
CONFLICTING_HOSTS = Code("AMI0106", "Warning", "several VirtualServices for one host")
HOST_WITHOUT_SERVICE = Code("AMI0107", "Warning", "VirtualService host names no service")
UNUSED_DELEGATE = Code("AMI0108", "Info", "delegate VirtualService is used by no route")
RULE_UNKNOWN_HOST = Code("AMI0201", "Warning", "DestinationRule for an unknown host")
EMPTY_SUBSET = Code("AMI0202", "Warning", "DestinationRule subset selects no workload")
RULE_FIELD_IGNORED = Code("AMI0203", "Info", "DestinationRule setting meaningless on one machine")
SERVICE_NO_WORKLOAD = Code("AMI0301", "Warning", "Service selects no workload")
SERVICE_NO_TARGET_PORT = Code("AMI0302", "Warning", "no selected workload declares targetPort")
SERVICE_FIELD_IGNORED = Code("AMI0303", "Info", "Service field that means nothing on one machine")
GATEWAY_FIELD_IGNORED = Code("AMI0401", "Info", "Gateway field that Istio and Ami ignore")
GATEWAY_API_IGNORED = Code(
    "AMI0402", "Info", "Gateway API listener or Gateway not run on one machine"
)
POLICY_TARGETS_NOTHING = Code("AMI0501", "Warning", "policy's targetRefs attach it to no proxy")
PROXY_FIELD_IGNORED = Code(
    "AMI0601", "Info", "Sidecar, ProxyConfig or EnvoyFilter field ignored on one machine"
)
TELEMETRY_FIELD_IGNORED = Code("AMI0701", "Info", "Telemetry setting Ami accepts and cannot honour")
WORKLOAD_ENV_MISSING = Code(
    "AMI0801", "Error", "Workload variable from a ConfigMap or Secret key that is not there"
)

CODES: tuple[Code, ...] = (
    UNKNOWN_HOST,
    UNKNOWN_SUBSET,
    UNKNOWN_PORT,
    UNKNOWN_DELEGATE,
    UNKNOWN_GATEWAY,
    CONFLICTING_HOSTS,
    HOST_WITHOUT_SERVICE,
    UNUSED_DELEGATE,
    RULE_UNKNOWN_HOST,
    EMPTY_SUBSET,
    RULE_FIELD_IGNORED,
    SERVICE_NO_WORKLOAD,
    SERVICE_NO_TARGET_PORT,
    SERVICE_FIELD_IGNORED,
    GATEWAY_FIELD_IGNORED,
    GATEWAY_API_IGNORED,
    POLICY_TARGETS_NOTHING,
    PROXY_FIELD_IGNORED,
    TELEMETRY_FIELD_IGNORED,
    WORKLOAD_ENV_MISSING,
)


@dataclass(frozen=True)
class Finding:
    """One problem: `field` is a path such as `spec.http[0].route[1].destination.host`."""

    code: str
    severity: Severity
    kind: str
    namespace: str
    name: str
    field: str
    message: str
    hint: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, str]:
        """JSON form, as the API and `ami analyze -o json` give it."""
        return {
            "code": self.code,
            "severity": self.severity,
            "resource": self.ref,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


def finding(
    code: Code,
    resource: net.VirtualService
    | net.DestinationRule
    | kube.Service
    | gw.Gateway
    | ga.Gateway
    | authz.AuthorizationPolicy
    | authz.RequestAuthentication
    | tel.Telemetry,
    field: str,
    message: str,
    hint: str,
) -> Finding:
    return Finding(
        code=code.code,
        severity=code.severity,
        kind=resource.kind,
        namespace=resource.namespace,
        name=resource.name,
        field=field,
        message=message,
        hint=hint,
    )


def of_type(snap: Snapshot, kind: type[net.VirtualService]) -> list[net.VirtualService]:
    return [r for r in snap.resources.values() if isinstance(r, kind)]


def show_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"
