"""Variables from ConfigMaps and Secrets (`model.env_from`) and their YAML."""

from __future__ import annotations

import base64

from amimesh.model import env_from
from amimesh.resources import Workload, parse_documents
from amimesh.resources.meta import Resource

TOKEN_B64 = base64.b64encode(b"a$(b)c").decode()
RAW_B64 = base64.b64encode(bytes([0xFF])).decode()
SOURCES = f"""
apiVersion: v1
kind: Secret
metadata: {{name: api, namespace: shop}}
data: {{token: {TOKEN_B64}, raw: {RAW_B64}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: shop}}
data: {{mode: fast}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: other}}
data: {{mode: slow}}
"""


def workload(env: str, name: str = "w") -> str:
    return (
        f"apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {{name: {name}, namespace: shop}}"
        f"\nspec:\n  command: [x]\n  env:\n{env}"
    )


def parsed(*texts: str) -> list[Resource]:
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == [], [str(e) for e in result.errors]
    return list(result.resources)


def env_of(r: Resource) -> dict[str, str]:
    assert isinstance(r, Workload)
    return {e.name: e.value for e in r.spec.env}


def test_values_are_read_from_the_workloads_namespace_and_kept_literal() -> None:
    env = (
        "  - {name: A, value: x}\n"
        "  - {name: TOKEN, valueFrom: {secretKeyRef: {name: api, key: token}}}\n"
        "  - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}\n"
        "  - name: GONE\n"
        "    valueFrom: {configMapKeyRef: {name: settings, key: missing, optional: true}}\n"
    )
    every = parsed(SOURCES, workload(env))
    out, missing = env_from.resolved([r for r in every if isinstance(r, Workload)], every)
    assert missing == []
    # `$$` is what the node agent's expansion makes one `$`: no `$(b)` is expanded.
    assert env_of(out[0]) == {"A": "x", "TOKEN": "a$$(b)c", "MODE": "fast"}


def test_a_workload_whose_key_is_missing_is_left_out_and_says_why() -> None:
    env = (
        "  - {name: T, valueFrom: {secretKeyRef: {name: nope, key: token}}}\n"
        "  - {name: U, valueFrom: {secretKeyRef: {name: api, key: nokey}}}\n"
        "  - {name: V, valueFrom: {secretKeyRef: {name: api, key: raw}}}\n"
    )
    plain = workload("  - {name: A, value: x}\n", "plain")
    every = parsed(SOURCES, workload(env), plain)
    workloads = [r for r in every if isinstance(r, Workload)]
    out, missing = env_from.resolved(workloads, every)
    assert [r.name for r in out] == ["plain"]
    assert [(m.workload.name, m.field, m.message) for m in missing] == [
        ("w", "spec.env[0].valueFrom.secretKeyRef", 'no Secret "nope" in namespace "shop"'),
        ("w", "spec.env[1].valueFrom.secretKeyRef", 'Secret "api" has no key "nokey"'),
        (
            "w",
            "spec.env[2].valueFrom.secretKeyRef",
            'Secret "api": the value of "raw" is not UTF-8 text',
        ),
    ]


def test_the_yaml_is_checked_as_kubernetes_checks_it() -> None:
    cases = {
        "  - {name: A, value: x, valueFrom: {secretKeyRef: {name: a, key: b}}}\n": (
            "may not be set when `value` is not empty"
        ),
        "  - {name: A, valueFrom: {}}\n": "exactly one of configMapKeyRef, secretKeyRef",
        "  - {name: A, valueFrom: {secretKeyRef: {name: a}}}\n": "key: is required",
        "  - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n": "not supported",
    }
    for env, message in cases.items():
        errors = [str(e) for e in parse_documents(workload(env), "x.yaml").errors]
        assert any(message in e for e in errors), (env, errors)


def test_a_knative_revision_passes_the_references_on() -> None:
    from amimesh.serving import expand

    ksvc = (
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: hello, "
        "namespace: shop}\nspec:\n  template:\n    spec:\n      containers:\n"
        "      - image: example.com/hello\n        command: [x]\n        env:\n"
        "        - {name: TOKEN, valueFrom: {secretKeyRef: {name: api, key: token}}}\n"
    )
    every = parsed(SOURCES, ksvc)
    out = expand.expand(every, [], now=0.0)
    (w,) = [d for d in out.derived if d["kind"] == "Workload"]
    token = next(e for e in w["spec"]["env"] if e["name"] == "TOKEN")
    assert token == {
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "api", "key": "token", "optional": False}},
    }
