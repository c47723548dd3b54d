"""The kinds Ami reads: (API group, kind) -> model class and its semantic checks.

To add a kind, write its model (a `Resource` subclass with KIND, API_GROUP and
API_VERSIONS) and, if it needs checks beyond the schema, a function
`check_x(resource) -> Iterable[Issue]`; then add `Kind.of(Model, check_x)` to
`_BUILTIN` below. A caller can also extend a registry without touching this module:
`KINDS.with_kinds(Kind.of(Model))`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from amimesh.resources import (
    checks_authz,
    checks_core,
    checks_gateway,
    checks_networking,
    checks_security,
    checks_serving,
    checks_telemetry,
    checks_virtualservice,
    kube,
    workload,
)
from amimesh.resources import istio_authz as authz
from amimesh.resources import istio_gateway as gw
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.resources import istio_telemetry as tel
from amimesh.resources import knative_serving as serving
from amimesh.resources.errors import Issue
from amimesh.resources.meta import Resource

R = TypeVar("R", bound=Resource)
Check = Callable[[Resource], Iterable[Issue]]


def _no_check(resource: Resource) -> Iterable[Issue]:
    return ()


class Kind:
    """One kind: its model class and checks, known at once (`of`) or imported when
    first needed (`lazy`: the kinds most processes never see cost nothing to start)."""

    def __init__(
        self,
        group: str,
        name: str,
        versions: tuple[str, ...],
        qualified: str,
        load: Callable[[], tuple[type[Resource], Check]],
    ) -> None:
        self.group = group
        self.name = name
        self.versions = versions
        self.qualified = qualified
        self._load = load
        self._loaded: tuple[type[Resource], Check] | None = None

    @classmethod
    def of(cls, model: type[R], check: Callable[[R], Iterable[Issue]] | None = None) -> Kind:
        """A kind whose `check` receives the model's own type."""
        run = _typed(model, check)
        return cls(
            model.API_GROUP,
            model.KIND,
            model.API_VERSIONS,
            model.qualified_kind(),
            lambda: (model, run),
        )

    @classmethod
    def lazy(
        cls,
        group: str,
        name: str,
        versions: tuple[str, ...],
        model: str,
        check: str | None = None,
        *,
        qualified: bool = False,
    ) -> Kind:
        """A kind whose model (`module:Class`) and check (`module:function`) are imported
        on first use; what it declares here is checked against the model by a test."""

        def load() -> tuple[type[Resource], Check]:
            found = _import(model)
            assert isinstance(found, type) and issubclass(found, Resource)
            return found, _typed(found, _import(check) if check else None)

        return cls(group, name, versions, f"{name}.{group}" if qualified else name, load)

    def _get(self) -> tuple[type[Resource], Check]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    @property
    def model(self) -> type[Resource]:
        return self._get()[0]

    def check(self, resource: Resource) -> Iterable[Issue]:
        return self._get()[1](resource)

    @property
    def api_versions(self) -> tuple[str, ...]:
        """Full apiVersion strings: `v1`, `networking.istio.io/v1beta1`."""
        g = self.group
        return tuple(f"{g}/{v}" if g else v for v in self.versions)


def _typed(model: type[Any], check: Callable[[Any], Iterable[Issue]] | None) -> Check:
    if check is None:
        return _no_check
    typed_check = check

    def run(resource: Resource) -> Iterable[Issue]:
        if not isinstance(resource, model):
            raise TypeError(f"expected {model.__name__}, got {type(resource).__name__}")
        return typed_check(resource)

    return run


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


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
            ref = k.qualified
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
        if version not in found.versions:
            raise UnknownKind(
                "apiVersion",
                f"{kind} is not served at {api_version}; use " + " or ".join(found.api_versions),
            )
        return found

    def supported(self) -> str:
        """`Service (v1), VirtualService, DestinationRule (networking.istio.io/v1alpha3, v1)`."""
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for k in self._kinds.values():
            groups.setdefault((k.group, k.versions), []).append(k.name)
        parts = []
        for (group, versions), names in groups.items():
            prefix = f"{group}/" if group else ""
            parts.append(f"{', '.join(names)} ({prefix}{', '.join(versions)})")
        return ", ".join(parts)

    def check(self, resource: Resource) -> list[Issue]:
        """Semantic issues of a resource whose schema already validated."""
        kind = self._kinds.get((resource.API_GROUP, resource.KIND))
        return list(kind.check(resource)) if kind is not None else []


