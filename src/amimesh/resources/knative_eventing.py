"""Knative Eventing's kinds: Broker and Trigger (eventing.knative.dev/v1), PingSource,
SinkBinding and ContainerSource (sources.knative.dev/v1). Read and validated here;
`eventing.expand` runs brokers and triggers on the mesh.

The fields are Knative's (knative/eventing `pkg/apis/eventing/v1`, `pkg/apis/duck/v1`,
`pkg/apis/sources/v1`); what Ami does not do yet is typed `NotSupported` (an error that
says so) or says in its description what it does.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from amimesh.resources import cesql
from amimesh.resources.fields import NotSupported, Strict, TypeName
from amimesh.resources.iso8601 import IsoDuration
from amimesh.resources.knative_pod import Container
from amimesh.resources.meta import Resource

EVENTING_GROUP = "eventing.knative.dev"
SOURCES_GROUP = "sources.knative.dev"
BROKER_CLASS = "eventing.knative.dev/broker.class"
# The filter dialects of a Trigger's `filters` (Knative's SubscriptionsAPIFilter).
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")


class KReference(Strict):
    """A reference to an object (Knative's duck `KReference`)."""

    apiVersion: str = Field(default="", description="e.g. serving.knative.dev/v1, v1")
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, description="default: the referrer's namespace")
    group: NotSupported = None
    address: NotSupported = None


class Destination(Strict):
    """Where events go: a `ref` to an addressable (a Knative Service, a Kubernetes
    Service, a Broker), a `uri`, or a `ref` and a relative `uri` (its path)."""

    ref: KReference | None = None
    uri: str | None = Field(default=None, max_length=2048)
    CACerts: NotSupported = None
    audience: NotSupported = None

    @model_validator(mode="after")
    def _ref_or_uri(self) -> Destination:
        if self.ref is None and not self.uri:
            raise ValueError("must set ref or uri (or both: uri is then a path on ref)")
        return self


class DeliverySpec(Strict):
    deadLetterSink: Destination | None = Field(
        default=None, description="gets each event whose retries are spent"
    )
    retry: int | None = Field(
        default=None, ge=0, le=100, description="retries after the first attempt"
    )
    backoffPolicy: Literal["linear", "exponential"] | None = Field(
        default=None, description="default: exponential"
    )
    backoffDelay: IsoDuration | None = Field(
        default=None, description="the base delay between attempts (ISO-8601)"
    )
    timeout: IsoDuration | None = Field(default=None, description="each attempt's limit (ISO-8601)")
    retryAfterMax: IsoDuration | None = Field(
        default=None,
        description=(
            "the longest wait a 429 or 503 answer's Retry-After may ask for (ISO-8601); "
            "unset: the header is not read"
        ),
    )
    format: Literal["json", "binary"] | None = Field(
        default=None, description="structured (json) or binary mode; default: binary"
    )


class BrokerSpec(Strict):
    config: KReference | None = Field(
        default=None,
        description="a v1 ConfigMap: its stream's servers, credentials, replicas, retention",
    )
    delivery: DeliverySpec | None = Field(
        default=None, description="the default of its triggers without a delivery"
    )


class TriggerFilter(Strict):
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description='exact match on attributes and extensions; "" matches any non-empty value',
    )


def _check_cesql(text: str) -> str:
    try:
        cesql.parse(text)
    except cesql.ParseError as e:
        raise ValueError(f"is not a valid CESQL expression: {e}") from None
    return text


CesqlExpression = Annotated[str, TypeName("CESQL expression"), AfterValidator(_check_cesql)]


def _known_dialects(value: Any) -> Any:
    if isinstance(value, dict):
        for key in value:
            if key not in DIALECTS:
                raise ValueError(
                    f'unknown filter dialect "{key}": a filter is one of ' + ", ".join(DIALECTS)
                )
    return value


class SubscriptionsAPIFilter(Strict):
    """One filter of a Trigger's `filters`: exactly one dialect."""

    exact: dict[str, str] = Field(
        default_factory=dict, description="every attribute equals its value"
    )
    prefix: dict[str, str] = Field(
        default_factory=dict, description="every attribute starts with its value"
    )
    suffix: dict[str, str] = Field(
        default_factory=dict, description="every attribute ends with its value"
    )
    all: list[Filter] = Field(
        default_factory=list, description="filters as in `filters`; every one passes"
    )
    any: list[Filter] = Field(
        default_factory=list, description="filters as in `filters`; one passes"
    )
    not_: Filter | None = Field(
        default=None, alias="not", description="a filter as in `filters`; it fails"
    )
    cesql: CesqlExpression | None = Field(
        default=None, description="a CESQL expression: the event passes on true, with no error"
    )


