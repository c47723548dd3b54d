"""Tekton Triggers' kinds (triggers.tekton.dev/v1beta1, and v1alpha1 where it differs
only in version): EventListener, Trigger, TriggerBinding, ClusterTriggerBinding and
TriggerTemplate. Read and validated here (the checks are `checks_triggers`);
`amimesh.pipelines.triggers` and `interceptors` evaluate them.

The fields follow tektoncd/triggers' `pkg/apis/triggers/v1beta1` types. Interceptors
are written either way Tekton reads them: `ref: {name: github}` with `params`, or the
older `github: {...}` / `cel: {...}` blocks. Ami runs the `github` and `cel`
interceptors; the others (`gitlab`, `bitbucket`, `slack`, `webhook`, custom
ClusterInterceptors) are refused with an error that says so. What only Kubernetes reads
(the listener's pod and service settings, service accounts) is accepted and ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from amimesh.resources.fields import NotSupported, Strict
from amimesh.resources.meta import Resource

TRIGGERS_GROUP = "triggers.tekton.dev"
VERSIONS: tuple[str, ...] = ("v1beta1", "v1alpha1")
INTERCEPTORS = ("github", "cel")
_KUBE_ONLY = "accepted and ignored: only Kubernetes reads it"
_ONE_PROCESS = "accepted and ignored: locally the listener is one process"


class Param(Strict):
    """A binding's param: `value` may hold `$(body.…)`, `$(header.…)`, `$(extensions.…)`."""

    name: str = Field(min_length=1)
    value: str


class ParamSpec(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    default: str | None = None


class SecretRef(Strict):
    secretName: str = ""
    secretKey: str = ""


class CelOverlay(Strict):
    key: str = Field(min_length=1, description="where the value goes under `extensions`")
    expression: str = Field(min_length=1, description="a CEL expression")


class GithubInterceptor(Strict):
    secretRef: SecretRef | None = None
    eventTypes: list[str] | None = None
    addChangedFiles: NotSupported = None
    githubOwners: NotSupported = None


class CelInterceptor(Strict):
    filter: str = Field(default="", description="a CEL expression; false stops the trigger")
    overlays: list[CelOverlay] = Field(default_factory=list)


class InterceptorRef(Strict):
    name: str = Field(default="", description='"github" or "cel"')
    kind: Literal["ClusterInterceptor", "NamespacedInterceptor"] | None = None
    apiVersion: str = ""


class InterceptorParam(Strict):
    name: str = Field(min_length=1)
    value: Any = None


class TriggerInterceptor(Strict):
    name: str = ""
    ref: InterceptorRef | None = None
    params: list[InterceptorParam] = Field(default_factory=list)
    github: GithubInterceptor | None = Field(default=None, description="the older spelling")
    cel: CelInterceptor | None = Field(default=None, description="the older spelling")
    webhook: NotSupported = None
    gitlab: NotSupported = None
    bitbucket: NotSupported = None


class TriggerSpecBinding(Strict):
    name: str = Field(default="", description="an inline param's name (with `value`)")
    value: str | None = None
    ref: str = Field(default="", description="a TriggerBinding (or ClusterTriggerBinding)")
    kind: Literal["TriggerBinding", "ClusterTriggerBinding"] = "TriggerBinding"
    apiversion: str = ""


class TriggerTemplateSpec(Strict):
    params: list[ParamSpec] = Field(default_factory=list)
    resourcetemplates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="PipelineRuns and TaskRuns, `$(tt.params.x)` put in; "
        "`generateName` gets a random suffix",
    )


class TriggerSpecTemplate(Strict):
    ref: str | None = None
    apiversion: str = ""
    spec: TriggerTemplateSpec | None = None


class TriggerSpec(Strict):
    name: str = ""
    bindings: list[TriggerSpecBinding] = Field(default_factory=list)
    template: TriggerSpecTemplate | None = None
    interceptors: list[TriggerInterceptor] = Field(default_factory=list)
    serviceAccountName: str | None = Field(default=None, description=_KUBE_ONLY)


class EventListenerTrigger(TriggerSpec):
    triggerRef: str = Field(default="", description="a Trigger in the listener's namespace")


class NamespaceSelector(Strict):
    matchNames: list[str] = Field(
        default_factory=list, description='namespaces whose Triggers it takes; "*": all'
    )


class LabelSelector(Strict):
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: NotSupported = None


class Resources(Strict):
    kubernetesResource: dict[str, Any] | None = Field(default=None, description=_ONE_PROCESS)
    customResource: dict[str, Any] | None = Field(default=None, description=_ONE_PROCESS)


class EventListenerSpec(Strict):
    serviceAccountName: str | None = Field(default=None, description=_KUBE_ONLY)
    triggers: list[EventListenerTrigger] = Field(default_factory=list)
    namespaceSelector: NamespaceSelector | None = None
    labelSelector: LabelSelector | None = None
    resources: Resources | None = None
    triggerGroups: NotSupported = None
    cloudEventURI: NotSupported = None


class EventListener(Resource):
    """A mesh service (`el-NAME`, port 8080) that turns webhooks into runs."""

    KIND: ClassVar[str] = "EventListener"
    API_GROUP: ClassVar[str] = TRIGGERS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: EventListenerSpec


class Trigger(Resource):
    KIND: ClassVar[str] = "Trigger"
    API_GROUP: ClassVar[str] = TRIGGERS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    QUALIFIED: ClassVar[bool] = True  # Knative Eventing has a Trigger too
    spec: TriggerSpec


class TriggerBindingSpec(Strict):
    params: list[Param] = Field(default_factory=list)


class TriggerBinding(Resource):
    KIND: ClassVar[str] = "TriggerBinding"
    API_GROUP: ClassVar[str] = TRIGGERS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: TriggerBindingSpec


class ClusterTriggerBinding(Resource):
    """Cluster-scoped: any namespace's Trigger may use it (its namespace is ignored)."""

    KIND: ClassVar[str] = "ClusterTriggerBinding"
    API_GROUP: ClassVar[str] = TRIGGERS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: TriggerBindingSpec


class TriggerTemplate(Resource):
    KIND: ClassVar[str] = "TriggerTemplate"
    API_GROUP: ClassVar[str] = TRIGGERS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: TriggerTemplateSpec


Interceptor = GithubInterceptor | CelInterceptor


def interceptor_of(i: TriggerInterceptor) -> Interceptor:
    """What an interceptor does, however it is written (`ref` + `params` or the older
    `github:` / `cel:` block). ValueError says why it cannot run here."""
    if i.github is not None or i.cel is not None:
        if i.ref is not None or (i.github is not None and i.cel is not None):
            raise ValueError("set one of ref, github and cel")
        return i.github if i.github is not None else i.cel  # type: ignore[return-value]
    if i.ref is None or not i.ref.name:
        raise ValueError("an interceptor needs ref.name (github or cel)")
    if i.ref.name not in INTERCEPTORS:
        raise ValueError(
            f'interceptor "{i.ref.name}" is not supported by Ami yet; '
            f"Ami runs {' and '.join(INTERCEPTORS)}"
        )
    params = {p.name: p.value for p in i.params}
    model = GithubInterceptor if i.ref.name == "github" else CelInterceptor
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        raise ValueError(f'{i.ref.name} interceptor: unknown param "{unknown[0]}"')
    return model.model_validate(params)
