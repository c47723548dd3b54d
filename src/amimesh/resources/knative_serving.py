"""Knative Serving's kinds (serving.knative.dev/v1): Service, Configuration, Revision,
Route. Read and validated here; `serving.expand` runs them on the mesh.

A Knative `Service` is a kind of its own, apart from the Kubernetes core `Service`:
the registry keys kinds on (API group, kind), and its refs and store keys name it
`Service.serving.knative.dev` (see `Resource.qualified_kind`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import NotSupported, Strict
from amimesh.resources.knative_pod import RevisionSpec
from amimesh.resources.meta import Resource

SERVING_GROUP = "serving.knative.dev"
# Where Knative keeps its own settings (config-domain, config-gc, ...).
KNATIVE_NAMESPACE = "knative-serving"
_READ_ONLY = "accepted and ignored (written by kubectl get -o yaml)"


def _empty_if_null(value: Any) -> Any:
    """`metadata:` with nothing under it (as kn writes it) is an empty mapping."""
    return {} if value is None else value


class TemplateMetadata(Strict):
    name: str | None = Field(
        default=None,
        description="the Revision's name (bring your own), prefixed by the parent's name",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(
        default_factory=dict, description="autoscaling.knative.dev/* are read and checked"
    )
    generateName: NotSupported = None
    creationTimestamp: str | None = Field(default=None, description=_READ_ONLY)


class RevisionTemplate(Strict):
    metadata: Annotated[TemplateMetadata, BeforeValidator(_empty_if_null)] = Field(
        default_factory=TemplateMetadata
    )
    spec: RevisionSpec


class TrafficTarget(Strict):
    tag: str | None = Field(
        default=None, description="a DNS-1035 label; gives the target a URL of its own"
    )
    revisionName: str | None = None
    configurationName: str | None = None
    latestRevision: bool | None = Field(
        default=None, description="default: true without revisionName, false with it"
    )
    percent: int | None = Field(default=None, ge=0, le=100, description="unset: 0")
    url: str | None = Field(
        default=None, description="status only: setting it in spec is an error, as in Knative"
    )


class ServiceSpec(Strict):
    template: RevisionTemplate
    traffic: list[TrafficTarget] = Field(
        default_factory=list, description="default: 100% to the latest revision"
    )


class ConfigurationSpec(Strict):
    template: RevisionTemplate


class RouteSpec(Strict):
    traffic: list[TrafficTarget] = Field(default_factory=list)


class Service(Resource):
    KIND: ClassVar[str] = "Service"
    API_GROUP: ClassVar[str] = SERVING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    QUALIFIED: ClassVar[bool] = True  # the core group has a Service too
    spec: ServiceSpec


class Configuration(Resource):
    KIND: ClassVar[str] = "Configuration"
    API_GROUP: ClassVar[str] = SERVING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ConfigurationSpec


class Revision(Resource):
    KIND: ClassVar[str] = "Revision"
    API_GROUP: ClassVar[str] = SERVING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: RevisionSpec


class Route(Resource):
    KIND: ClassVar[str] = "Route"
    API_GROUP: ClassVar[str] = SERVING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: RouteSpec
