"""Tekton Pipelines' kinds (tekton.dev/v1, and v1beta1 where it differs only in
version): Task, Pipeline, TaskRun, PipelineRun. Read and validated here (the checks
are `checks_tekton`); `amimesh.pipelines` runs them.

The fields follow tektoncd/pipeline's `pkg/apis/pipeline/v1` types. What changes how
a step runs and is not built yet (StepActions, step results, some volumes, resolvers,
matrix, debug) is `NotSupported`: an error that says so, never a silent ignore. What
only Kubernetes reads (security contexts, resources, pod templates, service accounts)
is accepted and ignored, so Tekton YAML loads unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from amimesh.resources import goparse
from amimesh.resources.fields import NotSupported, Strict, TypeName, show
from amimesh.resources.meta import Resource

TEKTON_GROUP = "tekton.dev"
VERSIONS: tuple[str, ...] = ("v1", "v1beta1")
_KUBE_ONLY = "accepted and ignored: only Kubernetes reads it"
_IMAGE = "recorded and shown; locally the step runs on the host"


class EnvVar(Strict):
    """A step's (or sidecar's) variable: its value written inline. The local runner
    reads no ConfigMap or Secret into a step's environment yet."""

    name: str = Field(min_length=1)
    value: str = ""
    valueFrom: NotSupported = None


def _go_duration(value: Any) -> Any:
    """A duration as Tekton reads it (Go's `time.ParseDuration`), kept as written."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'must be a duration such as "1h", "30m" or "1m30s", got {show(value)}')
    try:
        ns = goparse.parse_duration(value)
    except ValueError as err:
        raise ValueError(f'{err}: must be a duration such as "1h", "30m" or "1m30s"') from None
    if ns < 0:
        raise ValueError(f"must not be negative, got {show(value)}")
    return value


# A Go duration string ("1h", "90s", "0" for no timeout), checked and kept as written.
GoDuration = Annotated[str, TypeName("duration"), BeforeValidator(_go_duration)]


def _scalar_to_string(value: Any) -> Any:
    """`value: 3` or `value: true` is the string Tekton makes of it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_scalar_to_string(v) if not isinstance(v, list | dict) else v for v in value]
    if isinstance(value, dict):
        return {
            k: _scalar_to_string(v) if not isinstance(v, list | dict) else v
            for k, v in value.items()
        }
    return value


# A param's value: a string, an array of strings or an object of strings.
ParamValue = Annotated[
    str | list[str] | dict[str, str],
    TypeName("string, array or object"),
    BeforeValidator(_scalar_to_string),
]
ParamType = Literal["string", "array", "object"]


class PropertySpec(Strict):
    type: Literal["string"] = "string"


class ParamSpec(Strict):
    name: str = Field(min_length=1)
    type: ParamType | None = Field(
        default=None, description="default: string, or the type of `default`"
    )
    description: str = ""
    default: ParamValue | None = None
    properties: dict[str, PropertySpec] = Field(
        default_factory=dict, description="an object param's keys"
    )
    enum: list[str] = Field(default_factory=list, description="the values it may take")


class Param(Strict):
    name: str = Field(min_length=1)
    value: ParamValue


class TaskResult(Strict):
    name: str = Field(min_length=1)
    type: ParamType = "string"
    description: str = ""
    properties: dict[str, PropertySpec] = Field(default_factory=dict)
    value: NotSupported = None


