"""The kinds Ami reads: (API group, kind) -> model class and its semantic checks.

To add a kind, write its model (a `Resource` subclass with KIND, API_GROUP and
API_VERSIONS) and, if it needs checks beyond the schema, a function
`check_x(resource) -> Iterable[Issue]`; then add `Kind.of(Model, check_x)` to
`_BUILTIN` below. A caller can also extend a registry without touching this module:
`KINDS.with_kinds(Kind.of(Model))`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from amimesh.resources import (
    checks_authz,
    checks_core,
    checks_eventing,
    checks_gateway,
    checks_networking,
    checks_security,
    checks_serving,
    checks_tekton,
    checks_telemetry,
    checks_triggers,
    checks_virtualservice,
    kube,
    tekton,
    tekton_triggers,
    workload,
)
from amimesh.resources import istio_authz as authz
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import knative_eventing as eventing
from amimesh.resources import knative_messaging as messaging
from amimesh.resources import knative_serving as serving
from amimesh.resources.errors import Issue
from amimesh.resources.meta import Resource

R = TypeVar("R", bound=Resource)
Check = Callable[[Resource], Iterable[Issue]]


def _no_check(resource: Resource) -> Iterable[Issue]:
    return ()


@dataclass(frozen=True)
class Kind:
    model: type[Resource]
    check: Check = _no_check

    @classmethod
    def of(cls, model: type[R], check: Callable[[R], Iterable[Issue]] | None = None) -> Kind:
        """A kind whose `check` receives the model's own type."""
        if check is None:
            return cls(model)
        typed_check = check

        def run(resource: Resource) -> Iterable[Issue]:
            if not isinstance(resource, model):
                raise TypeError(f"expected {model.__name__}, got {type(resource).__name__}")
            return typed_check(resource)

        return cls(model, run)

    @property
    def name(self) -> str:
        return self.model.KIND

    @property
    def group(self) -> str:
        return self.model.API_GROUP

    @property
    def api_versions(self) -> tuple[str, ...]:
        """Full apiVersion strings: `v1`, `networking.istio.io/v1beta1`."""
        g = self.group
        return tuple(f"{g}/{v}" if g else v for v in self.model.API_VERSIONS)


class UnknownKind(LookupError):
    """Raised by `KindRegistry.resolve`; `field` is "kind" or "apiVersion"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` -> (`networking.istio.io`, `v1`); `v1` -> (``, `v1`)."""
    group, _, version = api_version.rpartition("/")
    return group, version


class KindRegistry(Mapping[tuple[str, str], Kind]):
    """Immutable: (API group, kind name) -> Kind."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._kinds: dict[tuple[str, str], Kind] = {}
        refs: dict[str, Kind] = {}
        for k in kinds:
            key = (k.group, k.name)
            if key in self._kinds:
                raise ValueError(f"kind {k.name} of group {k.group!r} registered twice")
            ref = k.model.qualified_kind()
            if ref in refs:
                raise ValueError(
                    f"kind {k.name} of group {k.group!r} and of group {refs[ref].group!r} "
                    "would share refs and store keys; set QUALIFIED on one"
                )
            self._kinds[key] = k
            refs[ref] = k

    def __getitem__(self, key: tuple[str, str]) -> Kind:
        return self._kinds[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def with_kinds(self, *kinds: Kind) -> KindRegistry:
        return KindRegistry([*self._kinds.values(), *kinds])

    def resolve(self, api_version: str, kind: str) -> Kind:
        """The kind for a document's apiVersion and kind, or `UnknownKind` saying why not."""
        group, version = split_api_version(api_version)
        found = self._kinds.get((group, kind))
        if found is None:
            raise UnknownKind(
                "kind", f'unknown kind "{kind}" ({api_version}); Ami supports {self.supported()}'
            )
        if version not in found.model.API_VERSIONS:
            raise UnknownKind(
                "apiVersion",
                f"{kind} is not served at {api_version}; use " + " or ".join(found.api_versions),
            )
        return found

    def supported(self) -> str:
        """`Service (v1), VirtualService, DestinationRule (networking.istio.io/v1alpha3, v1)`."""
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for k in self._kinds.values():
            groups.setdefault((k.group, k.model.API_VERSIONS), []).append(k.name)
        parts = []
        for (group, versions), names in groups.items():
            prefix = f"{group}/" if group else ""
            parts.append(f"{', '.join(names)} ({prefix}{', '.join(versions)})")
        return ", ".join(parts)

    def check(self, resource: Resource) -> list[Issue]:
        """Semantic issues of a resource whose schema already validated."""
        kind = self._kinds.get((resource.API_GROUP, resource.KIND))
        return list(kind.check(resource)) if kind is not None else []


