"""Tekton Triggers' pure logic: bindings, templates, the github and cel interceptors,
the kinds' checks, references across resources, Secrets shown redacted."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from amimesh.cli.validate import validate_paths
from amimesh.controlplane.api_json import resource_json
from amimesh.pipelines import interceptors as icp
from amimesh.pipelines import listeners
from amimesh.pipelines import triggers as trg
from amimesh.resources import parse_documents
from amimesh.resources import tekton_triggers as tt
from amimesh.resources.kube import Secret

SECRET = b"it's a secret"
PUSH = {
    "ref": "refs/heads/main",
    "head_commit": {"id": "abc123def456"},
    "repository": {"name": "shop", "topics": ["a", "b"], "dev.tekton.dev/x": "dotted"},
    "commits": [{"id": "c1"}, {"id": "c2"}],
    "size": 2,
}


def event(body: Any = PUSH, **headers: str) -> trg.Event:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    given = {"Content-Type": ["application/json"]}
    given.update({k.replace("_", "-"): [v] for k, v in headers.items()})
    return trg.Event.of(raw, given)


def secret_of(ns: str, name: str, key: str) -> bytes | None:
    return SECRET if (ns, name, key) == ("default", "gh", "token") else None


def signed(body: Any = PUSH, secret: bytes = SECRET, **headers: str) -> trg.Event:
    raw = json.dumps(body).encode()
    sig = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return event(raw, X_Hub_Signature_256=sig, **headers)


def params(*pairs: tuple[str, str]) -> list[tt.Param]:
    return [tt.Param(name=n, value=v) for n, v in pairs]


# --- bindings --------------------------------------------------------------------------


def test_bindings_read_the_body_headers_and_extensions() -> None:
    e = event(X_GitHub_Event="push")
    got = trg.resolve_params(
        params(
            ("revision", "$(body.head_commit.id)"),
            ("repo", "repo=$(body.repository.name)"),
            ("topic", "$(body.repository.topics[1])"),
            ("commits", "$(body.commits)"),
            ("size", "$(body.size)"),
            ("event", "$(header.X-GitHub-Event)"),
            ("lower", "$(header.x-github-event)"),
            ("dotted", r"$(body.repository.dev\.tekton\.dev/x)"),
            ("short", "$(extensions.short)"),
            ("literal", "prod"),
        ),
        [],
        e,
        {"short": "abc"},
    )
    assert got == {
        "revision": "abc123def456",
        "repo": "repo=shop",
        "topic": "b",
        "commits": '[{"id":"c1"},{"id":"c2"}]',
        "size": "2",
        "event": "push",
        "lower": "push",
        "dotted": "dotted",
        "short": "abc",
        "literal": "prod",
    }


def test_a_missing_path_takes_the_default_or_fails() -> None:
    declared = [tt.ParamSpec(name="branch", default="main"), tt.ParamSpec(name="x")]
    got = trg.resolve_params(params(("branch", "$(body.nope)")), declared, event(), {})
    assert got == {"branch": "main"}
    with pytest.raises(trg.ResolveError, match="failed to replace JSONPath value for param x"):
        trg.resolve_params(params(("x", "$(body.nope.deeper)")), declared, event(), {})


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError, match="failed to unmarshal request body"):
        trg.Event.of(b"ref=main", {})


# --- templates -------------------------------------------------------------------------


def template(**extra: Any) -> tt.TriggerTemplateSpec:
    return tt.TriggerTemplateSpec.model_validate(
        {
            "params": [{"name": "revision"}, {"name": "env", "default": "staging"}],
            "resourcetemplates": [
                {
                    "apiVersion": "tekton.dev/v1",
                    "kind": "PipelineRun",
                    "metadata": {"generateName": "build-", "labels": {"app": "shop"}},
                    "spec": {
                        "pipelineRef": {"name": "build"},
                        "params": [
                            {"name": "revision", "value": "$(tt.params.revision)"},
                            {"name": "env", "value": "to $(tt.params.env)"},
                            {"name": "id", "value": "$(uid)"},
                        ],
                    },
                }
            ],
            **extra,
        }
    )


def test_a_template_puts_params_in_and_names_the_run() -> None:
    [run] = trg.render(
        template(),
        {"revision": "abc"},
        uid="u-1",
        suffix=lambda: "xyz12",
        labels={trg.EVENTID_LABEL: "e-1"},
    )
    assert run["metadata"] == {
        "name": "build-xyz12",
        "labels": {"app": "shop", trg.EVENTID_LABEL: "e-1"},
    }
    assert run["spec"]["params"] == [
        {"name": "revision", "value": "abc"},
        {"name": "env", "value": "to staging"},
        {"name": "id", "value": "u-1"},
    ]


def test_a_param_with_no_value_and_no_default_fails_the_trigger() -> None:
    with pytest.raises(trg.ResolveError, match="param revision has no value"):
        trg.render(template(), {}, uid="u", suffix=lambda: "a")


# --- the github interceptor ----------------------------------------------------------


GITHUB = tt.GithubInterceptor(
    secretRef=tt.SecretRef(secretName="gh", secretKey="token"), eventTypes=["push"]
)


def test_github_accepts_a_correctly_signed_push() -> None:
    assert icp.github(GITHUB, signed(X_GitHub_Event="push"), "default", secret_of) is None


@pytest.mark.parametrize(
    ("e", "why"),
    [
        (signed(secret=b"wrong", X_GitHub_Event="push"), "payload signature check failed"),
        (event(X_GitHub_Event="push"), "no X-Hub-Signature-256 header set"),
        (
            event(X_GitHub_Event="push", X_Hub_Signature_256="sha1=00"),
            "payload signature check failed",
        ),
        (signed(X_GitHub_Event="issues"), "event type issues is not allowed"),
        (signed(), "event type  is not allowed"),
        (
            event(X_GitHub_Event="push", Content_Type="application/x-www-form-urlencoded"),
            "form parameter encoding not supported",
        ),
    ],
    ids=["wrong-secret", "no-signature", "wrong-scheme", "wrong-event", "no-event", "form"],
)
def test_github_refuses(e: trg.Event, why: str) -> None:
    assert why in (icp.github(GITHUB, e, "default", secret_of) or "")


def test_github_signature_over_a_changed_body_fails() -> None:
    good = signed(X_GitHub_Event="push")
    tampered = trg.Event.of(good.body + b" ", {k: list(v) for k, v in good.headers.items()})
    assert icp.github(GITHUB, tampered, "default", secret_of) == "payload signature check failed"


def test_github_without_the_secret_says_so() -> None:
    ref = tt.SecretRef(secretName="gh", secretKey="other")
    why = icp.github(tt.GithubInterceptor(secretRef=ref), signed(), "default", secret_of)
    assert why is not None and "has no key other" in why


# --- the cel interceptor ---------------------------------------------------------------


def cel(filter: str = "", **overlays: str) -> tt.TriggerInterceptor:
    value: list[dict[str, str]] = [{"key": k, "expression": v} for k, v in overlays.items()]
    return tt.TriggerInterceptor.model_validate(
        {
            "ref": {"name": "cel"},
            "params": [{"name": "filter", "value": filter}, {"name": "overlays", "value": value}],
        }
    )


def test_cel_filter_and_overlays() -> None:
    chain = [
        cel(
            "body.ref == 'refs/heads/main' && header.match('x-github-event', 'push')",
            short="body.head_commit.id.truncate(7)",
            branch="body.ref.translate('^refs/heads/', '')",
        )
    ]
    v = icp.intercept(chain, event(X_GitHub_Event="push"), "default", secret_of)
    assert not v.stopped
    assert v.extensions == {"short": "abc123d", "branch": "main"}
    got = trg.resolve_params(params(("b", "$(extensions.branch)")), [], event(), v.extensions)
    assert got == {"b": "main"}


def test_a_cel_filter_that_does_not_match_stops_the_trigger() -> None:
    v = icp.intercept([cel("body.ref == 'refs/heads/dev'")], event(), "default", secret_of)
    assert v.stopped and "did not return true" in v.message


def test_an_expression_that_fails_stops_the_trigger() -> None:
    v = icp.intercept([cel("body.nope.deeper == 'x'")], event(), "default", secret_of)
    assert v.stopped and "error evaluating cel expression" in v.message


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("header.canonical('X-GitHub-Event')", "push"),
        ("'{\"a\": [1, 2]}'.parseJSON().a.last()", 2),
        ("'a: [x, y]'.parseYAML().a.first()", "x"),
        ("'https://h.example/p?q=1'.parseURL().host", "h.example"),
        ("body.repository.topics.marshalJSON()", '["a","b"]'),
        ("header.canonical('X-Token').compareSecret('token', 'gh')", True),
        ("header.canonical('X-Token').compareSecret('token', 'gh', 'other-ns')", True),
        ("'wrong'.compareSecret('token', 'gh')", False),
        ("'https://u:p@h.example/p?q=1&q=2'.parseURL().query.q", "1,2"),
        ("'https://h.example/p?q=1&q=2'.parseURL().queryStrings.q", ["1", "2"]),
        ("'https://u:p@h.example/'.parseURL().auth.username", "u"),
        ("'refs/heads/main'.split('/')[2]", "main"),
        ("'a/b/c'.split('/', 2)", ["a", "b/c"]),
        ("['a', 'b'].join('-')", "a-b"),
        ("'MiXed'.lowerAscii() + 'up'.upperAscii()", "mixedUP"),
        ("' x '.trim().replace('x', 'y')", "y"),
        ("'abcdef'.substring(1, 3) + 'abc'.substring(2)", "bcc"),
        ("'abcabc'.indexOf('c') + 'abcabc'.lastIndexOf('c')", 7),
    ],
)
def test_triggers_cel_functions(expression: str, value: Any) -> None:
    e = event(X_GitHub_Event="push", X_Token=SECRET.decode())
    v = icp.intercept([cel("true", out=expression)], e, "default", secret_of)
    assert not v.stopped, v.message
    assert v.extensions["out"] == value


def test_chained_interceptors_stop_at_the_first_refusal() -> None:
    gh = tt.TriggerInterceptor(github=GITHUB)
    v = icp.intercept([gh, cel("true", a="1")], signed(X_GitHub_Event="push"), "default", secret_of)
    assert not v.stopped and v.extensions == {"a": 1}
    v = icp.intercept([gh, cel("true")], event(X_GitHub_Event="push"), "default", secret_of)
    assert v.stopped and v.message == "no X-Hub-Signature-256 header set"


# --- resources and their checks ---------------------------------------------------------

DOCS = """
apiVersion: v1
kind: Secret
metadata: {name: gh}
data: {token: aXQncyBhIHNlY3JldA==}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerBinding
metadata: {name: push}
spec:
  params: [{name: revision, value: $(body.head_commit.id)}]
