"""Argo CD's `Application` (argoproj.io/v1alpha1): a git repository's directory of
manifests as one config source of the mesh. Read and validated here (the checks are
`checks_argocd`); `amimesh.gitops` selects and loads the files, the control plane's
GitOps controller fetches, syncs and reports.

The fields follow argo-cd's `pkg/apis/application/v1alpha1` types. A plain directory
of manifests is the one source type Ami renders: Helm, Kustomize, Jsonnet, plugins
and multi-source Applications are refused with an error that says so. The
destination is the mesh itself (the in-cluster server, or none).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from amimesh.resources.fields import NotSupported, Strict
from amimesh.resources.meta import Resource

ARGOCD_GROUP = "argoproj.io"
VERSIONS: tuple[str, ...] = ("v1alpha1",)
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"
_RENDERS = "a plain directory of manifests is the one source type Ami renders"


class Directory(Strict):
    recurse: bool = Field(default=False, description="read the path's subdirectories too")
    include: str = Field(
        default="", description="a glob (Argo CD's: `*` crosses `/`, `{a,b}` alternatives)"
    )
    exclude: str = Field(default="", description="a glob; a file it matches is left out")
    jsonnet: NotSupported = None


class ApplicationSource(Strict):
    repoURL: str = Field(min_length=1, description="a local path or a file:// URL")
    targetRevision: str = Field(default="HEAD", description="a branch, a tag or a commit")
    path: str = Field(default=".", description="the directory in the repository")
    directory: Directory | None = None
    helm: NotSupported = Field(default=None, description=_RENDERS)
    kustomize: NotSupported = Field(default=None, description=_RENDERS)
    plugin: NotSupported = Field(default=None, description=_RENDERS)
    chart: NotSupported = Field(default=None, description=_RENDERS)
    ref: NotSupported = None
    name: str = Field(default="", description="accepted and not used")


class Destination(Strict):
    server: str = Field(default="", description=f"{IN_CLUSTER_SERVER} or none")
    name: str = Field(default="", description=f"{IN_CLUSTER_NAME} or none")
    namespace: str = Field(default="", description="the namespace of documents without one")


class Automated(Strict):
    prune: bool = Field(default=False, description="delete what the repository no longer has")
    selfHeal: bool = Field(default=False, description="put back what was changed by hand")
    allowEmpty: bool = Field(default=False, description="let prune remove every resource")
    enabled: bool | None = Field(default=None, description="false turns automated sync off")


class SyncPolicy(Strict):
    automated: Automated | None = None
    syncOptions: list[str] = Field(
        default_factory=list,
        description="CreateNamespace, PruneLast, ApplyOutOfSyncOnly, Validate (=true|false); "
        "each a no-op here",
    )
    retry: NotSupported = None
    managedNamespaceMetadata: NotSupported = None


class ApplicationSpec(Strict):
    project: str = Field(default="default", description="accepted and not used")
    source: ApplicationSource | None = None
    sources: NotSupported = Field(default=None, description="multi-source Applications")
    # (`spec.source` is required: the checks say so with the field's path.)
    destination: Destination = Field(default_factory=Destination)
    syncPolicy: SyncPolicy | None = None
    ignoreDifferences: NotSupported = None
    info: list[dict[str, Any]] = Field(default_factory=list, description="accepted and not used")
    revisionHistoryLimit: int = Field(default=10, ge=1, le=1000)


class Application(Resource):
    KIND: ClassVar[str] = "Application"
    API_GROUP: ClassVar[str] = ARGOCD_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS

    spec: ApplicationSpec
    # What `kubectl get -o yaml` or `argocd app get -o yaml` writes back.
    operation: dict[str, Any] | None = Field(default=None, description="accepted and ignored")

    @property
    def automated(self) -> Automated | None:
        """The automated sync policy in force (None: manual sync)."""
        policy = self.spec.syncPolicy
        if policy is None or policy.automated is None or policy.automated.enabled is False:
            return None
        return policy.automated
