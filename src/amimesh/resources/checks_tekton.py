"""Tekton checks beyond the schema, after tektoncd/pipeline's own validation
(`pkg/apis/pipeline/v1/*_validation.go`, the graph of `pkg/reconciler/pipeline/dag`):
names, exactly-one-of fields, param types and defaults, variables that name
something declared, result references to tasks upstream, and the graph (no cycle).

Messages keep Tekton's words where Tekton has them ("non-existent variable in ...",
"cycle detected; ...") so a user can look them up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from amimesh.resources import cel_ext, goparse
from amimesh.resources import tekton as tk
from amimesh.resources import tekton_refs as refs
from amimesh.resources.checks_common import dns_label_problem, duplicates
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show

_RESULT_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][-A-Za-z0-9_.]*$")
_WORKSPACE_FIELDS = frozenset({"path", "bound", "claim", "volume"})


def check_task(task: tk.Task) -> Iterator[Issue]:
    yield from task_spec_issues(task.spec, ("spec",))


def check_pipeline(pipeline: tk.Pipeline) -> Iterator[Issue]:
    yield from pipeline_spec_issues(pipeline.spec, ("spec",))


def check_task_run(run: tk.TaskRun) -> Iterator[Issue]:
    spec = run.spec
    yield from _one_of(("spec",), taskRef=spec.taskRef, taskSpec=spec.taskSpec)
    if spec.taskRef is not None and not spec.taskRef.name:
        yield Issue(("spec", "taskRef", "name"), "is required")
    if spec.taskSpec is not None:
        yield from task_spec_issues(spec.taskSpec, ("spec", "taskSpec"), embedded=True)
    yield from _param_value_issues(spec.params, ("spec", "params"))
    yield from _binding_issues(spec.workspaces, ("spec", "workspaces"))


def check_pipeline_run(run: tk.PipelineRun) -> Iterator[Issue]:
    spec = run.spec
    yield from _one_of(("spec",), pipelineRef=spec.pipelineRef, pipelineSpec=spec.pipelineSpec)
    if spec.pipelineRef is not None and not spec.pipelineRef.name:
        yield Issue(("spec", "pipelineRef", "name"), "is required")
    if spec.pipelineSpec is not None:
        yield from pipeline_spec_issues(spec.pipelineSpec, ("spec", "pipelineSpec"), embedded=True)
    yield from _param_value_issues(spec.params, ("spec", "params"))
    yield from _binding_issues(spec.workspaces, ("spec", "workspaces"))
    if spec.timeout is not None and spec.timeouts is not None:
        yield Issue(("spec", "timeout"), "expected exactly one, got both: timeout, timeouts")
    if spec.timeouts is not None:
        yield from _timeouts_issues(spec.timeouts, ("spec", "timeouts"))


def _one_of(loc: Loc, **fields: object) -> Iterator[Issue]:
    given = [name for name, value in fields.items() if value is not None]
    if not given:
        yield Issue(loc, "expected exactly one, got neither: " + ", ".join(fields))
    elif len(given) > 1:
        yield Issue(loc, "expected exactly one, got both: " + ", ".join(given))


def seconds(duration: str) -> float:
    """A checked Go duration in seconds."""
    return goparse.parse_duration(duration) / goparse.SECOND


def _timeouts_issues(t: tk.Timeouts, loc: Loc) -> Iterator[Issue]:
    pipeline = seconds(t.pipeline) if t.pipeline is not None else 3600.0
    unbounded = pipeline == 0
    tasks = seconds(t.tasks) if t.tasks is not None else None
    final = seconds(t.finally_) if t.finally_ is not None else None
    if tasks is not None and not unbounded and (tasks == 0 or tasks > pipeline):
        yield Issue((*loc, "tasks"), f"{show(t.tasks)} should be <= pipeline duration")
    if final is not None and not unbounded and (final == 0 or final > pipeline):
        yield Issue((*loc, "finally"), f"{show(t.finally_)} should be <= pipeline duration")
    if tasks is not None and final is not None and not unbounded and tasks + final > pipeline:
        yield Issue(
            (*loc, "tasks"),
            f"{show(t.tasks)} + {show(t.finally_)} should be <= pipeline duration",
        )


def _binding_issues(bindings: Sequence[tk.WorkspaceBinding], loc: Loc) -> Iterator[Issue]:
    for first, later in duplicates(bindings, lambda b: b.name):
        yield Issue(
            (*loc, later, "name"),
            f"workspace {show(bindings[later].name)} is already bound by {loc[-1]}[{first}]",
        )
    for i, b in enumerate(bindings):
        sources = {
            "emptyDir": b.emptyDir,
            "persistentVolumeClaim": b.persistentVolumeClaim,
            "volumeClaimTemplate": b.volumeClaimTemplate,
            "configMap": b.configMap,
            "secret": b.secret,
        }
        yield from _one_of((*loc, i), **sources)
        if ".." in b.subPath.split("/") or b.subPath.startswith("/"):
            yield Issue(
                (*loc, i, "subPath"),
                f"must be a relative path inside the volume, got {show(b.subPath)}",
            )


def _param_value_issues(params: Sequence[tk.Param], loc: Loc) -> Iterator[Issue]:
    for first, later in duplicates(params, lambda p: p.name):
        yield Issue(
            (*loc, later, "name"),
            f"param {show(params[later].name)} is already given by {loc[-1]}[{first}]",
        )


# ---- Task ---------------------------------------------------------------------------


def task_spec_issues(spec: tk.TaskSpec, loc: Loc, *, embedded: bool = False) -> Iterator[Issue]:
    """A Task's spec. An embedded one (a TaskRun's or a pipeline task's `taskSpec`) may
    use params and workspaces it does not declare: Tekton propagates the run's."""
    if not spec.steps:
        yield Issue((*loc, "steps"), "missing field(s): a Task needs at least one step")
    yield from _param_spec_issues(spec.params, (*loc, "params"))
    for first, later in duplicates(spec.steps, lambda s: s.name or None):
        yield Issue(
            (*loc, "steps", later, "name"),
            f"step name {show(spec.steps[later].name)} is already used by steps[{first}]",
        )
    template_image = spec.stepTemplate.image if spec.stepTemplate is not None else ""
    for i, step in enumerate(spec.steps):
        where: Loc = (*loc, "steps", i)
        if step.name:
            problem = dns_label_problem(step.name)
            if problem is not None:
                yield Issue((*where, "name"), problem)
        if not step.image and not template_image:
            yield Issue((*where, "image"), "missing field(s): image")
        if step.script and step.command:
            yield Issue((*where, "script"), "script cannot be used with command")
    yield from _volume_issues(spec, loc)
    for i, sidecar in enumerate(spec.sidecars):
        if sidecar.script and sidecar.command:
            yield Issue((*loc, "sidecars", i, "script"), "script cannot be used with command")
    for first, later in duplicates(spec.results, lambda r: r.name):
        yield Issue(
            (*loc, "results", later, "name"),
            f"result {show(spec.results[later].name)} is already declared by results[{first}]",
        )
    for i, result in enumerate(spec.results):
        if not _RESULT_NAME.match(result.name):
            yield Issue(
                (*loc, "results", i, "name"),
                "invalid key name: must consist of alphanumeric characters, '-', '_' or '.', "
                f"and must start and end with an alphanumeric character, got {show(result.name)}",
            )
        if result.type == "object" and not result.properties:
            yield Issue(
                (*loc, "results", i, "properties"),
                "missing field(s): an object result needs properties",
            )
    for first, later in duplicates(spec.workspaces, lambda w: w.name):
        yield Issue(
            (*loc, "workspaces", later, "name"),
            f"workspace {show(spec.workspaces[later].name)} is already declared by "
            f"workspaces[{first}]",
        )
    yield from _task_variable_issues(spec, loc, embedded)


