"""The pure side of pipelines: variables, params, `when`, the TaskRun plan and the
PipelineRun scheduler's decisions (skips with Tekton's reasons, finally, timeouts,
cancellation, the Succeeded condition), driven by hand with no process."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.pipelines import scheduler as sch
from amimesh.pipelines.taskplan import DEFAULT_SHEBANG, local_paths, plan_task, rewrite_paths
from amimesh.pipelines.values import ParamError, Values, resolve_params
from amimesh.pipelines.when import evaluate
from amimesh.resources import parse_documents
from amimesh.resources import tekton as tk
from amimesh.resources import tekton_refs as refs


def load(text: str) -> list[object]:
    result = parse_documents(textwrap.dedent(text), "t.yaml")
    assert result.errors == []
    return list(result.resources)


# ---- variables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "root", "parts", "index"),
    [
        ("$(params.who)", "params", ("who",), None),
        ('$(params["a.b"])', "params", ("a.b",), None),
        ("$(params['a.b'])", "params", ("a.b",), None),
        ("$(params.files[*])", "params", ("files",), "*"),
        ("$(params.files[2])", "params", ("files",), "2"),
        ("$(params.repo.url)", "params", ("repo", "url"), None),
        ("$(tasks.build.results.digest)", "tasks", ("build", "results", "digest"), None),
        ("$(context.pipelineRun.name)", "context", ("pipelineRun", "name"), None),
        ("$(workspaces.src.path)", "workspaces", ("src", "path"), None),
    ],
)
def test_variables_parse(text: str, root: str, parts: tuple[str, ...], index: str | None) -> None:
    v = refs.parse_variable(text)
    assert v is not None
    assert (v.root, v.parts, v.index) == (root, parts, index)


def test_substitution_of_strings_arrays_and_objects() -> None:
    values = Values()
    values.set("params.who", "world")
    values.set("params.files", ["a", "b c"])
    values.set("params.repo", {"url": "https://x", "rev": "main"})
    assert values.string("hi $(params.who), $(params.repo.url)@$(params.repo.rev)") == (
        "hi world, https://x@main"
    )
    assert values.string('$(params["who"]) $(params.files[1])') == "world b c"
    assert values.items(["-v", "$(params.files[*])", "x"]) == ["-v", "a", "b c", "x"]
    assert values.value("$(params.repo[*])") == {"url": "https://x", "rev": "main"}
    # What names nothing known is left as written, as Tekton leaves it.
    assert values.string("$(params.nope) $(params.files[9])") == "$(params.nope) $(params.files[9])"


def test_params_take_defaults_and_fail_as_tekton_does() -> None:
    (task,) = load(
        """
        apiVersion: tekton.dev/v1
        kind: Task
        metadata: {name: t}
        spec:
          params:
          - {name: a}
          - {name: b, default: two}
          - {name: o, type: object, properties: {k: {}, l: {}}, default: {k: "1", l: "2"}}
          - {name: e, enum: [x, y], default: x}
          steps: [{image: alpine, script: "true"}]
        """
    )
    assert isinstance(task, tk.Task)
    params = task.spec.params
    got = resolve_params(params, [("a", "one"), ("o", {"k": "9"})], "TaskRun t")
    assert got == {"a": "one", "b": "two", "o": {"k": "9", "l": "2"}, "e": "x"}
    with pytest.raises(ParamError) as missing:
        resolve_params(params, [], "TaskRun t")
    assert missing.value.reason == "ParameterMissing"
    with pytest.raises(ParamError) as mismatch:
        resolve_params(params, [("a", ["x"])], "TaskRun t")
    assert mismatch.value.reason == "ParameterTypeMismatch"
    with pytest.raises(ParamError) as enum:
        resolve_params(params, [("a", "1"), ("e", "z")], "TaskRun t")
    assert enum.value.reason == "InvalidParamValue"


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        ("in", ["main", "dev"], True),
        ("in", ["dev"], False),
        ("notin", ["dev"], True),
        ("in", ["$(params.branches[*])"], True),
    ],
)
def test_when(operator: str, values: list[str], expected: bool) -> None:
    v = Values()
    v.set("params.branch", "main")
    v.set("params.branches", ["x", "main"])
    w = tk.WhenExpression(input="$(params.branch)", operator=operator, values=values)  # type: ignore[arg-type]
    assert evaluate(w, v) is expected


# ---- the TaskRun plan -----------------------------------------------------------------


def test_plan_points_tekton_paths_into_the_run() -> None:
    (task,) = load(
        """
        apiVersion: tekton.dev/v1
        kind: Task
        metadata: {name: t}
        spec:
          results: [{name: out}]
          workspaces: [{name: src}, {name: cache, mountPath: /cache, optional: true}]
          stepTemplate: {image: alpine, env: [{name: A, value: tmpl}, {name: B, value: tmpl}]}
          steps:
          - name: one
            env: [{name: B, value: step}]
            script: |
              cat /workspace/src/x > $(results.out.path)
              echo $(workspaces.cache.bound) $(context.taskRun.name)
          - name: two
            image: python
            script: |
              #!/usr/bin/env python3
              print("hi")
        """
    )
    assert isinstance(task, tk.Task)
    plan = plan_task(
        task.spec,
        {},
        run_dir="/r",
        bound={"src": "/data/src"},
        context={"context.taskRun.name": "tr"},
    )
    one, two = plan.steps
    assert one.script == (
        DEFAULT_SHEBANG + "cat /r/workspace/src/x > /r/tekton/results/out\necho false tr\n"
    )
    assert dict(one.env) == {"HOME": "/r/home", "A": "tmpl", "B": "step"}
    assert one.image == "alpine" and one.container == "step-one"
    assert one.working_dir == "/r/workspace"
    assert two.script is not None and two.script.startswith("#!/usr/bin/env python3")
    assert [(w.name, w.path, w.target) for w in plan.workspaces] == [
        ("src", "/r/workspace/src", "/data/src"),
        ("cache", "/r/mnt/cache", None),
    ]


def test_rewrite_leaves_urls_and_words_alone() -> None:
    pairs = local_paths("/r")
    text = "git clone https://github.com/tektoncd/x /workspace/s; ls /tekton/results /tektonic"
    assert rewrite_paths(text, pairs) == (
        "git clone https://github.com/tektoncd/x /r/workspace/s; ls /r/tekton/results /tektonic"
    )


# ---- the PipelineRun scheduler ------------------------------------------------------------

GRAPH = """
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: ci}
spec:
  params: [{name: deploy, default: "no"}]
  tasks:
  - {name: lint, taskRef: {name: t}}
  - {name: test, taskRef: {name: t}}
  - name: build
    runAfter: [lint, test]
    taskRef: {name: t}
  - name: guarded
    runAfter: [build]
    when: [{input: "$(params.deploy)", operator: in, values: ["yes"]}]
    taskRef: {name: t}
  - name: uses-guarded
    taskRef: {name: t}
    params: [{name: x, value: "$(tasks.guarded.results.url)"}]
  - name: after-guarded
    runAfter: [guarded]
    taskRef: {name: t}
  finally:
  - name: report
    taskRef: {name: t}
    params: [{name: s, value: "$(tasks.status) $(tasks.build.status)"}]
