"""ApiServerSource: which changes make which events."""

from __future__ import annotations

import itertools
import json

from amimesh.eventing import apiserver
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource

SOURCE = """
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: watch}
spec:
  mode: %s
  resources:
  - {apiVersion: v1, kind: ConfigMap}
  - {apiVersion: ami.dev/v1alpha1, kind: Workload, selector: {matchLabels: {team: shop}}}
  ceOverrides: {extensions: {origin: mesh}}
  sink: {uri: "http://sink.default.svc.cluster.local"}
"""


def cm(name: str, value: str = "1", ns: str = "default") -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        f"data: {{k: '{value}'}}\n"
    )


def wl(name: str, team: str) -> str:
    return (
        f"apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {{name: {name}, labels: "
        f"{{team: {team}}}}}\nspec: {{command: [x]}}\n"
    )


def resources(*texts: str) -> dict[tuple[str, str, str], Resource]:
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == []
    return apiserver.by_key(result.resources)


def run(mode: str, before: list[str], after: list[str]) -> list[apiserver.Emitted]:
    counter = itertools.count()
    source = SOURCE % mode
    return apiserver.changes(
        resources(source, *before),
        resources(source, *after),
        ids=lambda: f"e{next(counter)}",
        time="2026-12-07T00:00:00Z",
    )


def test_add_update_delete_in_reference_mode() -> None:
    out = run(
        "Reference",
        [cm("same"), cm("changed"), cm("gone"), wl("other-team", "ops")],
        [cm("same"), cm("changed", "2"), cm("new"), cm("elsewhere", ns="ops"), wl("w", "shop")],
    )
    got = [(e.headers["ce-type"], e.headers["ce-subject"]) for e in out]
    assert got == [
        ("dev.knative.apiserver.ref.update", "/api/v1/namespaces/default/configmaps/changed"),
        ("dev.knative.apiserver.ref.delete", "/api/v1/namespaces/default/configmaps/gone"),
        ("dev.knative.apiserver.ref.add", "/api/v1/namespaces/default/configmaps/new"),
        ("dev.knative.apiserver.ref.add", "/apis/ami.dev/v1alpha1/namespaces/default/workloads/w"),
    ]
    first = out[0]
    assert (first.namespace, first.source) == ("default", "watch")
    assert (
        first.headers["ce-origin"] == "mesh" and first.headers["ce-source"] == "ami://controlplane"
    )
    assert json.loads(first.body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "changed",
        "namespace": "default",
    }


def test_resource_mode_carries_the_object() -> None:
    (e,) = run("Resource", [], [cm("new", "7")])
    assert e.headers["ce-type"] == "dev.knative.apiserver.resource.add"
    assert json.loads(e.body)["data"] == {"k": "7"}