def _param_spec_issues(params: Sequence[tk.ParamSpec], loc: Loc) -> Iterator[Issue]:
    for first, later in duplicates(params, lambda p: p.name):
        yield Issue(
            (*loc, later, "name"),
            f"param {show(params[later].name)} is already declared by params[{first}]",
        )
    for i, p in enumerate(params):
        if not _PARAM_NAME.match(p.name):
            yield Issue(
                (*loc, i, "name"),
                "must contain only alphanumeric characters, '-', '_' and '.', starting with "
                f"a letter or '_', got {show(p.name)}",
            )
        declared = param_type(p)
        if p.default is not None and value_type(p.default) != declared:
            yield Issue(
                (*loc, i, "default"),
                f'"{declared}" type does not match default value\'s type: '
                f'"{value_type(p.default)}"',
            )
        if declared == "object" and not p.properties and not isinstance(p.default, dict):
            yield Issue(
                (*loc, i, "properties"), "missing field(s): an object param needs properties"
            )
        if p.enum:
            if declared != "string":
                yield Issue((*loc, i, "enum"), "enum applies to string params only")
            elif isinstance(p.default, str) and p.default not in p.enum:
                yield Issue(
                    (*loc, i, "default"),
                    f"param default value {show(p.default)} not in the enum list",
                )