Filter = Annotated[SubscriptionsAPIFilter, BeforeValidator(_known_dialects)]


class TriggerSpec(Strict):
    broker: str = Field(min_length=1, max_length=253, description="a Broker of the namespace")
    brokerRef: NotSupported = None
    filter: TriggerFilter | None = None
    filters: list[Filter] = Field(
        default_factory=list, description="all must pass; set, they override `filter`"
    )
    subscriber: Destination
    delivery: DeliverySpec | None = Field(default=None, description="default: the broker's")


class CloudEventOverrides(Strict):
    extensions: dict[str, str] = Field(default_factory=dict)


class PingSourceSpec(Strict):
    schedule: str = Field(min_length=1, description="cron, five fields")
    timezone: str | None = Field(default=None, description="an IANA time zone")
    contentType: str | None = None
    data: str | None = None
    dataBase64: str | None = None
    sink: Destination
    ceOverrides: CloudEventOverrides | None = None


class LabelSelector(Strict):
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: NotSupported = None


class BindingSubject(Strict):
    apiVersion: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    namespace: str | None = None
    name: str | None = None
    selector: LabelSelector | None = None


class SinkBindingSpec(Strict):
    subject: BindingSubject
    sink: Destination
    ceOverrides: CloudEventOverrides | None = None


class SourcePodSpec(Strict):
    containers: list[Container] = Field(
        min_length=1, max_length=1, description="one: its `command` runs, with K_SINK"
    )
    serviceAccountName: str | None = Field(
        default=None, description="the source's identity (default: default)"
    )


class SourceTemplateMetadata(Strict):
    labels: dict[str, str] = Field(default_factory=dict, description="the Workload's labels")
    annotations: dict[str, str] = Field(default_factory=dict)


class SourceTemplate(Strict):
    metadata: SourceTemplateMetadata = Field(default_factory=SourceTemplateMetadata)
    spec: SourcePodSpec


class ContainerSourceSpec(Strict):
    template: SourceTemplate
    sink: Destination
    ceOverrides: CloudEventOverrides | None = None


class APIVersionKindSelector(Strict):
    apiVersion: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    selector: LabelSelector | None = None


class ApiServerSourceSpec(Strict):
    resources: list[APIVersionKindSelector] = Field(min_length=1)
    mode: Literal["Reference", "Resource"] = Field(
        default="Reference", description="Reference: the object's ref; Resource: the object"
    )
    serviceAccountName: str | None = Field(
        default=None, description="accepted and kept: the control plane sees every resource"
    )
    owner: NotSupported = None
    namespaceSelector: NotSupported = None
    filters: list[Filter] = Field(
        default_factory=list,
        description="as a Trigger's `filters`: an event is sent only when none fails",
    )
    sink: Destination
    ceOverrides: CloudEventOverrides | None = None


class Broker(Resource):
    KIND: ClassVar[str] = "Broker"
    API_GROUP: ClassVar[str] = EVENTING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: BrokerSpec = Field(default_factory=BrokerSpec)


class Trigger(Resource):
    KIND: ClassVar[str] = "Trigger"
    API_GROUP: ClassVar[str] = EVENTING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: TriggerSpec


class PingSource(Resource):
    KIND: ClassVar[str] = "PingSource"
    API_GROUP: ClassVar[str] = SOURCES_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: PingSourceSpec


class SinkBinding(Resource):
    KIND: ClassVar[str] = "SinkBinding"
    API_GROUP: ClassVar[str] = SOURCES_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: SinkBindingSpec


class ApiServerSource(Resource):
    KIND: ClassVar[str] = "ApiServerSource"
    API_GROUP: ClassVar[str] = SOURCES_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ApiServerSourceSpec


class ContainerSource(Resource):
    KIND: ClassVar[str] = "ContainerSource"
    API_GROUP: ClassVar[str] = SOURCES_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ContainerSourceSpec