class WorkspaceDeclaration(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    mountPath: str = Field(default="", description="locally a directory under the run's")
    readOnly: bool = False
    optional: bool = False


class WorkspaceUsage(Strict):
    name: str = Field(min_length=1)
    mountPath: str = ""


class KeyToPath(Strict):
    key: str = Field(min_length=1)
    path: str = Field(min_length=1)
    mode: int | None = None


class ConfigMapSource(Strict):
    name: str = Field(min_length=1, description="a ConfigMap Ami holds; its data become files")
    items: list[KeyToPath] = Field(default_factory=list)
    optional: bool = False
    defaultMode: int | None = None


class SecretSource(Strict):
    secretName: str = Field(
        min_length=1, description="a Secret Ami holds; its values become files (mode 0400)"
    )
    items: list[KeyToPath] = Field(default_factory=list)
    optional: bool = False
    defaultMode: int | None = Field(default=None, description="accepted; files are 0400")


class PVCSource(Strict):
    claimName: str = Field(
        min_length=1, description="a directory kept across runs, named after the claim"
    )
    readOnly: bool = False


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value


class VolumeMount(Strict):
    name: str = Field(min_length=1)
    mountPath: str = Field(min_length=1, description="locally a directory of the run's")
    subPath: str = ""
    readOnly: bool = Field(default=False, description="accepted; not enforced locally")
    mountPropagation: str | None = Field(default=None, description=_KUBE_ONLY)


class Volume(Strict):
    name: str = Field(min_length=1)
    emptyDir: Annotated[dict[str, Any] | None, BeforeValidator(_empty_if_null)] = None
    configMap: ConfigMapSource | None = None
    secret: NotSupported = None
    persistentVolumeClaim: NotSupported = None
    hostPath: NotSupported = None
    projected: NotSupported = None
    csi: NotSupported = None
    downwardAPI: NotSupported = None


class Step(Strict):
    name: str = ""
    displayName: str = ""
    image: str = Field(default="", description=_IMAGE)
    script: str = Field(default="", description="without a shebang it runs as #!/bin/sh, set -e")
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: str = ""
    timeout: GoDuration | None = None
    onError: StepOnError | None = Field(
        default=None, description="default: stopAndFail; a $(params.x) is read at run time"
    )
    workspaces: list[WorkspaceUsage] = Field(default_factory=list)
    imagePullPolicy: str | None = Field(default=None, description=_KUBE_ONLY)
    securityContext: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    computeResources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    resources: dict[str, Any] | None = Field(
        default=None, description=_KUBE_ONLY + " (v1beta1's computeResources)"
    )
    envFrom: NotSupported = None
    volumeMounts: list[VolumeMount] = Field(default_factory=list)
    volumeDevices: NotSupported = None
    ref: NotSupported = None
    params: NotSupported = None
    results: NotSupported = None
    stdoutConfig: NotSupported = None
    stderrConfig: NotSupported = None
    when: NotSupported = None


def _on_error(value: Any) -> Any:
    if value in ("continue", "stopAndFail") or (isinstance(value, str) and value.startswith("$(")):
        return value
    raise ValueError(f'must be "continue", "stopAndFail" or a variable, got {show(value)}')


StepOnError = Annotated[str, TypeName('"continue" or "stopAndFail"'), BeforeValidator(_on_error)]


class StepTemplate(Strict):
    image: str = Field(default="", description=_IMAGE)
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: str = ""
    imagePullPolicy: str | None = Field(default=None, description=_KUBE_ONLY)
    securityContext: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    computeResources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    resources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    envFrom: NotSupported = None
    volumeMounts: list[VolumeMount] = Field(default_factory=list)
    volumeDevices: NotSupported = None


class Sidecar(Strict):
    name: str = ""
    image: str = Field(default="", description=_IMAGE)
    script: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    workingDir: str = ""
    workspaces: list[WorkspaceUsage] = Field(default_factory=list)
    ports: list[Any] | None = Field(default=None, description=_KUBE_ONLY)
    readinessProbe: dict[str, Any] | None = Field(
        default=None, description="accepted and ignored: a sidecar is ready once started"
    )
    imagePullPolicy: str | None = Field(default=None, description=_KUBE_ONLY)
    securityContext: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    computeResources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    resources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    envFrom: NotSupported = None
    volumeMounts: list[VolumeMount] = Field(default_factory=list)


class TaskSpec(Strict):
    description: str = ""
    displayName: str = ""
    params: list[ParamSpec] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    stepTemplate: StepTemplate | None = None
    sidecars: list[Sidecar] = Field(default_factory=list)
    results: list[TaskResult] = Field(default_factory=list)
    workspaces: list[WorkspaceDeclaration] = Field(default_factory=list)
    volumes: list[Volume] = Field(
        default_factory=list, description="emptyDir and configMap: directories of the run's"
    )


class EmbeddedMetadata(Strict):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class EmbeddedTask(TaskSpec):
    """A pipeline task's `taskSpec`: a TaskSpec with metadata of its own."""

    metadata: EmbeddedMetadata | None = None
    apiVersion: NotSupported = None
    kind: NotSupported = None
    spec: NotSupported = None


class TaskRef(Strict):
    name: str = ""
    kind: str = Field(default="", description="Task (the default) or Pipeline")
    apiVersion: str = ""
    resolver: NotSupported = None
    params: NotSupported = None
    bundle: NotSupported = None


class WhenExpression(Strict):
    input: str = ""
    operator: Literal["in", "notin"] | None = None
    values: list[str] = Field(default_factory=list)
    cel: str = Field(
        default="",
        description="a CEL expression, variables put in first (Tekton's alpha feature, on)",
    )


class WorkspacePipelineTaskBinding(Strict):
    name: str = Field(min_length=1)
    workspace: str = Field(default="", description="default: the same name")
    subPath: str = ""


class IncludeParams(Strict):
    name: str = Field(default="", description="the combination's name")
    params: list[Param] = Field(default_factory=list)


class Matrix(Strict):
    params: list[Param] = Field(
        default_factory=list, description="arrays: a TaskRun per combination of their items"
    )
    include: list[IncludeParams] = Field(
        default_factory=list, description="params added to combinations, or combinations"
    )


class PipelineTask(Strict):
    name: str = Field(min_length=1)
    displayName: str = ""
    description: str = ""
    taskRef: TaskRef | None = None
    taskSpec: EmbeddedTask | None = None
    params: list[Param] = Field(default_factory=list)
    runAfter: list[str] = Field(default_factory=list)
    when: list[WhenExpression] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0)
    timeout: GoDuration | None = Field(default=None, description='"0": no timeout')
    workspaces: list[WorkspacePipelineTaskBinding] = Field(default_factory=list)
    onError: Literal["continue", "stopAndFail"] | None = Field(
        default=None, description="default: stopAndFail"
    )
    matrix: Matrix | None = Field(
        default=None, description="fan out: a TaskRun per combination (at most 256)"
    )
    pipelineRef: NotSupported = None
    pipelineSpec: NotSupported = None