def _volume_issues(spec: tk.TaskSpec, loc: Loc) -> Iterator[Issue]:
    for first, later in duplicates(spec.volumes, lambda v: v.name):
        yield Issue(
            (*loc, "volumes", later, "name"),
            f"volume {show(spec.volumes[later].name)} is already declared by volumes[{first}]",
        )
    for i, v in enumerate(spec.volumes):
        if v.emptyDir is not None and v.configMap is not None:
            yield Issue((*loc, "volumes", i), "expected exactly one, got both: emptyDir, configMap")
    names = {v.name for v in spec.volumes}
    containers: list[tuple[Loc, tk.Step | tk.Sidecar | tk.StepTemplate]] = [
        ((*loc, "steps", i), s) for i, s in enumerate(spec.steps)
    ]
    containers += [((*loc, "sidecars", i), s) for i, s in enumerate(spec.sidecars)]
    if spec.stepTemplate is not None:
        containers.append(((*loc, "stepTemplate"), spec.stepTemplate))
    for where, c in containers:
        for j, m in enumerate(c.volumeMounts):
            at: Loc = (*where, "volumeMounts", j)
            if m.name not in names:
                yield Issue((*at, "name"), f"Not found: {show(m.name)}: no volume of that name")
            if not m.mountPath.startswith("/"):
                yield Issue(
                    (*at, "mountPath"), f"must be an absolute path, got {show(m.mountPath)}"
                )
            elif m.mountPath == "/tekton" or m.mountPath.startswith("/tekton/"):
                yield Issue((*at, "mountPath"), "volumeMount cannot be mounted under /tekton/")


def param_type(p: tk.ParamSpec) -> str:
    """A param's type: as written, else the type of its default, else string."""
    if p.type is not None:
        return p.type
    if p.default is not None:
        return value_type(p.default)
    return "object" if p.properties else "string"


def value_type(value: str | list[str] | dict[str, str]) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _task_variable_issues(spec: tk.TaskSpec, loc: Loc, embedded: bool) -> Iterator[Issue]:
    params = {p.name: p for p in spec.params}
    results = {r.name for r in spec.results}
    workspaces = {w.name for w in spec.workspaces}
    for field_loc, text, isolated_ok in _task_strings(spec, loc):
        for v in refs.variables(text):
            if embedded and v.root in ("params", "workspaces") and v.parts[0] not in params:
                continue  # propagated from the run
            problem = _task_variable_problem(v, params, results, workspaces)
            if problem is None and v.param is not None and v.param in params:
                problem = _param_use_problem(v, params[v.param], text, isolated_ok)
            if problem is not None:
                yield Issue(field_loc, problem)


