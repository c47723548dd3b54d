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


def test_the_object_is_named_in_extensions_as_knative_does() -> None:
    (e,) = run("Reference", [], [wl("w", "shop")])
    assert e.headers["ce-kind"] == "Workload"
    assert e.headers["ce-apiversion"] == "ami.dev/v1alpha1"
    assert (e.headers["ce-name"], e.headers["ce-namespace"]) == ("w", "default")


def test_filters_leave_out_the_events_they_fail() -> None:
    filtered = SOURCE.replace(
        "  ceOverrides:",
        "  filters:\n"
        "  - any:\n"
        "    - exact: {type: dev.knative.apiserver.ref.add}\n"
        "    - cesql: \"kind = 'Workload'\"\n"
        "  - not: {prefix: {name: tmp-}}\n"
        # The overrides come after the filters: they cannot be filtered on.
        "  - not: {exact: {origin: mesh}}\n"
        "  ceOverrides:",
    )
    counter = itertools.count()
    before = [cm("changed"), cm("gone"), wl("w", "shop")]
    after = [cm("changed", "2"), cm("new"), cm("tmp-new"), wl("w", "shop"), wl("w2", "shop")]
    out = apiserver.changes(
        resources(filtered % "Reference", *before),
        resources(filtered % "Reference", *after),
        ids=lambda: f"e{next(counter)}",
        time="2026-12-07T00:00:00Z",
    )
    got = [(e.headers["ce-type"], e.headers["ce-name"]) for e in out]
    # ConfigMaps: only adds, and not tmp-new; Workloads: every change.
    assert got == [
        ("dev.knative.apiserver.ref.add", "new"),
        ("dev.knative.apiserver.ref.add", "w2"),
    ]
    assert all(e.headers["ce-origin"] == "mesh" for e in out)


def test_a_filter_with_two_dialects_is_refused() -> None:
    bad = SOURCE.replace(
        "  ceOverrides:", "  filters:\n  - {exact: {type: a}, prefix: {type: b}}\n  ceOverrides:"
    )
    result = parse_documents(bad % "Reference", "x.yaml")
    (error,) = result.errors
    assert "spec.filters[0]" in str(error) and "dialect" in str(error)