class PipelineResult(Strict):
    name: str = Field(min_length=1)
    type: ParamType = "string"
    description: str = ""
    value: ParamValue


class PipelineWorkspaceDeclaration(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    optional: bool = False


class PipelineSpec(Strict):
    description: str = ""
    displayName: str = ""
    params: list[ParamSpec] = Field(default_factory=list)
    tasks: list[PipelineTask] = Field(default_factory=list)
    finally_: list[PipelineTask] = Field(default_factory=list, alias="finally")
    results: list[PipelineResult] = Field(default_factory=list)
    workspaces: list[PipelineWorkspaceDeclaration] = Field(default_factory=list)


class WorkspaceBinding(Strict):
    name: str = Field(min_length=1)
    subPath: str = ""
    emptyDir: Annotated[dict[str, Any] | None, BeforeValidator(_empty_if_null)] = Field(
        default=None, description="a directory of the run's, removed with it"
    )
    persistentVolumeClaim: PVCSource | None = None
    volumeClaimTemplate: dict[str, Any] | None = Field(
        default=None, description="a directory of the run's (a claim per run, as in Tekton)"
    )
    configMap: ConfigMapSource | None = None
    secret: SecretSource | None = None
    csi: NotSupported = None
    projected: NotSupported = None


class TaskRunSpec(Strict):
    taskRef: TaskRef | None = None
    taskSpec: TaskSpec | None = None
    params: list[Param] = Field(default_factory=list)
    workspaces: list[WorkspaceBinding] = Field(default_factory=list)
    timeout: GoDuration | None = Field(default=None, description='default: "1h"; "0": none')
    retries: int = Field(default=0, ge=0)
    status: Literal["TaskRunCancelled"] | None = Field(
        default=None, description="TaskRunCancelled: stop it"
    )
    statusMessage: str = ""
    serviceAccountName: str | None = Field(default=None, description=_KUBE_ONLY)
    podTemplate: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    computeResources: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    debug: NotSupported = None
    stepSpecs: NotSupported = None
    sidecarSpecs: NotSupported = None
    stepOverrides: NotSupported = None
    sidecarOverrides: NotSupported = None


class Timeouts(Strict):
    pipeline: GoDuration | None = Field(default=None, description='default: "1h"; "0": none')
    tasks: GoDuration | None = None
    finally_: GoDuration | None = Field(default=None, alias="finally")


class TaskRunTemplate(Strict):
    serviceAccountName: str | None = Field(default=None, description=_KUBE_ONLY)
    podTemplate: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)


def _no_pending(value: Any) -> Any:
    if value == "PipelineRunPending":
        raise ValueError('"PipelineRunPending" is not supported by Ami yet')
    return value


class PipelineRunSpec(Strict):
    pipelineRef: TaskRef | None = None
    pipelineSpec: PipelineSpec | None = None
    params: list[Param] = Field(default_factory=list)
    workspaces: list[WorkspaceBinding] = Field(default_factory=list)
    timeouts: Timeouts | None = None
    timeout: GoDuration | None = Field(
        default=None, description="v1beta1's spelling of timeouts.pipeline"
    )
    status: Annotated[
        Literal["Cancelled", "CancelledRunFinally", "StoppedRunFinally"] | None,
        BeforeValidator(_no_pending),
    ] = Field(default=None, description="Cancelled: stop it; the others let finally run")
    statusMessage: str = ""
    taskRunTemplate: TaskRunTemplate | None = None
    serviceAccountName: str | None = Field(default=None, description=_KUBE_ONLY)
    podTemplate: dict[str, Any] | None = Field(default=None, description=_KUBE_ONLY)
    taskRunSpecs: NotSupported = None
    managedBy: NotSupported = None


class Task(Resource):
    KIND: ClassVar[str] = "Task"
    API_GROUP: ClassVar[str] = TEKTON_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: TaskSpec


class Pipeline(Resource):
    KIND: ClassVar[str] = "Pipeline"
    API_GROUP: ClassVar[str] = TEKTON_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: PipelineSpec


class TaskRun(Resource):
    KIND: ClassVar[str] = "TaskRun"
    API_GROUP: ClassVar[str] = TEKTON_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: TaskRunSpec


class PipelineRun(Resource):
    KIND: ClassVar[str] = "PipelineRun"
    API_GROUP: ClassVar[str] = TEKTON_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = VERSIONS
    spec: PipelineRunSpec