EVENTING, SOURCES = "eventing.knative.dev", "sources.knative.dev"
MESSAGING, FLOWS = "messaging.knative.dev", "flows.knative.dev"
_EVENTING, _MESSAGING = "amimesh.resources.knative_eventing", "amimesh.resources.knative_messaging"
_EVENTING_CHECKS = "amimesh.resources.checks_eventing"
TEKTON, TEKTON_VERSIONS = "tekton.dev", ("v1", "v1beta1")
TRIGGERS, TRIGGERS_VERSIONS = "triggers.tekton.dev", ("v1beta1", "v1alpha1")
_TEKTON, _TEKTON_CHECKS = "amimesh.resources.tekton", "amimesh.resources.checks_tekton"
_TRIGGERS = "amimesh.resources.tekton_triggers"
_TRIGGERS_CHECKS = "amimesh.resources.checks_triggers"
ARGOCD, ARGOCD_VERSIONS = "argoproj.io", ("v1alpha1",)
_GATEWAY_API, _GATEWAY_API_CHECKS = (
    "amimesh.resources.gateway_api",
    "amimesh.resources.checks_gatewayapi",
)

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
    # Istio's per-proxy kinds, imported when first met.
    *(
        Kind.lazy(
            "networking.istio.io",
            name,
            versions,
            f"amimesh.resources.{module}:{name}",
            f"amimesh.resources.checks_sidecar:check_{check}",
        )
        for module, name, versions, check in (
            ("istio_sidecar", "Sidecar", net.ISTIO_NETWORKING_VERSIONS, "sidecar"),
            ("istio_sidecar", "ProxyConfig", ("v1beta1",), "proxy_config"),
            ("istio_envoyfilter", "EnvoyFilter", ("v1alpha3",), "envoy_filter"),
        )
    ),
    Kind.of(serving.Service, checks_serving.check_service),
    Kind.of(serving.Configuration, checks_serving.check_configuration),
    Kind.of(serving.Revision, checks_serving.check_revision),
    Kind.of(serving.Route, checks_serving.check_route),
    # Knative Eventing's kinds, imported when first met too.
    *(
        Kind.lazy(group, name, ("v1",), f"{module}:{name}", f"{_EVENTING_CHECKS}:{check}")
        for group, module, name, check in (
            (EVENTING, _EVENTING, "Broker", "check_broker"),
            (EVENTING, _EVENTING, "Trigger", "check_trigger"),
            (SOURCES, _EVENTING, "PingSource", "check_ping_source"),
            (SOURCES, _EVENTING, "SinkBinding", "check_sink_binding"),
            (SOURCES, _EVENTING, "ContainerSource", "check_container_source"),
            (SOURCES, _EVENTING, "ApiServerSource", "check_api_server_source"),
            (MESSAGING, _MESSAGING, "Channel", "check_channel"),
            (MESSAGING, _MESSAGING, "InMemoryChannel", "check_channel"),
            (MESSAGING, _MESSAGING, "Subscription", "check_subscription"),
            (FLOWS, _MESSAGING, "Sequence", "check_sequence"),
            (FLOWS, _MESSAGING, "Parallel", "check_parallel"),
        )
    ),
    Kind.lazy(
        MESSAGING,
        "NatsJetStreamChannel",
        ("v1alpha1",),
        f"{_MESSAGING}:NatsJetStreamChannel",
        f"{_EVENTING_CHECKS}:check_channel",
    ),
    # Imported when first met: most processes never read Tekton.
    *(
        Kind.lazy(TEKTON, name, TEKTON_VERSIONS, f"{_TEKTON}:{name}", f"{_TEKTON_CHECKS}:{check}")
        for name, check in (
            ("Task", "check_task"),
            ("Pipeline", "check_pipeline"),
            ("TaskRun", "check_task_run"),
            ("PipelineRun", "check_pipeline_run"),
        )
    ),
    *(
        Kind.lazy(
            TRIGGERS,
            name,
            TRIGGERS_VERSIONS,
            f"{_TRIGGERS}:{name}",
            f"{_TRIGGERS_CHECKS}:{check}",
            qualified=name == "Trigger",  # Knative Eventing has a Trigger too
        )
        for name, check in (
            ("EventListener", "check_event_listener"),
            ("Trigger", "check_trigger"),
            ("TriggerBinding", "check_trigger_binding"),
            ("ClusterTriggerBinding", "check_trigger_binding"),
            ("TriggerTemplate", "check_trigger_template"),
        )
    ),
    # The Kubernetes Gateway API, imported when first met.
    *(
        Kind.lazy(
            "gateway.networking.k8s.io",
            name,
            versions,
            f"{_GATEWAY_API}:{name}",
            f"{_GATEWAY_API_CHECKS}:{check}" if check else None,
            qualified=name == "Gateway",  # Istio has a Gateway too
        )
        for name, versions, check in (
            ("GatewayClass", ("v1", "v1beta1", "v1alpha2"), None),
            ("Gateway", ("v1", "v1beta1", "v1alpha2"), "check_gateway"),
            ("HTTPRoute", ("v1", "v1beta1", "v1alpha2"), "check_http_route"),
            ("GRPCRoute", ("v1", "v1alpha2"), "check_grpc_route"),
            ("TCPRoute", ("v1alpha2", "v1alpha3", "v1"), None),
            ("TLSRoute", ("v1alpha2", "v1alpha3", "v1"), "check_tls_route"),
            ("ReferenceGrant", ("v1beta1", "v1alpha2", "v1"), None),
        )
    ),
    Kind.lazy(
        ARGOCD,
        "Application",
        ARGOCD_VERSIONS,
        "amimesh.resources.argocd:Application",
        "amimesh.resources.checks_argocd:check_application",
    ),
    Kind.lazy(
        "projectcontour.io",
        "HTTPProxy",
        ("v1",),
        "amimesh.resources.contour:HTTPProxy",
        "amimesh.resources.checks_contour:check_http_proxy",
    ),
)

KINDS = KindRegistry(_BUILTIN)