"""


def state(text: str = GRAPH, **timeouts: float | None) -> sch.PipelineRunState:
    (p,) = load(text)
    assert isinstance(p, tk.Pipeline)
    values = Values()
    values.set("params.deploy", "no")
    t = sch.Timeouts(
        timeouts.get("pipeline", 3600.0), timeouts.get("tasks"), timeouts.get("finally")
    )
    return sch.PipelineRunState("ci-1", p.spec, values, 0.0, t)


def start(run: sch.PipelineRunState, now: float) -> list[str]:
    launches = run.schedule(now)
    for launch in launches:
        run.task_started(launch.name, now)
    return sorted(launch.name for launch in launches)


def test_graph_order_when_skip_and_finally() -> None:
    run = state()
    assert start(run, 1) == ["lint", "test"]  # independent tasks start together
    assert run.condition(1) == (
        "Unknown",
        "Running",
        "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 7, Skipped: 0",
    )
    run.task_finished("lint", sch.Outcome.SUCCEEDED, {}, 2)
    assert start(run, 2) == []
    run.task_finished("test", sch.Outcome.SUCCEEDED, {}, 3)
    assert start(run, 3) == ["build"]
    run.task_finished("build", sch.Outcome.SUCCEEDED, {}, 4)
    # `guarded` is skipped by its when; what uses its results is skipped too; what only
    # runs after it runs (when guards the task alone).
    assert start(run, 4) == ["after-guarded"]
    skipped = {s["name"]: s["reason"] for s in run.skipped_tasks()}
    assert skipped == {
        "guarded": "When Expressions evaluated to false",
        "uses-guarded": "Results were missing",
    }
    run.task_finished("after-guarded", sch.Outcome.SUCCEEDED, {}, 5)
    launches = run.schedule(5)
    assert [launch.name for launch in launches] == ["report"]
    assert launches[0].params == {"s": "Completed Succeeded"}
    run.task_started("report", 5)
    run.task_finished("report", sch.Outcome.SUCCEEDED, {}, 6)
    assert run.done
    assert run.condition(6) == (
        "True",
        "Completed",
        "Tasks Completed: 5 (Failed: 0, Cancelled 0), Skipped: 2",
    )


def test_a_failure_stops_the_graph_and_finally_still_runs() -> None:
    run = state()
    start(run, 1)
    run.task_finished("lint", sch.Outcome.FAILED, {}, 2)
    assert start(run, 2) == []  # test still runs; nothing new starts
    run.task_finished("test", sch.Outcome.SUCCEEDED, {}, 3)
    assert start(run, 3) == ["report"]
    assert {s["reason"] for s in run.skipped_tasks()} == {"PipelineRun was stopping"}
    run.task_finished("report", sch.Outcome.SUCCEEDED, {}, 4)
    assert run.condition(4) == (
        "False",
        "Failed",
        "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 4",
    )


def test_cancel_stops_everything_without_finally() -> None:
    run = state()
    start(run, 1)
    run.cancel("Cancelled")
    assert sorted(run.to_cancel()) == ["lint", "test"]
    run.task_finished("lint", sch.Outcome.CANCELLED, {}, 2)
    run.task_finished("test", sch.Outcome.CANCELLED, {}, 2)
    assert run.schedule(2) == []
    assert run.done
    assert run.condition(2) == ("False", "Cancelled", 'PipelineRun "ci-1" was cancelled')


def test_cancelled_run_finally_runs_finally() -> None:
    run = state()
    start(run, 1)
    run.cancel("CancelledRunFinally")
    assert run.condition(1)[1] == "CancelledRunningFinally"
    run.task_finished("lint", sch.Outcome.CANCELLED, {}, 2)
    run.task_finished("test", sch.Outcome.CANCELLED, {}, 2)
    assert start(run, 2) == ["report"]
    run.task_finished("report", sch.Outcome.SUCCEEDED, {}, 3)
    assert run.condition(3) == ("False", "Cancelled", 'PipelineRun "ci-1" was cancelled')


def test_pipeline_timeout() -> None:
    run = state(pipeline=10.0)
    start(run, 1)
    assert run.next_deadline() == 10.0
    assert run.expire(5) is None
    assert run.expire(10) == "pipeline"
    assert sorted(run.to_cancel()) == ["lint", "test"]
    run.task_finished("lint", sch.Outcome.CANCELLED, {}, 11)
    run.task_finished("test", sch.Outcome.CANCELLED, {}, 11)
    assert run.schedule(11) == []
    assert run.done
    assert run.condition(11) == (
        "False",
        "PipelineRunTimeout",
        'PipelineRun "ci-1" failed to finish within "10s"',
    )


def test_tasks_timeout_lets_finally_run() -> None:
    run = state(tasks=5.0)
    start(run, 1)
    assert run.expire(5) == "tasks"
    run.task_finished("lint", sch.Outcome.CANCELLED, {}, 6)
    run.task_finished("test", sch.Outcome.CANCELLED, {}, 6)
    assert start(run, 6) == ["report"]
    assert run.condition(6)[1] == "PipelineRunTimeoutRunningFinally"
    run.task_finished("report", sch.Outcome.SUCCEEDED, {}, 7)
    assert run.condition(7) == (
        "False",
        "PipelineRunTimeout",
        'PipelineRun "ci-1" failed due to tasks failed to finish within "5s"',
    )


def test_results_flow_and_pipeline_results() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      results: [{name: both, value: "$(tasks.a.results.x)-$(tasks.b.results.y)"}]
      tasks:
      - {name: a, taskRef: {name: t}}
      - {name: b, taskRef: {name: t}, params: [{name: p, value: "$(tasks.a.results.x)"}]}
    """
    run = state(text)
    assert start(run, 1) == ["a"]
    run.task_finished("a", sch.Outcome.SUCCEEDED, {"x": "1"}, 2)
    launches = run.schedule(2)
    assert [(launch.name, launch.params) for launch in launches] == [("b", {"p": "1"})]
    run.task_started("b", 2)
    run.task_finished("b", sch.Outcome.SUCCEEDED, {"y": "2"}, 3)
    assert run.condition(3)[:2] == ("True", "Succeeded")
    assert run.results() == [{"name": "both", "value": "1-2"}]