---
apiVersion: triggers.tekton.dev/v1alpha1
kind: TriggerTemplate
metadata: {name: build}
spec:
  params: [{name: revision}]
  resourcetemplates:
  - apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {generateName: build-}
    spec: {pipelineRef: {name: build}, params: [{name: r, value: $(tt.params.revision)}]}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: Trigger
metadata: {name: push, labels: {ci: "yes"}}
spec:
  interceptors:
  - github: {secretRef: {secretName: gh, secretKey: token}, eventTypes: [push]}
  bindings: [{ref: push}]
  template: {ref: build}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {name: ci}
spec:
  serviceAccountName: sa
  resources: {kubernetesResource: {replicas: 2}}
  triggers:
  - triggerRef: push
  - name: inline
    bindings: [{name: revision, value: $(body.after)}]
    template: {ref: build}
  labelSelector: {matchLabels: {ci: "yes"}}
"""


def test_the_kinds_load_and_a_listener_finds_its_triggers() -> None:
    result = parse_documents(DOCS, "t.yaml")
    assert result.errors == []
    el = next(r for r in result.resources if isinstance(r, tt.EventListener))
    found = trg.listener_triggers(el, result.resources)
    assert [t.name for t in found if isinstance(t, trg.ResolvedTrigger)] == [
        "push",
        "inline",
        "push",
    ]
    assert trg.ref_issues(result.resources) == []
    [workload, service] = listeners.listener_resources(el, api="http://x", token_file="/t")
    assert workload["metadata"]["name"] == service["metadata"]["name"] == "el-ci"
    assert service["spec"]["ports"][0]["port"] == 8080
    assert listeners.url(el) == "http://el-ci.default.svc.cluster.local:8080"


BAD = """
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {name: bad}
spec:
  triggers:
  - name: a
    interceptors:
    - ref: {name: gitlab}
    - ref: {name: cel}
      params: [{name: filter, value: "body.x =="}]
    - ref: {name: cel}
      params: [{name: nope, value: 1}]
    bindings: [{ref: push, name: x, value: y}]
  - name: b
    bindings: [{name: x}]
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerTemplate
metadata: {name: t}
spec:
  params: [{name: a}]
  resourcetemplates:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: c}
  - apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {generateName: r-}
    spec: {params: [{name: p, value: $(tt.params.b)}]}
