"""Object metadata and the resource envelope common to every kind."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from amimesh.resources.fields import DNS_LABEL, DNS_SUBDOMAIN, NotSupported, Strict

DEFAULT_NAMESPACE = "default"
_READ_ONLY = "accepted and ignored (written by kubectl get -o yaml)"


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


# `annotations:` with nothing after it is YAML's null, which Kubernetes (and Istio's own
# addons, e.g. Kiali's) take as no entries.
StringMap = Annotated[dict[str, str], BeforeValidator(_null_is_empty)]


class ObjectMeta(Strict):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str = Field(default=DEFAULT_NAMESPACE, max_length=63, pattern=DNS_LABEL)
    labels: StringMap = Field(default_factory=dict, description="null: none")
    annotations: StringMap = Field(default_factory=dict, description="null: none")
    generateName: NotSupported = None
    # Read-only fields that `kubectl get -o yaml` writes; accepted and not used.
    uid: str | None = Field(default=None, description=_READ_ONLY)
    resourceVersion: str | None = Field(default=None, description=_READ_ONLY)
    generation: int | None = Field(default=None, description=_READ_ONLY)
    creationTimestamp: str | None = Field(default=None, description=_READ_ONLY)
    deletionTimestamp: str | None = Field(default=None, description=_READ_ONLY)
    deletionGracePeriodSeconds: int | None = Field(default=None, description=_READ_ONLY)
    selfLink: str | None = Field(default=None, description=_READ_ONLY)
    managedFields: list[Any] | None = Field(default=None, description=_READ_ONLY)
    ownerReferences: list[Any] | None = Field(default=None, description=_READ_ONLY)
    finalizers: list[str] | None = Field(default=None, description=_READ_ONLY)


class Resource(Strict):
    """A document: apiVersion, kind, metadata and a kind-specific spec.

    Subclasses set `KIND`, `API_GROUP` and `API_VERSIONS`, and type `spec`; `QUALIFIED`
    when another group has a kind of the same name.
    """

    KIND: ClassVar[str] = ""
    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ()
    QUALIFIED: ClassVar[bool] = False

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    status: dict[str, Any] | None = Field(default=None, description=_READ_ONLY)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @classmethod
    def qualified_kind(cls) -> str:
        """How keys and refs name the kind: `VirtualService`, or with its group when
        another group has a kind of that name (`Service.serving.knative.dev`, as
        kubectl prints it, beside the core `Service`)."""
        return f"{cls.KIND}.{cls.API_GROUP}" if cls.QUALIFIED else cls.KIND

    @property
    def key(self) -> tuple[str, str, str]:
        """(qualified kind, namespace, name): unique within a store."""
        return (self.qualified_kind(), self.metadata.namespace, self.metadata.name)

    @property
    def ref(self) -> str:
        """`Kind/namespace/name`, as errors and logs print it."""
        return f"{self.qualified_kind()}/{self.metadata.namespace}/{self.metadata.name}"
