"""A Knative Revision's pod spec (serving.knative.dev/v1): containers, probes, timeouts.

The fields are the subset of a Kubernetes PodSpec that Knative Serving accepts
(knative/serving `pkg/apis/serving/fieldmask.go`). Of those:

- what changes how the app runs (volumes, envFrom, `valueFrom`'s `fieldRef`, init containers,
  startup probes, exec and gRPC probes, host namespaces) is typed
  `NotSupported`: an error that says so, never a silent ignore;
- what only Kubernetes' scheduler or kubelet reads (image pull policy and secrets,
  security contexts, affinity, tolerations, node selectors, DNS settings, ...) is
  accepted and ignored, so Knative YAML loads unchanged;
- `resources` is kept as written.

Fields Knative itself refuses (`lifecycle`, `restartPolicy`, `nodeName`, ...) are
unknown fields here as well.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import (
    DNS_SUBDOMAIN,
    NotSupported,
    Port,
    Strict,
    TypeName,
    UnsupportedValues,
    show,
)
from amimesh.resources.workload import EnvVar as WorkloadEnvVar

# Knative's defaults (config-defaults): max-revision-timeout-seconds and
# container-concurrency-max-limit.
MAX_TIMEOUT_SECONDS = 600
MAX_CONTAINER_CONCURRENCY = 1000

_KUBE_ONLY = "accepted and ignored: only Kubernetes' scheduler or kubelet reads it"
_PULL = "accepted and ignored: Ami pulls no images"
_SECURITY = "accepted and ignored: local processes run as the user who runs Ami"
_KEPT = "kept for Kubernetes; not enforced on local processes"


def _probe_port(value: Any) -> Any:
    """A probe's port: a number (0, Knative's default, means the serving port) or a name."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a port number or a port name, got {show(value)}")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not 0 <= value <= 65535:
        raise ValueError(f"must be a port number from 0 to 65535, got {value}")
    if isinstance(value, str) and not value:
        raise ValueError("must not be empty")
    return value


ProbePort = Annotated[
    int | str, TypeName("port or port name (0: the serving port)"), BeforeValidator(_probe_port)
]
Quantity = Annotated[str | int | float, TypeName("quantity")]
_SCHEME_NOT_YET = UnsupportedValues(("HTTPS",), uppercase=True)
Scheme = Annotated[Literal["HTTP"], _SCHEME_NOT_YET, BeforeValidator(_SCHEME_NOT_YET)]


class EnvVar(WorkloadEnvVar):
    """A container's variable, as a Workload's (a value, or `valueFrom` a key)."""

    def workload_entry(self) -> dict[str, Any]:
        """The entry of a derived Workload's `env`: the value, or the reference (the
        control plane reads it for the node agents)."""
        if self.valueFrom is not None:
            return {"name": self.name, "valueFrom": self.valueFrom.model_dump(exclude_none=True)}
        return {"name": self.name, "value": self.value}


class ContainerPort(Strict):
    containerPort: Port
    name: Literal["", "http1", "h2c"] = Field(
        default="", description='the protocol: "http1" (default) or "h2c" (HTTP/2 cleartext)'
    )
    protocol: Literal["TCP", ""] = "TCP"


class HTTPHeader(Strict):
    name: str = Field(min_length=1)
    value: str = ""


class HTTPGetAction(Strict):
    path: str = "/"
    port: ProbePort | None = None
    scheme: Scheme = "HTTP"
    httpHeaders: list[HTTPHeader] = Field(default_factory=list)
    host: NotSupported = None


class TCPSocketAction(Strict):
    port: ProbePort | None = None
    host: NotSupported = None


class Probe(Strict):
    """Knative's readiness probe: without `periodSeconds` (or with 0) Knative probes
    aggressively until ready, and then `timeoutSeconds` and `failureThreshold` must be
    left out."""

    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    exec: NotSupported = None
    grpc: NotSupported = None
    initialDelaySeconds: int = Field(default=0, ge=0)
    periodSeconds: int = Field(default=0, ge=0)
    timeoutSeconds: int = Field(default=0, ge=0)
    successThreshold: int = Field(default=0, ge=0)
    failureThreshold: int = Field(default=0, ge=0)
    terminationGracePeriodSeconds: int | None = Field(default=None, description=_KUBE_ONLY)


class ResourceRequirements(Strict):
    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


class Container(Strict):
    name: str = ""
    image: str = Field(description="kept for Kubernetes; locally `command` runs")
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: str | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    readinessProbe: Probe | None = None
    resources: ResourceRequirements | None = Field(default=None, description=_KEPT)
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description=_PULL
    )
    securityContext: dict[str, Any] | None = Field(default=None, description=_SECURITY)
    terminationMessagePath: str | None = Field(default=None, description=_KUBE_ONLY)
    terminationMessagePolicy: Literal["File", "FallbackToLogsOnError"] | None = Field(
        default=None, description=_KUBE_ONLY
    )
    envFrom: NotSupported = None
    volumeMounts: NotSupported = None
    livenessProbe: Probe | None = Field(
        default=None,
        description="failing, the app is restarted (Kubernetes' defaults: every 10 s, 3 failures)",
    )
    startupProbe: NotSupported = None


class RevisionSpec(Strict):
    """A Revision's spec, and a Service's or Configuration's `spec.template.spec`."""

    containers: list[Container] = Field(min_length=1)
    containerConcurrency: int | None = Field(
        default=None,
        ge=0,
        le=MAX_CONTAINER_CONCURRENCY,
        description="in-flight requests per instance; 0: no limit",
    )
    timeoutSeconds: int | None = Field(
        default=None, ge=0, le=MAX_TIMEOUT_SECONDS, description="0 or unset: 300"
    )
    responseStartTimeoutSeconds: int | None = Field(default=None, ge=0)
    idleTimeoutSeconds: int | None = Field(default=None, ge=0)
    serviceAccountName: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="default: default"
    )
    imagePullSecrets: list[Any] | None = Field(default=None, description=_PULL)
    enableServiceLinks: bool | None = Field(default=None, description=_KUBE_ONLY)
    automountServiceAccountToken: bool | None = Field(default=None, description=_KUBE_ONLY)
    securityContext: dict[str, Any] | None = Field(default=None, description=_SECURITY)
    affinity: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    nodeSelector: dict[str, str] | None = Field(default=None, description=_KUBE_ONLY)
    tolerations: list[Any] | None = Field(default=None, description=_KUBE_ONLY)
    topologySpreadConstraints: list[Any] | None = Field(default=None, description=_KUBE_ONLY)
    priorityClassName: str | None = Field(default=None, description=_KUBE_ONLY)
    schedulerName: str | None = Field(default=None, description=_KUBE_ONLY)
    runtimeClassName: str | None = Field(default=None, description=_KUBE_ONLY)
    dnsPolicy: str | None = Field(default=None, description=_KUBE_ONLY)
    dnsConfig: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    volumes: NotSupported = None
    initContainers: NotSupported = None
    hostAliases: NotSupported = None
    hostNetwork: NotSupported = None
    hostPID: NotSupported = None
    hostIPC: NotSupported = None
    shareProcessNamespace: NotSupported = None