def _task_variable_problem(
    v: refs.Variable,
    params: dict[str, tk.ParamSpec],
    results: set[str],
    workspaces: set[str],
) -> str | None:
    missing = f"non-existent variable in {show(v.text)}"
    if v.root == "params":
        return None if v.parts[0] in params else missing
    if v.root == "results":
        ok = len(v.parts) == 2 and v.parts[0] in results and v.parts[1] == "path"
        return None if ok else missing
    if v.root == "workspaces":
        ok = len(v.parts) == 2 and v.parts[0] in workspaces and v.parts[1] in _WORKSPACE_FIELDS
        return None if ok else missing
    return None  # context.*, steps.* and the rest Tekton leaves as written when unknown


def _param_use_problem(
    v: refs.Variable, p: tk.ParamSpec, text: str, isolated_ok: bool
) -> str | None:
    kind = param_type(p)
    whole = len(v.parts) == 1
    isolated = isolated_ok and text == v.text
    if kind == "array" and whole and v.index is None and not isolated:
        return (
            f"variable type invalid in {show(v.text)}: array param {show(p.name)} needs [*] or [N]"
        )
    if kind == "array" and v.index == "*" and not isolated:
        return (
            f"variable is not properly isolated in {show(text)}: {v.text} can only be a "
            "whole item of command or args"
        )
    if kind == "object" and whole and v.index != "*":
        return f"variable type invalid in {show(v.text)}: object param {show(p.name)} needs a key"
    if kind == "object" and len(v.parts) == 2 and p.properties and v.parts[1] not in p.properties:
        return (
            f"non-existent variable in {show(v.text)}: object param has no key {show(v.parts[1])}"
        )
    if kind == "string" and (v.index is not None or not whole):
        return f"variable type invalid in {show(v.text)}: {show(p.name)} is a string param"
    return None


def _task_strings(spec: tk.TaskSpec, loc: Loc) -> Iterator[tuple[Loc, str, bool]]:
    """(where, text, may hold an isolated array) for every string a step reads."""
    containers: list[tuple[Loc, tk.Step | tk.Sidecar | tk.StepTemplate]] = [
        ((*loc, "steps", i), s) for i, s in enumerate(spec.steps)
    ]
    containers += [((*loc, "sidecars", i), s) for i, s in enumerate(spec.sidecars)]
    if spec.stepTemplate is not None:
        containers.append(((*loc, "stepTemplate"), spec.stepTemplate))
    for where, c in containers:
        yield (*where, "image"), c.image, False
        yield (*where, "workingDir"), c.workingDir, False
        if not isinstance(c, tk.StepTemplate):
            yield (*where, "script"), c.script, False
        for j, arg in enumerate(c.command):
            yield (*where, "command", j), arg, True
        for j, arg in enumerate(c.args):
            yield (*where, "args", j), arg, True
        for j, env in enumerate(c.env):
            yield (*where, "env", j, "value"), env.value, False


# ---- Pipeline -----------------------------------------------------------------------


