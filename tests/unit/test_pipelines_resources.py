"""Tekton's kinds: they load, and bad input gets Tekton's error on the field at fault."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.resources import parse_documents
from amimesh.resources import tekton as tk

TASK = """
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: build}
spec:
  params:
  - {name: who, default: world}
  - {name: files, type: array, default: [a, b]}
  - {name: repo, type: object, properties: {url: {}, rev: {}}, default: {url: u, rev: main}}
  results: [{name: digest}]
  workspaces: [{name: source}]
  stepTemplate: {image: alpine, env: [{name: A, value: "1"}]}
  steps:
  - name: say
    script: echo $(params.who) $(params.repo.url) > $(results.digest.path)
  - name: list
    command: [ls]
    args: ["$(params.files[*])", "$(workspaces.source.path)", "$(params.files[0])"]
"""


def errors(text: str) -> list[str]:
    result = parse_documents(textwrap.dedent(text), "t.yaml")
    return [str(e) for e in result.errors]


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def test_a_task_with_every_kind_of_param_loads() -> None:
    result = parse_documents(TASK, "t.yaml")
    assert result.errors == []
    (task,) = result.resources
    assert isinstance(task, tk.Task)
    assert [p.name for p in task.spec.params] == ["who", "files", "repo"]


def test_v1beta1_is_read_as_v1() -> None:
    result = parse_documents(TASK.replace("tekton.dev/v1", "tekton.dev/v1beta1"), "t.yaml")
    assert result.errors == []


def test_unknown_param_in_a_step() -> None:
    bad = TASK.replace("echo $(params.who)", "echo $(params.nobody)")
    assert one_error(bad).endswith(
        'Task/default/build: spec.steps[0].script: non-existent variable in "$(params.nobody)"'
    )


def test_array_param_not_isolated() -> None:
    bad = TASK.replace('"$(params.files[*])"', '"-f=$(params.files[*])"')
    assert "spec.steps[1].args[0]: variable is not properly isolated" in one_error(bad)


def test_default_of_the_wrong_type() -> None:
    bad = TASK.replace("{name: who, default: world}", "{name: who, type: array, default: world}")
    found = errors(bad)
    assert found[0].endswith(
        'spec.params[0].default: "array" type does not match default value\'s type: "string"'
    )
    assert 'variable type invalid in "$(params.who)"' in found[1]


def test_script_with_command() -> None:
    bad = TASK.replace("    script: echo", "    command: [sh]\n    script: echo")
    assert one_error(bad).endswith("spec.steps[0].script: script cannot be used with command")


def test_bad_duration() -> None:
    bad = TASK.replace("  - name: say\n", "  - name: say\n    timeout: 10 minutes\n")
    message = one_error(bad)
    assert "spec.steps[0].timeout:" in message
    assert "10 minutes" in message


def pipeline(tasks: str, final: str = "") -> str:
    text = (
        "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: ci}\nspec:\n"
        "  params: [{name: rev, default: main}]\n  tasks:\n"
    )
    text += textwrap.indent(textwrap.dedent(tasks).strip() + "\n", "  ")
    if final:
        text += "  finally:\n" + textwrap.indent(textwrap.dedent(final).strip() + "\n", "  ")
    return text


def test_a_cycle() -> None:
    bad = pipeline(
        """
        - {name: a, taskRef: {name: t}, runAfter: [b]}
        - {name: b, taskRef: {name: t}, params: [{name: x, value: "$(tasks.a.results.r)"}]}
        """
    )
    assert one_error(bad).endswith(
        'Pipeline/default/ci: spec.tasks: invalid value: cycle detected; task "a" depends on "b"'
    )


def test_a_result_of_a_task_that_is_not_there() -> None:
    bad = pipeline(
        """
        - {name: a, taskRef: {name: t}, params: [{name: x, value: "$(tasks.gone.results.r)"}]}
        """
    )
    assert one_error(bad).endswith(
        "spec.tasks: invalid value: task a depends on gone but gone wasn't present in Pipeline"
    )


def test_finally_uses_a_result_of_finally() -> None:
    bad = pipeline(
        "- {name: a, taskRef: {name: t}}\n",
        """
        - {name: f1, taskRef: {name: t}}
        - {name: f2, taskRef: {name: t}, params: [{name: x, value: "$(tasks.f1.results.r)"}]}
        """,
    )
    assert one_error(bad).endswith(
        "spec.finally[1]: invalid task result reference, final task has task result reference "
        "from a final task f1"
    )


def test_unknown_param_in_a_pipeline_task() -> None:
    bad = pipeline('- {name: a, taskRef: {name: t}, params: [{name: x, value: "$(params.tag)"}]}\n')
    assert one_error(bad).endswith(
        'spec.tasks[0].params[0].value: non-existent variable in "$(params.tag)"'
    )


def test_when_without_values_and_operator() -> None:
    bad = pipeline('- {name: a, taskRef: {name: t}, when: [{input: "$(params.rev)"}]}\n')
    found = errors(bad)
    assert any(
        e.endswith('spec.tasks[0].when[0].operator: missing field(s): operator ("in" or "notin")')
        for e in found
    ), found
    assert any(
        e.endswith("spec.tasks[0].when[0].values: expecting non-empty values field") for e in found
    ), found


def test_task_ref_and_task_spec() -> None:
    bad = pipeline("- {name: a}\n")
    assert one_error(bad).endswith(
        "spec.tasks[0]: expected exactly one, got neither: taskRef, taskSpec"
    )


def test_runafter_in_finally() -> None:
    bad = pipeline(
        "- {name: a, taskRef: {name: t}}\n", "- {name: f, taskRef: {name: t}, runAfter: [a]}\n"
    )
    assert one_error(bad).endswith(
        "spec.finally[0].runAfter: no runAfter allowed under spec.finally"
    )


def test_embedded_task_sees_the_pipelines_params() -> None:
    ok = pipeline(
        '- {name: a, taskSpec: {steps: [{image: alpine, script: "echo $(params.rev)"}]}}\n'
    )
    assert errors(ok) == []


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ("{pipeline: 1h, tasks: 2h}", 'spec.timeouts.tasks: "2h" should be <= pipeline duration'),
        (
            "{pipeline: 1h, tasks: 40m, finally: 30m}",
            '"40m" + "30m" should be <= pipeline duration',
        ),
        ("{pipeline: 1y}", "spec.timeouts.pipeline: unknown unit"),
    ],
)
def test_pipelinerun_timeouts(timeouts: str, message: str) -> None:
    text = f"""
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {{name: ci-1}}
    spec:
      pipelineRef: {{name: ci}}
      timeouts: {timeouts}
    """
    assert message in one_error(textwrap.dedent(text))


def test_pipelinerun_workspace_needs_one_source() -> None:
    text = """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: ci-1}
    spec:
      pipelineRef: {name: ci}
      workspaces:
      - {name: a, emptyDir: {}, persistentVolumeClaim: {claimName: c}}
      - {name: b}
      - {name: c, secret: {secretName: s}}
      - {name: d, secret: {secretName: s}, configMap: {name: m}}
    """
    found = errors(text)
    assert any(
        e.endswith(
            "spec.workspaces[0]: expected exactly one, got both: emptyDir, persistentVolumeClaim"
        )
        for e in found
    ), found
    assert any("spec.workspaces[1]: expected exactly one, got neither" in e for e in found), found
    assert not any("workspaces[2]" in e for e in found), found  # a secret is a source
    assert any(
        e.endswith("spec.workspaces[3]: expected exactly one, got both: configMap, secret")
        for e in found
    ), found


def test_matrix_params_are_arrays_and_not_also_params() -> None:
    bad = pipeline(
        """
        - name: a
          taskRef: {name: t}
          params: [{name: os, value: linux}]
          matrix:
            params:
            - {name: os, value: [linux, mac]}
            - {name: arch, value: amd64}
        """
    )
    found = errors(bad)
    assert any(
        e.endswith(
            "spec.tasks[0].matrix.params[0].name: parameter names must be unique, the parameter "
            '"os" is also defined in params'
        )
        for e in found
    ), found
    assert any(
        "spec.tasks[0].matrix.params[1].value: a matrix param is an array" in e for e in found
    )


def test_when_cel_is_compiled_and_alone() -> None:
    found = errors(
        pipeline(
            """
            - {name: a, taskRef: {name: t}, when: [{cel: "$(params.rev) == 'main'"}]}
            - {name: b, taskRef: {name: t}, when: [{cel: "true", input: x}]}
            """
        )
    )
    assert any(
        "spec.tasks[0].when[0].cel: invalid cel expression: $(params.rev) == 'main' with err:" in e
        for e in found
    ), found
    assert any(
        e.endswith(
            "spec.tasks[1].when[0]: cel and input+operator+values cannot be set in one "
            "WhenExpression"
        )
        for e in found
    ), found


def test_volume_mounts_name_a_volume_outside_tekton() -> None:
    bad = TASK.replace(
        "  - name: say\n",
        "  - name: say\n    volumeMounts: [{name: nope, mountPath: /tekton/x}]\n",
    )
    found = errors(bad)
    assert any(
        e.endswith('spec.steps[0].volumeMounts[0].name: Not found: "nope": no volume of that name')
        for e in found
    ), found
    assert any(
        e.endswith(
            "spec.steps[0].volumeMounts[0].mountPath: volumeMount cannot be mounted under /tekton/"
        )
        for e in found
    ), found