def test_a_missing_result_of_a_task_that_succeeded_fails_the_run() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      tasks:
      - {name: a, taskRef: {name: t}}
      - {name: b, taskRef: {name: t}, params: [{name: p, value: "$(tasks.a.results.x)"}]}
    """
    run = state(text)
    start(run, 1)
    run.task_finished("a", sch.Outcome.SUCCEEDED, {}, 2)
    assert run.schedule(2) == []
    assert run.done
    assert run.condition(2) == (
        "False",
        "InvalidTaskResultReference",
        "Invalid task result reference: Could not find result with name x for task a",
    )


def test_matrix_combinations_as_tekton_documents_them() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      tasks:
      - name: build
        taskRef: {name: t}
        matrix:
          params:
          - {name: platform, value: [linux, mac]}
          - {name: browser, value: [safari, chrome]}
          include:
          - name: linux-url
            params: [{name: platform, value: linux}, {name: url, value: some-url}]
          - name: non-existent-browser
            params: [{name: browser, value: i-do-not-exist}]
    """
    run = state(text)
    (launch,) = run.schedule(0)
    # Tekton's order: the first param varies fastest (matrix_types.go, `distribute`).
    assert launch.combinations == (
        {"platform": "linux", "browser": "safari", "url": "some-url"},
        {"platform": "mac", "browser": "safari"},
        {"platform": "linux", "browser": "chrome", "url": "some-url"},
        {"platform": "mac", "browser": "chrome"},
        {"browser": "i-do-not-exist"},
    )


