"""Telemetry: validation (golden errors) and which one decides a proxy's access log."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.model import telemetry
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import parse_documents
from amimesh.resources.istio_telemetry import Telemetry


def tel(name: str, namespace: str, spec: str, version: str = "v1") -> str:
    head = (
        f"apiVersion: telemetry.istio.io/{version}\nkind: Telemetry\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
    )
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


def load(*texts: str) -> list[Telemetry]:
    result = parse_documents("\n---\n".join(texts), "t.yaml")
    assert result.ok, [str(e) for e in result.errors]
    out = [r for r in result.resources if isinstance(r, Telemetry)]
    assert len(out) == len(result.resources)
    return out


# --- validation ------------------------------------------------------------------------

BAD: list[tuple[str, str, list[str]]] = [
    (
        "other providers, filter, match",
        tel(
            "a",
            "shop",
            """\
            accessLogging:
            - providers: [{name: otel}, {name: envoy}]
              filter: {expression: "response.code >= 400"}
              match: {mode: CLIENT}
            - disabled: maybe
            """,
        ),
        [
            "spec.accessLogging[0].filter: is not supported by Ami yet",
            "spec.accessLogging[0].match: is not supported by Ami yet",
            'spec.accessLogging[1].disabled: must be true or false, got "maybe"',
        ],
    ),
    (
        "targetRefs come later",
        tel("a", "shop", "targetRefs: [{kind: Gateway, name: x}]\n"),
        ["spec.targetRefs: is not supported by Ami yet"],
    ),
    (
        "selector labels",
        tel("a", "shop", 'selector: {matchLabels: {"ap*": web}}\naccessLogging: [{}]\n'),
        [
            'spec.selector.matchLabels["ap*"]: wildcards are not allowed in a selector, '
            'got "ap*": "web"'
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_invalid_telemetry(text: str, expected: list[str]) -> None:
    result = parse_documents(text, "t.yaml")
    prefix = "t.yaml: document 0 (line 1): Telemetry/shop/a: "
    assert [str(e) for e in result.errors] == [prefix + e for e in expected]


def test_versions() -> None:
    assert len(load(tel("a", "shop", "{}\n", "v1alpha1"), tel("b", "shop", "{}\n"))) == 2
    result = parse_documents(tel("a", "shop", "{}\n", "v1beta1"), "t.yaml")
    assert [e.message for e in result.errors] == [
        "Telemetry is not served at telemetry.istio.io/v1beta1; use "
        "telemetry.istio.io/v1alpha1 or telemetry.istio.io/v1"
    ]


# --- selection -------------------------------------------------------------------------

OFF = "accessLogging: [{disabled: true}]\n"
ON = "accessLogging: [{providers: [{name: envoy}], disabled: false}]\n"
WEB = "selector: {matchLabels: {app: web}}\n"


def enabled(
    texts: list[str], namespace: str = "shop", labels: dict[str, str] | None = None
) -> bool:
    snap = build_snapshot(load(*texts) if texts else [])
    return snap.access_log_policy(namespace, labels or {"app": "web"}).enabled


def test_default_is_on() -> None:
    assert telemetry.DEFAULT_ACCESS_LOGGING
    assert enabled([])
    # A Telemetry that says nothing of access logs does not decide.
    assert enabled([tel("m", "istio-system", "{}\n"), tel("n", "shop", WEB)])


def test_workload_over_namespace_over_mesh() -> None:
    mesh_off = tel("m", "istio-system", OFF)
    ns_on = tel("n", "shop", ON)
    web_off = tel("w", "shop", WEB + OFF)
    assert not enabled([mesh_off])
    assert enabled([mesh_off, ns_on])
    assert not enabled([mesh_off, ns_on, web_off])
    assert enabled([mesh_off, ns_on, web_off], labels={"app": "api"})
    assert not enabled([mesh_off, ns_on, web_off], namespace="other")
    # A selector in the root namespace selects only its own workloads.
    assert enabled([tel("g", "istio-system", WEB + OFF)])


def test_last_entry_for_envoy_wins() -> None:
    both = "accessLogging:\n- disabled: true\n- providers: [{name: envoy}]\n"
    assert enabled([tel("n", "shop", both)])
    assert not enabled([tel("n", "shop", "accessLogging:\n- {}\n- disabled: true\n")])