"""


def test_bad_triggers_say_where_and_why() -> None:
    errors = [f"{e.ref}: {e.field}: {e.message}" for e in parse_documents(BAD, "b.yaml").errors]
    assert errors == [
        "EventListener/default/bad: spec.triggers[0].template: "
        "a trigger needs a template: ref or spec",
        "EventListener/default/bad: spec.triggers[0].bindings[0]: "
        "a binding is a ref, or a name and a value; not both",
        "EventListener/default/bad: spec.triggers[0].interceptors[0]: "
        'interceptor "gitlab" is not supported by Ami yet; Ami runs github and cel',
        "EventListener/default/bad: spec.triggers[0].interceptors[1].filter: "
        "failed to parse the CEL expression 'body.x ==': ERROR: <input>:1:10: Syntax error: "
        "mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', "
        "'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
        "EventListener/default/bad: spec.triggers[0].interceptors[2]: "
        'cel interceptor: unknown param "nope"',
        "EventListener/default/bad: spec.triggers[1].template: "
        "a trigger needs a template: ref or spec",
        "EventListener/default/bad: spec.triggers[1].bindings[0]: "
        "a binding needs a ref, or a name and a value",
        "TriggerTemplate/default/t: spec.resourcetemplates[0]: Ami's triggers create PipelineRuns "
        "and TaskRuns (tekton.dev/v1, tekton.dev/v1beta1); got 'ConfigMap' of 'v1'",
        "TriggerTemplate/default/t: spec.resourcetemplates[1]: "
        "$(tt.params.b) is used but 'b' is not a declared param",
    ]


def test_references_to_nothing_are_errors_with_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        DOCS.replace("secretKey: token", "secretKey: nokey").replace("{ref: push}]", "{ref: pull}]")
    )
    (tmp_path / "b.yaml").write_text(
        """
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {name: other}
spec:
  triggers:
  - triggerRef: missing
  - bindings: [{ref: push, kind: ClusterTriggerBinding}]
    template: {ref: nothing}
