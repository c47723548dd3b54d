"""The Tekton examples the runner does not run (`tests/data/tekton-examples/left-out/`)
stay left out for the reasons docs/pipelines.md gives: the ones refused by validation
are refused with exactly those reasons (every error is one of them, every reason is
among the errors), and the ones that fail at run time pass validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from amimesh.resources.parse import parse_object

LEFT_OUT = Path(__file__).resolve().parent.parent / "data" / "tekton-examples" / "left-out"

# What each refusal says (a part of the error's text).
STEP_ACTION = 'unknown kind "StepAction"'
STEP_REF = "].ref: is not supported by Ami yet"
STEP_PARAMS = "].params: is not supported by Ami yet"
STEP_RESULTS = "].results: is not supported by Ami yet"
STEP_WHEN = "].when: is not supported by Ami yet"
RESULT_VALUE = "results[0].value: is not supported by Ami yet"
RESOLVER = "taskRef.resolver: is not supported by Ami yet"
RESOLVER_PARAMS = "taskRef.params: is not supported by Ami yet"
PIPELINE_REF = "].pipelineRef: is not supported by Ami yet"
PIPELINE_SPEC = "].pipelineSpec: is not supported by Ami yet"
PVC = 'unknown kind "PersistentVolumeClaim"'
SERVICE_ACCOUNT = 'unknown kind "ServiceAccount"'
CLUSTER_ROLE_BINDING = 'unknown kind "ClusterRoleBinding"'
PROJECTED_WORKSPACE = "].projected: is not supported by Ami yet"
SECRET_VOLUME = "volumes[0].secret: is not supported by Ami yet"
TASK_RUN_SPECS = "spec.taskRunSpecs: is not supported by Ami yet"
STDOUT = "stdoutConfig: is not supported by Ami yet"
STDERR = "stderrConfig: is not supported by Ami yet"
VALUE_FROM = "valueFrom: is not supported by Ami yet"
ENV_FROM = "envFrom: is not supported by Ami yet"
STARTUP_PROBE = 'unknown field (Ami does not know "startupProbe" on Sidecar)'
LOWER_MOUNTPATH = 'unknown field (Ami does not know "mountpath" on WorkspaceUsage'
POD_TEMPLATE_VOLUME = 'Not found: "custom": no volume of that name'
WORKSPACE_VOLUME_NAME = 'Not found: "$(workspaces.signals.volume)"'
WORKSPACE_MOUNT_PATH = 'must be an absolute path, got "$(workspaces.signals.path)"'
TEKTON_HOME_MOUNT = "volumeMount cannot be mounted under /tekton/"
PIPELINE_WORKSPACE_PATH = 'non-existent variable in "$(workspaces.source.path)"'

REFUSED: dict[str, tuple[str, ...]] = {
    # StepActions: the kind, a step's `ref`, `params` and `results`
    "pipelineruns/stepaction-params.yaml": (STEP_ACTION, STEP_REF, STEP_PARAMS),
    "taskruns/alpha/stepaction-when.yaml": (PVC, STEP_ACTION, STEP_REF, STEP_WHEN, STEP_RESULTS),
    "taskruns/beta/stepaction-git-resolver.yaml": (STEP_REF, STEP_PARAMS),
    "taskruns/stepaction-params.yaml": (STEP_ACTION, STEP_REF, STEP_PARAMS),
    "taskruns/stepaction-passing-results.yaml": (
        STEP_ACTION,
        STEP_REF,
        STEP_PARAMS,
        STEP_RESULTS,
    ),
    "taskruns/stepaction-results.yaml": (STEP_ACTION, STEP_REF, RESULT_VALUE),
    "taskruns/stepaction.yaml": (STEP_ACTION, STEP_REF),
    "taskruns/stepactions-steptemplate.yaml": (STEP_ACTION, STEP_REF),
    # remote resolvers (git, http, hub, bundles)
    "pipelineruns/beta/git-resolver.yaml": (RESOLVER, RESOLVER_PARAMS),
    "pipelineruns/beta/http-resolver-credentials.yaml": (RESOLVER, RESOLVER_PARAMS),
    "pipelineruns/beta/http-resolver.yaml": (RESOLVER, RESOLVER_PARAMS),
    "taskruns/beta/bundles-resolver.yaml": (RESOLVER, RESOLVER_PARAMS),
    "taskruns/beta/git-resolver.yaml": (RESOLVER, RESOLVER_PARAMS),
    "taskruns/beta/hub-resolver.yaml": (RESOLVER, RESOLVER_PARAMS),
    # pipelines in pipelines
    "pipelineruns/alpha/pipelines-in-pipelines-ref-complex.yaml": (PIPELINE_REF,),
    "pipelineruns/alpha/pipelines-in-pipelines-ref.yaml": (PIPELINE_REF,),
    "pipelineruns/alpha/pipelines-in-pipelines.yaml": (PIPELINE_SPEC,),
    # PersistentVolumeClaims, ServiceAccounts and ClusterRoleBindings as kinds
    "pipelineruns/mapping-workspaces.yaml": (PVC,),
    "pipelineruns/workspaces-projected.yaml": (PVC, PROJECTED_WORKSPACE),
    "pipelineruns/workspaces.yaml": (PVC,),
    "taskruns/workspace-readonly.yaml": (PVC,),
    "taskruns/workspace.yaml": (PVC,),
    "taskruns/authenticating-git-commands.yaml": (SERVICE_ACCOUNT,),
    "taskruns/beta/authenticating-git-commands.yaml": (SERVICE_ACCOUNT,),
    "taskruns/creds-init-only-mounts-provided-credentials.yaml": (SERVICE_ACCOUNT,),
    "pipelineruns/pipelinerun.yaml": (CLUSTER_ROLE_BINDING, PIPELINE_WORKSPACE_PATH),
    # secret workspaces and volumes
    "pipelineruns/beta/isolated-workspaces.yaml": (LOWER_MOUNTPATH,),
    "taskruns/secret-volume-params.yaml": (SECRET_VOLUME,),
    "taskruns/secret-volume.yaml": (SECRET_VOLUME,),
    # taskRunSpecs
    "pipelineruns/beta/pipelinerun-with-matrix-and-taskrunspecs-param-substitution.yaml": (
        TASK_RUN_SPECS,
    ),
    "pipelineruns/pipelinerun-with-task-timeout-override.yaml": (TASK_RUN_SPECS,),
    # stdoutConfig and stderrConfig
    "taskruns/alpha/step-stream-results.yaml": (STDOUT, STDERR),
    "taskruns/alpha/step-stream-volumes.yaml": (STDOUT, STDERR),
    "taskruns/alpha/step-stream-workspace.yaml": (STDOUT, STDERR),
    # valueFrom and envFrom
    "taskruns/configmap.yaml": (VALUE_FROM,),
    "taskruns/secret-env.yaml": (VALUE_FROM,),
    "taskruns/secret-env-from.yaml": (ENV_FROM,),
    # a sidecar's startupProbe
    "taskruns/dind-sidecar.yaml": (STARTUP_PROBE,),
    "taskruns/sidecar-ready.yaml": (STARTUP_PROBE,),
    # a TaskRun's podTemplate volumes
    "taskruns/template-volume.yaml": (POD_TEMPLATE_VOLUME,),
    # `$(workspaces.W.volume)` as a sidecar's volume
    "taskruns/workspace-in-sidecar.yaml": (WORKSPACE_VOLUME_NAME, WORKSPACE_MOUNT_PATH),
    # a volume mounted at /tekton/home
    "taskruns/home-volume.yaml": (TEKTON_HOME_MOUNT,),
}

# Valid, and failing when run, for reasons of running on the host (docs/pipelines.md).
FAIL_AT_RUN_TIME: dict[str, str] = {
    "pipelineruns/alpha/pipelinerun-large-results.yaml": "results over 4096 bytes",
    "taskruns/beta/large-task-result.yaml": "results over 4096 bytes",
    "pipelineruns/alpha/consume-artifacts-from-task.yaml": "artifacts",
    "taskruns/alpha/produce-consume-artifacts.yaml": "artifacts",
    "taskruns/alpha/task-artifacts.yaml": "artifacts",
    "pipelineruns/beta/pipelinerun-with-matrix.yaml": "[ a == b ] without a shebang",
    "pipelineruns/beta/using-retries-and-retry-count-variables.yaml": (
        "[ a == b ] without a shebang"
    ),
    "pipelineruns/ignore-step-error.yaml": "[ a == b ] without a shebang",
    "taskruns/ignore-step-error.yaml": "[ a == b ] without a shebang",
    "pipelineruns/using-optional-workspaces-in-when-expressions.yaml": "#!/usr/bin/env ash",
    "taskruns/beta/workspace-in-sidecar.yaml": "#!/usr/bin/env ash",
    "taskruns/beta/workspace-isolation.yaml": "#!/usr/bin/env ash",
    "pipelineruns/pipelinerun-with-final-tasks.yaml": "an image's own tool (git-init)",
    "taskruns/entrypoint-resolution.yaml": "an image's entrypoint",
    "taskruns/workingdir.yaml": "a workingDir outside the run",
    "taskruns/workspace-volume.yaml": "a volume over /workspace for one step",
    "taskruns/readonly-internal-dir.yaml": "steps kept apart (/tekton/run)",
}


def errors_of(path: Path) -> list[str]:
    """Every validation error of the file (a run with only `generateName` named as the
    runs' test names it)."""
    errors: list[str] = []
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for index, document in enumerate(documents):
        meta = document.get("metadata") or {}
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta.pop("generateName")) + "run"
        errors += [str(e) for e in parse_object(document, str(path), document=index).errors]
    return errors


def test_every_left_out_example_has_its_reason() -> None:
    present = sorted(p.relative_to(LEFT_OUT).as_posix() for p in LEFT_OUT.rglob("*.yaml"))
    assert present == sorted([*REFUSED, *FAIL_AT_RUN_TIME])
    assert (len(REFUSED), len(FAIL_AT_RUN_TIME)) == (42, 17)


@pytest.mark.parametrize("rel", sorted(REFUSED))
def test_refused_for_its_reasons(rel: str) -> None:
    errors = errors_of(LEFT_OUT / rel)
    reasons = REFUSED[rel]
    assert errors, f"{rel} is valid now: run it and keep it"
    for error in errors:
        assert str(LEFT_OUT / rel) in error
        assert any(reason in error for reason in reasons), error
    for reason in reasons:
        assert any(reason in error for error in errors), (reason, errors)


@pytest.mark.parametrize("rel", sorted(FAIL_AT_RUN_TIME))
def test_the_run_time_failures_are_valid(rel: str) -> None:
    assert errors_of(LEFT_OUT / rel) == []
