"""SinkBinding: which workloads get K_SINK and K_CE_OVERRIDES, and that the others are
left as they are (so nothing else restarts)."""

from __future__ import annotations

import json

from amimesh.eventing.binding import bound
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload


def workload(name: str, labels: str = "{}", ns: str = "default", env: str = "[]") -> str:
    return f"""
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: {name}, namespace: {ns}, labels: {labels}}}
spec: {{command: [python, app.py], env: {env}}}
"""


def binding(subject: str, name: str = "bind", overrides: str = "") -> str:
    extra = f"\n  ceOverrides: {{extensions: {overrides}}}" if overrides else ""
    return f"""
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {{name: {name}}}
spec:
  subject: {subject}
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}}}{extra}
"""


BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
SINK = "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"


def run(*texts: str) -> tuple[list[Workload], dict[str, dict[str, str]]]:
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == []
    resources: list[Resource] = result.resources
    workloads = [r for r in resources if isinstance(r, Workload)]
    out = [w for w in bound(workloads, resources) if isinstance(w, Workload)]
    envs = {f"{w.namespace}/{w.name}": {e.name: e.value for e in w.spec.env} for w in out}
    return out, envs


def test_by_name_with_overrides_and_the_others_untouched() -> None:
    before, _ = run(workload("producer"), workload("other"))
    out, envs = run(
        BROKER,
        workload("producer", env="[{name: K_SINK, value: old}, {name: KEEP, value: x}]"),
        workload("other"),
        binding(
            "{apiVersion: ami.dev/v1alpha1, kind: Workload, name: producer}",
            overrides="{team: shop}",
        ),
    )
    assert envs["default/producer"] == {
        "KEEP": "x",
        "K_SINK": SINK,
        "K_CE_OVERRIDES": json.dumps({"extensions": {"team": "shop"}}),
    }
    assert envs["default/other"] == {}
    assert out[1] == before[1]  # unchanged: its instances are not restarted


def test_a_deployment_subject_by_selector() -> None:
    _, envs = run(
        BROKER,
        workload("a", "{app: shop}"),
        workload("b", "{app: other}"),
        workload("c", "{app: shop}", ns="elsewhere"),
        binding("{apiVersion: apps/v1, kind: Deployment, selector: {matchLabels: {app: shop}}}"),
    )
    assert "K_SINK" in envs["default/a"]
    assert "K_SINK" not in envs["default/b"] and "K_SINK" not in envs["elsewhere/c"]


def test_a_knative_service_subject_binds_its_revisions() -> None:
    _, envs = run(
        BROKER,
        workload("hello-00001", "{serving.knative.dev/service: hello}"),
        workload("bye-00001", "{serving.knative.dev/service: bye}"),
        binding("{apiVersion: serving.knative.dev/v1, kind: Service, name: hello}"),
    )
    assert envs["default/hello-00001"]["K_SINK"] == SINK
    assert "K_SINK" not in envs["default/bye-00001"]


def test_a_binding_whose_sink_is_missing_binds_nothing() -> None:
    _, envs = run(
        workload("producer"),
        binding("{apiVersion: ami.dev/v1alpha1, kind: Workload, name: producer}"),
    )
    assert envs["default/producer"] == {}


def test_an_unbindable_subject_is_an_error() -> None:
    result = parse_documents(binding("{apiVersion: v1, kind: Pod, name: p}"), "x.yaml")
    assert [str(e) for e in result.errors] == [
        "x.yaml: document 0 (line 2): SinkBinding/default/bind: spec.subject: Ami binds "
        "Workloads, Deployments, StatefulSets, DaemonSets, Jobs and Knative Services, got "
        "Pod (v1)"
    ]