"""
    )
    _, errors = validate_paths([tmp_path])
    assert [str(e) for e in errors] == [
        f"{tmp_path}/a.yaml: Trigger.triggers.tekton.dev/default/push: "
        'spec.bindings[0].ref: TriggerBinding "pull" not found',
        f"{tmp_path}/a.yaml: Trigger.triggers.tekton.dev/default/push: "
        'spec.interceptors[0].secretRef: Secret "gh" has no key "nokey"',
        f"{tmp_path}/b.yaml: EventListener/default/other: spec.triggers[0].triggerRef: "
        'Trigger "missing" not found in namespace default',
        f"{tmp_path}/b.yaml: EventListener/default/other: spec.triggers[1].bindings[0].ref: "
        'ClusterTriggerBinding "push" not found',
        f"{tmp_path}/b.yaml: EventListener/default/other: spec.triggers[1].template.ref: "
        'TriggerTemplate "nothing" not found',
    ]


def test_a_secret_is_never_shown() -> None:
    [s] = parse_documents(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        "data: {a: aGVsbG8=}\nstringData: {b: world}\n",
        "s.yaml",
    ).resources
    assert isinstance(s, Secret)
    assert s.value("a") == b"hello" and s.value("b") == b"world"
    shown = json.dumps(resource_json(s)) + repr(s) + str(s)
    assert "aGVsbG8=" not in shown and "world" not in shown
    assert resource_json(s)["data"] == {"a": "<redacted>"}
    bad = parse_documents(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        "data: {a: 'not base64!'}\nstringData: {b: 12345}\n",
        "s.yaml",
    ).errors
    assert [e.field for e in bad] == ["data.a", "stringData.b"]
    assert "not base64" not in str(bad) and "12345" not in str(bad)
