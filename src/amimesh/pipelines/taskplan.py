"""What a TaskRun runs, worked out before anything runs. Pure.

    plan = plan_task(spec, params, run_dir="/state/runs/default/build", workspaces={...},
                     context={"context.taskRun.name": "build", ...})
    plan.steps[0].argv, plan.steps[0].script, plan.steps[0].env, plan.steps[0].working_dir

Tekton runs a step in a container whose `/workspace`, `/tekton/results`, `/tekton/home`
are volumes of the pod. Locally a step is a process on the host, so those paths live
under the run's directory: every `$(...)` that names one points there, and the same
paths written out in a step (`/workspace/source`, `/tekton/results/out`) are rewritten
to the run's, so a step that writes them by hand works too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from amimesh.pipelines.values import Value, Values, param_values
from amimesh.resources import tekton as tk
from amimesh.resources.checks_tekton import seconds

DEFAULT_SHEBANG = "#!/bin/sh\nset -e\n"
# Tekton's limit on a TaskRun's results (the termination message of its pod).
MAX_RESULTS_BYTES = 4096
RESULTS_TOO_LARGE = (
    "Termination message is above max allowed size 4096, caused by large task result."
)


@dataclass(frozen=True)
class Workspace:
    """A declared workspace: where the step sees it (`path`, a link the runner makes)
    and the directory it is bound to (`target`, None when optional and unbound)."""

    name: str
    path: str
    target: str | None
    read_only: bool = False


@dataclass(frozen=True)
class StepPlan:
    name: str
    container: str  # "step-NAME", as Tekton names the container
    image: str
    argv: tuple[str, ...]  # the command and args; empty for a script
    script: str | None  # the script with its shebang, to be written and run with `args`
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    timeout_s: float | None
    on_error: str  # "stopAndFail" or "continue"
    problem: str | None = None  # why it cannot run locally


@dataclass(frozen=True)
class ConfigVolume:
    """A configMap volume: the directory that holds the ConfigMap's keys as files."""

    directory: str
    config_map: str
    items: tuple[tuple[str, str], ...]  # (key, path); empty: every key at its name
    optional: bool


@dataclass(frozen=True)
class TaskPlan:
    run_dir: str
    steps: tuple[StepPlan, ...]
    sidecars: tuple[StepPlan, ...]
    results: tuple[tk.TaskResult, ...]
    workspaces: tuple[Workspace, ...]
    dirs: tuple[str, ...] = field(default=())  # directories the runner creates first
    # Volume mounts: (where the steps see it, the volume's directory), linked.
    mounts: tuple[tuple[str, str], ...] = field(default=())
    config_volumes: tuple[ConfigVolume, ...] = field(default=())

    @property
    def results_dir(self) -> str:
        return f"{self.run_dir}/tekton/results"

    @property
    def home(self) -> str:
        return f"{self.run_dir}/home"

    def exit_code_path(self, container: str) -> str:
        return f"{self.run_dir}/tekton/steps/{container}/exitCode"