_BUILTIN = (
    Kind.of(kube.Service, checks_core.check_service),
    Kind.of(kube.ConfigMap, checks_serving.check_config_map),
    Kind.of(kube.Secret),
    Kind.of(workload.Workload, checks_core.check_workload),
    Kind.of(net.VirtualService, checks_virtualservice.check_virtual_service),
    Kind.of(net.DestinationRule, checks_networking.check_destination_rule),
    Kind.of(net.ServiceEntry, checks_networking.check_service_entry),
    Kind.of(net.WorkloadEntry, checks_networking.check_workload_entry),
    Kind.of(gw.Gateway, checks_gateway.check_gateway),
    Kind.of(sec.PeerAuthentication, checks_security.check_peer_authentication),
    Kind.of(authz.RequestAuthentication, checks_authz.check_request_authentication),
    Kind.of(authz.AuthorizationPolicy, checks_authz.check_authorization_policy),
    Kind.of(tel.Telemetry, checks_telemetry.check_telemetry),
    Kind.of(serving.Service, checks_serving.check_service),
    Kind.of(serving.Configuration, checks_serving.check_configuration),
    Kind.of(serving.Revision, checks_serving.check_revision),
    Kind.of(serving.Route, checks_serving.check_route),
    Kind.of(eventing.Broker, checks_eventing.check_broker),
    Kind.of(eventing.Trigger, checks_eventing.check_trigger),
    Kind.of(eventing.PingSource, checks_eventing.check_ping_source),
    Kind.of(eventing.SinkBinding, checks_eventing.check_sink_binding),
    Kind.of(eventing.ContainerSource, checks_eventing.check_container_source),
    Kind.of(eventing.ApiServerSource, checks_eventing.check_api_server_source),
    Kind.of(messaging.Channel, checks_eventing.check_channel),
    Kind.of(messaging.InMemoryChannel, checks_eventing.check_channel),
    Kind.of(messaging.NatsJetStreamChannel, checks_eventing.check_channel),
    Kind.of(messaging.Subscription, checks_eventing.check_subscription),
    Kind.of(messaging.Sequence, checks_eventing.check_sequence),
    Kind.of(messaging.Parallel, checks_eventing.check_parallel),
    Kind.of(tekton.Task, checks_tekton.check_task),
    Kind.of(tekton.Pipeline, checks_tekton.check_pipeline),
    Kind.of(tekton.TaskRun, checks_tekton.check_task_run),
    Kind.of(tekton.PipelineRun, checks_tekton.check_pipeline_run),
    Kind.of(tekton_triggers.EventListener, checks_triggers.check_event_listener),
    Kind.of(tekton_triggers.Trigger, checks_triggers.check_trigger),
    Kind.of(tekton_triggers.TriggerBinding, checks_triggers.check_trigger_binding),
    Kind.of(tekton_triggers.ClusterTriggerBinding, checks_triggers.check_trigger_binding),
    Kind.of(tekton_triggers.TriggerTemplate, checks_triggers.check_trigger_template),
)

KINDS = KindRegistry(_BUILTIN)