def test_an_empty_matrix_skips_its_task() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      tasks:
      - {name: a, taskRef: {name: t}}
      - name: b
        taskRef: {name: t}
        matrix: {params: [{name: x, value: "$(tasks.a.results.list[*])"}]}
    """
    run = state(text)
    start(run, 0)
    run.task_finished("a", sch.Outcome.SUCCEEDED, {"list": []}, 1)
    assert run.schedule(1) == []
    assert run.skipped_tasks() == [{"name": "b", "reason": "Matrix Parameters have an empty array"}]


def test_when_cel() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      params: [{name: deploy}]
      tasks:
      - {name: go, taskRef: {name: t}, when: [{cel: "'$(params.deploy)' == 'no'"}]}
      - {name: stop, taskRef: {name: t}, when: [{cel: "'$(params.deploy)'.startsWith('y')"}]}
    """
    run = state(text)
    assert start(run, 0) == ["go"]
    assert run.skipped_tasks() == [
        {
            "name": "stop",
            "reason": "When Expressions evaluated to false",
            "whenExpressions": [{"cel": "'$(params.deploy)'.startsWith('y')"}],
        }
    ]


def test_a_cel_that_is_not_a_boolean_fails_the_run() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: Pipeline
    metadata: {name: p}
    spec:
      tasks:
      - {name: a, taskRef: {name: t}, when: [{cel: "'a' + 'b'"}]}
    """
    run = state(text)
    assert run.schedule(0) == []
    assert run.done
    assert run.condition(0) == (
        "False",
        "CELEvaluationFailed",
        "Error evaluating CEL ci-1: The CEL expression 'a' + 'b' is not evaluated to a boolean",
    )