def local_paths(run_dir: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(path a step may write, where it is locally), longest first."""
    pairs = {
        "/workspace": f"{run_dir}/workspace",
        "/tekton/results": f"{run_dir}/tekton/results",
        "/tekton/home": f"{run_dir}/home",
        "/tekton": f"{run_dir}/tekton",
    }
    pairs.update(extra or {})
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def rewrite_paths(text: str, pairs: list[tuple[str, str]]) -> str:
    """Container paths in `text` (at the start of a path, not inside a word or URL)
    replaced by the run's local ones."""
    if not pairs or "/" not in text:
        return text
    alternatives = "|".join(re.escape(p) for p, _ in pairs)
    pattern = re.compile(rf"(?<![\w./:~-])({alternatives})(?![\w.-])")
    mapping = dict(pairs)
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def mount_path(decl: tk.WorkspaceDeclaration) -> str:
    """Where Tekton mounts a workspace in the step's container."""
    return decl.mountPath or f"/workspace/{decl.name}"


def plan_task(
    spec: tk.TaskSpec,
    params: Mapping[str, Value],
    *,
    run_dir: str,
    bound: Mapping[str, str],
    context: Mapping[str, Value],
) -> TaskPlan:
    """The steps and sidecars of a TaskRun with everything substituted. `bound` maps
    each bound workspace to its directory; `context` holds `context.*` values."""
    extra: dict[str, str] = {}
    workspaces: list[Workspace] = []
    mounts = _mounts(spec, run_dir, extra)
    values = Values()
    values.update(dict(context))
    values.update(param_values(params))
    # `$(inputs.params.x)`, v1alpha1's spelling, which Tekton still reads.
    values.update({f"inputs.{k}": v for k, v in param_values(params).items()})
    declared = list(spec.workspaces)
    # A workspace bound and not declared is propagated (an embedded spec's).
    declared_names = {d.name for d in declared}
    declared += [tk.WorkspaceDeclaration(name=n) for n in bound if n not in declared_names]
    for decl in declared:
        container_path = mount_path(decl)
        local = container_path
        if not container_path.startswith(("/workspace/", "/tekton/")):
            local = f"{run_dir}/mnt{container_path}"
            extra[container_path] = local
        target = bound.get(decl.name)
        pairs = local_paths(run_dir, extra)
        path = rewrite_paths(local, pairs)
        workspaces.append(Workspace(decl.name, path, target, decl.readOnly))
        values.set(f"workspaces.{decl.name}.path", path if target is not None else "")
        values.set(f"workspaces.{decl.name}.bound", "true" if target is not None else "false")
        values.set(f"workspaces.{decl.name}.claim", "")
        values.set(f"workspaces.{decl.name}.volume", decl.name)
    pairs = local_paths(run_dir, extra)
    for r in spec.results:
        values.set(f"results.{r.name}.path", f"{run_dir}/tekton/results/{r.name}")
    names = [s.name or f"unnamed-{i}" for i, s in enumerate(spec.steps)]
    for name in names:
        values.set(
            f"steps.step-{name}.exitCode.path", f"{run_dir}/tekton/steps/step-{name}/exitCode"
        )
    template = spec.stepTemplate or tk.StepTemplate()
    steps = tuple(
        _plan_container(s, names[i], "step", template, values, pairs, run_dir)
        for i, s in enumerate(spec.steps)
    )
    sidecars = tuple(
        _plan_container(s, s.name or f"unnamed-{i}", "sidecar", None, values, pairs, run_dir)
        for i, s in enumerate(spec.sidecars)
    )
    dirs = (
        f"{run_dir}/workspace",
        f"{run_dir}/tekton/results",
        f"{run_dir}/tekton/scripts",
        f"{run_dir}/home",
        *(f"{run_dir}/tekton/steps/step-{n}" for n in names),
    )
    config_volumes = tuple(
        ConfigVolume(
            f"{run_dir}/volumes/{v.name}",
            values.string(v.configMap.name),
            tuple((i.key, i.path) for i in v.configMap.items),
            v.configMap.optional,
        )
        for v in spec.volumes
        if v.configMap is not None
    )
    return TaskPlan(
        run_dir,
        steps,
        sidecars,
        tuple(spec.results),
        tuple(workspaces),
        dirs,
        tuple((rewrite_paths(link, pairs), target) for link, target in mounts),
        config_volumes,
    )


def _mounts(spec: tk.TaskSpec, run_dir: str, extra: dict[str, str]) -> list[tuple[str, str]]:
    """Each volume mount as (container path, the volume's directory); a mount outside
    `/workspace` lives under the run's `mnt/`, and the step's paths are rewritten there
    (`extra`)."""
    out: list[tuple[str, str]] = []
    containers: list[tk.Step | tk.Sidecar | tk.StepTemplate] = [*spec.steps, *spec.sidecars]
    if spec.stepTemplate is not None:
        containers.append(spec.stepTemplate)
    for c in containers:
        for m in c.volumeMounts:
            target = f"{run_dir}/volumes/{m.name}" + (f"/{m.subPath}" if m.subPath else "")
            path = m.mountPath.rstrip("/") or "/"
            if not path.startswith(("/workspace/", "/tekton/")) and path != "/workspace":
                extra.setdefault(path, f"{run_dir}/mnt{path}")
            if (path, target) not in out:
                out.append((path, target))
    return out


def _plan_container(
    c: tk.Step | tk.Sidecar,
    name: str,
    prefix: str,
    template: tk.StepTemplate | None,
    values: Values,
    pairs: list[tuple[str, str]],
    run_dir: str,
) -> StepPlan:
    image = c.image or (template.image if template else "")
    command = list(c.command) or (list(template.command) if template and not c.script else [])
    args = list(c.args) or (list(template.args) if template and not c.command else [])
    env: dict[str, str] = {"HOME": f"{run_dir}/home"}
    for e in [*(template.env if template else []), *c.env]:
        env[e.name] = e.value
    working_dir = c.workingDir or (template.workingDir if template else "") or "/workspace"

    def local(text: str) -> str:
        return rewrite_paths(values.string(text), pairs)

    script: str | None = None
    problem: str | None = None
    if c.script:
        body = local(c.script)
        script = body if body.startswith("#!") else DEFAULT_SHEBANG + body
    elif not command and not args:
        problem = (
            f"{prefix} {name!r} has no command, args or script: on Kubernetes its image's "
            f"entrypoint ({image}) would run; locally there is none to run"
        )
    if not command and args and args[0].startswith("-") and script is None:
        # No command: the image's default runs with the args. For the base images steps
        # use (busybox, alpine, ubuntu) that is a shell (`args: [-c, "..."]`).
        command = ["/bin/sh"]
    # Substituted before it is judged relative: `$(workspaces.W.path)/sub` is absolute.
    working_dir = values.string(working_dir)
    if not working_dir.startswith("/"):
        working_dir = f"/workspace/{working_dir}"
    timeout = getattr(c, "timeout", None)
    on_error = values.string(getattr(c, "onError", None) or "stopAndFail")
    if on_error not in ("continue", "stopAndFail"):
        problem = f'onError must be "continue" or "stopAndFail", got {on_error!r}'
    return StepPlan(
        name=name,
        container=f"{prefix}-{name}",
        image=values.string(image),
        argv=tuple(rewrite_paths(a, pairs) for a in values.items(command)),
        script=script,
        args=tuple(rewrite_paths(a, pairs) for a in values.items(args)),
        env=tuple((k, local(v)) for k, v in env.items()),
        working_dir=rewrite_paths(working_dir, pairs),
        timeout_s=(seconds(timeout) or None) if timeout is not None else None,
        on_error=on_error,
        problem=problem,
    )