def pipeline_spec_issues(
    spec: tk.PipelineSpec, loc: Loc, *, embedded: bool = False
) -> Iterator[Issue]:
    """A Pipeline's spec. An embedded one (a PipelineRun's) may bind workspaces it does
    not declare: Tekton propagates the run's."""
    if not spec.tasks:
        yield Issue((*loc, "tasks"), "expected at least one, got none")
    yield from _param_spec_issues(spec.params, (*loc, "params"))
    everything = [*spec.tasks, *spec.finally_]
    for first, later in duplicates(everything, lambda t: t.name):
        where = _task_loc(loc, later, len(spec.tasks))
        other = _task_loc(loc, first, len(spec.tasks))
        yield Issue(
            (*where, "name"),
            f"pipeline task name {show(everything[later].name)} must be unique: "
            f"{other[-2]}[{other[-1]}] has it",
        )
    declared_ws = {w.name for w in spec.workspaces}
    params = {p.name: p for p in spec.params}
    dag_names = {t.name for t in spec.tasks}
    final_names = {t.name for t in spec.finally_}
    for i, t in enumerate(spec.tasks):
        yield from _pipeline_task_issues(t, (*loc, "tasks", i), params, declared_ws, embedded)
        for j, name in enumerate(t.runAfter):
            if name in final_names:
                yield Issue(
                    (*loc, "tasks", i, "runAfter", j),
                    f"task {show(name)} is a finally task: tasks cannot run after it",
                )
        for task, _result in refs.result_refs(reference_strings(t)):
            if task in final_names:
                yield Issue(
                    (*loc, "tasks", i),
                    f"invalid task result reference: {show(task)} is a finally task, whose "
                    "results only pipeline results may use",
                )
    for i, t in enumerate(spec.finally_):
        where = (*loc, "finally", i)
        yield from _pipeline_task_issues(t, where, params, declared_ws, embedded)
        if t.runAfter:
            yield Issue((*where, "runAfter"), "no runAfter allowed under spec.finally")
        for task, _result in refs.result_refs(reference_strings(t)):
            if task in final_names:
                message = f"final task has task result reference from a final task {task}"
            elif task not in dag_names:
                message = (
                    f"final task has task result reference from a task {task} which is not "
                    "defined in the pipeline"
                )
            else:
                continue
            yield Issue(where, "invalid task result reference, " + message)
    problem = refs.graph_problem([node_of(t) for t in spec.tasks])
    if problem is not None:
        yield Issue((*loc, "tasks"), f"invalid value: {problem}")
    for i, r in enumerate(spec.results):
        for text in refs.strings_in(r.value):
            for v in refs.variables(text):
                ref = v.result_ref or _finally_ref(v)
                if ref is None:
                    yield Issue(
                        (*loc, "results", i, "value"),
                        "expected pipeline results to be task result expressions but an "
                        f"invalid expressions was found: {show(v.text)}",
                    )
                elif ref[0] not in dag_names and ref[0] not in final_names:
                    yield Issue(
                        (*loc, "results", i, "value"),
                        f"invalid pipeline result reference: task {show(ref[0])} is not in "
                        "the pipeline",
                    )


def _finally_ref(v: refs.Variable) -> tuple[str, str] | None:
    """(task, result) of `$(finally.T.results.R)`, which pipeline results may use."""
    if v.root == "finally" and len(v.parts) >= 3 and v.parts[1] == "results":
        return v.parts[0], v.parts[2]
    return None


def _task_loc(loc: Loc, index: int, n_tasks: int) -> Loc:
    if index < n_tasks:
        return (*loc, "tasks", index)
    return (*loc, "finally", index - n_tasks)


def node_of(t: tk.PipelineTask) -> refs.Node:
    """A pipeline task's place in the graph: runAfter, and the tasks whose results it uses."""
    used = tuple(dict.fromkeys(task for task, _ in refs.result_refs(reference_strings(t))))
    return refs.Node(t.name, tuple(t.runAfter), used)


MAX_MATRIX_COMBINATIONS = 256  # Tekton's default-max-matrix-combinations-count


def reference_strings(t: tk.PipelineTask) -> Iterator[str]:
    for p in t.params:
        yield from refs.strings_in(p.value)
    if t.matrix is not None:
        for p in t.matrix.params:
            yield from refs.strings_in(p.value)
        for inc in t.matrix.include:
            for p in inc.params:
                yield from refs.strings_in(p.value)
    for w in t.when:
        yield w.input
        yield from w.values
        yield w.cel


