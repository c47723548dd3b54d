"""Ami's own Workload (ami.dev/v1alpha1): a local process with labels and ports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from amimesh.resources.fields import (
    DNS_SUBDOMAIN,
    NotSupported,
    Port,
    PortOrName,
    Strict,
    no_nul,
)
from amimesh.resources.meta import Resource


class WorkloadPort(Strict):
    name: str | None = None
    port: Port
    protocol: Literal["HTTP", "HTTP2", "GRPC", "TCP"] = "HTTP"


# What a process is started with: exec takes no NUL byte in any of it.
Arg = Annotated[str, AfterValidator(no_nul)]


class KeySelector(Strict):
    """One key of a ConfigMap or Secret of the Workload's namespace."""

    name: str = Field(min_length=1, max_length=253, description="the ConfigMap or Secret")
    key: str = Field(min_length=1, max_length=253)
    optional: bool = Field(default=False, description="true: without it, the variable is left out")


class EnvVarSource(Strict):
    configMapKeyRef: KeySelector | None = None
    secretKeyRef: KeySelector | None = None
    fieldRef: NotSupported = None
    resourceFieldRef: NotSupported = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvVarSource:
        if (self.configMapKeyRef is None) == (self.secretKeyRef is None):
            raise ValueError("must set exactly one of configMapKeyRef, secretKeyRef")
        return self


class EnvVar(Strict):
    name: Arg = Field(min_length=1)
    value: Arg = Field(default="", description="$(VAR) of earlier entries is expanded")
    valueFrom: EnvVarSource | None = Field(
        default=None,
        description=(
            "a ConfigMap's or Secret's key, read when the node agent is given the Workload "
            "(the API and `ami get` show the reference, never a Secret's value)"
        ),
    )

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.valueFrom is not None and self.value:
            raise ValueError("valueFrom: may not be set when `value` is not empty")
        return self


class HTTPGetAction(Strict):
    path: str = "/"
    port: PortOrName | None = None


class TCPSocketAction(Strict):
    port: PortOrName | None = None


class Probe(Strict):
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    initialDelaySeconds: float = Field(default=0, ge=0)
    periodSeconds: float = Field(default=1, gt=0)
    timeoutSeconds: float = Field(default=1, gt=0)
    failureThreshold: int = Field(default=3, ge=1)
    exec: NotSupported = None
    grpc: NotSupported = None

    @model_validator(mode="after")
    def _one_action(self) -> Probe:
        if (self.httpGet is None) == (self.tcpSocket is None):
            raise ValueError("must set exactly one of httpGet, tcpSocket")
        return self


# The most requests an instance's sidecar has in flight to its app at once (per HTTP
# port); more wait in the sidecar, up to 10 times as many, and beyond that get a 503.
# Knative's `containerConcurrency`, as its queue-proxy enforces it.
MAX_CONCURRENCY = "ami.dev/max-concurrency"
MAX_CONCURRENCY_LIMIT = 1000  # Knative's bound on containerConcurrency
_WHOLE = re.compile(r"[0-9]{1,9}")


def max_concurrency_problem(annotations: Mapping[str, str]) -> str | None:
    """What is wrong with the `ami.dev/max-concurrency` annotation, if anything."""
    text = annotations.get(MAX_CONCURRENCY)
    if text is None:
        return None
    if _WHOLE.fullmatch(text) and int(text) <= MAX_CONCURRENCY_LIMIT:
        return None
    return f"must be a whole number from 0 to {MAX_CONCURRENCY_LIMIT} (0: no limit)"


def max_concurrency(annotations: Mapping[str, str]) -> int:
    """The in-flight limit the annotation sets; 0 (no limit) when absent or invalid."""
    if max_concurrency_problem(annotations) is not None:
        return 0
    return int(annotations.get(MAX_CONCURRENCY, "0"))


# Knative's `timeoutSeconds` and `idleTimeoutSeconds`, as its queue-proxy enforces them,
# enforced by an instance's sidecar: a request to the app that runs longer than
# `ami.dev/request-timeout` seconds (from the end of the request), or that receives no
# byte for `ami.dev/idle-timeout` seconds, is ended (a 504 if the response has not
# started, else the stream is reset). 0 or absent: no limit.
REQUEST_TIMEOUT = "ami.dev/request-timeout"
IDLE_TIMEOUT = "ami.dev/idle-timeout"
TIMEOUT_LIMIT = 2**31 - 1  # seconds; what Kubernetes' int32 fields allow


def timeout_problem(annotations: Mapping[str, str], key: str) -> str | None:
    """What is wrong with the timeout annotation `key`, if anything."""
    text = annotations.get(key)
    if text is None or (text.isascii() and text.isdigit() and int(text) <= TIMEOUT_LIMIT):
        return None
    return "must be a whole number of seconds (0: no limit)"


def timeout_s(annotations: Mapping[str, str], key: str) -> int:
    """The seconds the timeout annotation `key` sets; 0 when absent or invalid."""
    if timeout_problem(annotations, key) is not None:
        return 0
    return int(annotations.get(key, "0"))


# Live reload (docs/devloop.md): "true" restarts the Workload's instances, one at a
# time, when files under its working directory change; "false" keeps `ami up --reload`
# from doing so. A Knative Service's revision template takes it too (a new revision).
RELOAD = "ami.dev/reload"


def reload_problem(annotations: Mapping[str, str]) -> str | None:
    """What is wrong with the `ami.dev/reload` annotation, if anything."""
    text = annotations.get(RELOAD)
    if text is None or text in ("true", "false"):
        return None
    return 'must be "true" or "false"'


def reload_wanted(annotations: Mapping[str, str], *, has_working_dir: bool, default: bool) -> bool:
    """Whether a program is reloaded when its files change: its `ami.dev/reload`
    annotation says so; without one, `default` (`ami up --reload`) for one with its own
    `workingDir` (without one it runs in the mesh's directory, its config included,
    which is not one program's source)."""
    text = annotations.get(RELOAD)
    if text == "true":
        return True
    if text == "false":
        return False
    return default and has_working_dir


_EXPANDED = "$(VAR) is expanded as in Kubernetes (docs/runtime.md)"


class WorkloadSpec(Strict):
    command: list[Arg] = Field(min_length=1, description=_EXPANDED)
    args: list[Arg] = Field(default_factory=list, description=_EXPANDED)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: Arg | None = None
    serviceAccount: str = Field(
        default="default",
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="a Kubernetes service account name; the identity is "
        "spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT",
    )
    replicas: int = Field(default=1, ge=0)
    ports: list[WorkloadPort] = Field(default_factory=list)
    readinessProbe: Probe | None = None
    livenessProbe: Probe | None = Field(
        default=None,
        description=(
            "failing failureThreshold times in a row, the app is stopped and restarted by "
            "its restartPolicy, as the kubelet restarts a container"
        ),
    )
    restartPolicy: Literal["Always", "OnFailure", "Never"] = "Always"
    locality: str | None = None


class Workload(Resource):
    """Labels are `metadata.labels` (app, version, ...), as on a Kubernetes pod."""

    KIND: ClassVar[str] = "Workload"
    API_GROUP: ClassVar[str] = "ami.dev"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1alpha1",)
    spec: WorkloadSpec