def _pipeline_task_issues(
    t: tk.PipelineTask,
    loc: Loc,
    params: dict[str, tk.ParamSpec],
    declared_ws: set[str],
    embedded: bool,
) -> Iterator[Issue]:
    problem = dns_label_problem(t.name)
    if problem is not None:
        yield Issue((*loc, "name"), problem)
    yield from _one_of(loc, taskRef=t.taskRef, taskSpec=t.taskSpec)
    if t.taskRef is not None and not t.taskRef.name:
        yield Issue((*loc, "taskRef", "name"), "is required")
    if t.taskSpec is not None:
        yield from task_spec_issues(t.taskSpec, (*loc, "taskSpec"), embedded=True)
    yield from _param_value_issues(t.params, (*loc, "params"))
    if t.matrix is not None:
        yield from _matrix_issues(t, (*loc, "matrix"), params, declared_ws)
    for j, p in enumerate(t.params):
        for text in refs.strings_in(p.value):
            yield from _pipeline_variable_issues(
                text, (*loc, "params", j, "value"), params, declared_ws
            )
    for j, w in enumerate(t.when):
        where = (*loc, "when", j)
        if w.cel:
            yield from _cel_issues(w, where)
            continue
        if not w.input:
            yield Issue((*where, "input"), "missing field(s): input")
        if w.operator is None:
            yield Issue((*where, "operator"), 'missing field(s): operator ("in" or "notin")')
        if not w.values:
            yield Issue((*where, "values"), "expecting non-empty values field")
        for text in (w.input, *w.values):
            yield from _pipeline_variable_issues(text, where, params, declared_ws)
    for j, b in enumerate(t.workspaces):
        name = b.workspace or b.name
        if name not in declared_ws and not embedded:
            yield Issue(
                (*loc, "workspaces", j, "workspace"),
                f"pipeline task {show(t.name)} expects workspace with name {show(name)} but "
                "none exists in pipeline spec",
            )


def _matrix_issues(
    t: tk.PipelineTask, loc: Loc, params: dict[str, tk.ParamSpec], declared_ws: set[str]
) -> Iterator[Issue]:
    assert t.matrix is not None
    m = t.matrix
    yield from _param_value_issues(m.params, (*loc, "params"))
    given = {p.name for p in t.params}
    count = 1 if m.params else 0
    for j, p in enumerate(m.params):
        where: Loc = (*loc, "params", j)
        if p.name in given:
            yield Issue(
                (*where, "name"),
                f"parameter names must be unique, the parameter {show(p.name)} is also "
                "defined in params",
            )
        if isinstance(p.value, list):
            count *= len(p.value)
        elif isinstance(p.value, dict) or not _whole_array(p.value):
            yield Issue(
                (*where, "value"),
                "a matrix param is an array: a list, or a whole array variable "
                "($(params.a[*]), $(tasks.t.results.r[*]))",
            )
        for text in refs.strings_in(p.value):
            yield from _pipeline_variable_issues(text, (*where, "value"), params, declared_ws)
    for j, inc in enumerate(m.include):
        for k, p in enumerate(inc.params):
            if not isinstance(p.value, str):
                yield Issue(
                    (*loc, "include", j, "params", k, "value"),
                    "an include param is a string",
                )
    count += sum(1 for _ in m.include) if not m.params else 0
    if count > MAX_MATRIX_COMBINATIONS:
        yield Issue(
            loc,
            f"expected 0 <= Matrix combinations count <= {MAX_MATRIX_COMBINATIONS}, got {count}",
        )


def _cel_issues(w: tk.WhenExpression, loc: Loc) -> Iterator[Issue]:
    """Tekton compiles a `when` CEL as written: a variable sits inside a CEL string
    ('$(params.branch)' == 'main') and is put in before it runs."""
    cel = cel_ext.load()  # loaded when a Pipeline uses CEL

    if w.input or w.operator is not None or w.values:
        yield Issue(loc, "cel and input+operator+values cannot be set in one WhenExpression")
    try:
        cel.compile(w.cel)
    except ValueError as err:
        yield Issue((*loc, "cel"), f"invalid cel expression: {w.cel} with err: {err}")


def _whole_array(text: str) -> bool:
    v = refs.parse_variable(text) if text.startswith("$(") and text.endswith(")") else None
    return v is not None and (v.index == "*" or v.result_ref is not None)


def _pipeline_variable_issues(
    text: str, loc: Loc, params: dict[str, tk.ParamSpec], declared_ws: set[str]
) -> Iterable[Issue]:
    for v in refs.variables(text):
        if v.root == "params" and v.parts[0] not in params:
            yield Issue(loc, f"non-existent variable in {show(v.text)}")
        elif v.root == "workspaces" and (
            len(v.parts) != 2 or v.parts[0] not in declared_ws or v.parts[1] != "bound"
        ):
            yield Issue(loc, f"non-existent variable in {show(v.text)}")
