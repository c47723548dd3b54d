"""The registry of kinds: lookup, errors naming what Ami supports, extension."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from amimesh.resources import KINDS, Issue, Kind, KindRegistry, Service, VirtualService
from amimesh.resources.fields import Strict
from amimesh.resources.meta import Resource
from amimesh.resources.parse import parse_documents
from amimesh.resources.registry import UnknownKind


class SidecarSpec(Strict):
    selector: dict[str, str]


class Sidecar(Resource):
    KIND: ClassVar[str] = "WasmPlugin"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: SidecarSpec


def check_sidecar(sc: Sidecar) -> Iterator[Issue]:
    if not sc.spec.selector:
        yield Issue(("spec", "selector"), "must select at least one workload")


SIDECAR = "apiVersion: networking.istio.io/v1\nkind: WasmPlugin\nmetadata: {name: edge}\n"


def test_builtin_kinds() -> None:
    assert KINDS[("", "Service")].model is Service
    assert KINDS[("networking.istio.io", "VirtualService")].model is VirtualService
    assert sorted(name for _, name in KINDS) == [
        "ApiServerSource",
        "Application",
        "AuthorizationPolicy",
        "Broker",
        "Channel",
        "ClusterTriggerBinding",
        "ConfigMap",
        "Configuration",
        "ContainerSource",
        "DestinationRule",
        "EnvoyFilter",
        "EventListener",
        "GRPCRoute",
        "Gateway",
        "Gateway",
        "GatewayClass",
        "HTTPProxy",
        "HTTPRoute",
        "InMemoryChannel",
        "NatsJetStreamChannel",
        "Parallel",
        "PeerAuthentication",
        "PingSource",
        "Pipeline",
        "PipelineRun",
        "ProxyConfig",
        "ReferenceGrant",
        "RequestAuthentication",
        "Revision",
        "Route",
        "Secret",
        "Sequence",
        "Service",
        "Service",
        "ServiceEntry",
        "Sidecar",
        "SinkBinding",
        "Subscription",
        "TCPRoute",
        "TLSRoute",
        "Task",
        "TaskRun",
        "Telemetry",
        "Trigger",
        "Trigger",
        "TriggerBinding",
        "TriggerTemplate",
        "VirtualService",
        "Workload",
        "WorkloadEntry",
    ]
    assert KINDS.resolve("networking.istio.io/v1beta1", "VirtualService").model is VirtualService
    assert KINDS.resolve("v1", "Service").api_versions == ("v1",)


def test_resolve_errors_name_the_field() -> None:
    with pytest.raises(UnknownKind) as unknown:
        KINDS.resolve("v1", "Namespace")
    assert unknown.value.field == "kind"
    assert unknown.value.message.startswith('unknown kind "Namespace" (v1); Ami supports Service')
    with pytest.raises(UnknownKind) as version:
        KINDS.resolve("v2", "Service")
    assert version.value.field == "apiVersion"
    assert version.value.message == "Service is not served at v2; use v1"


def test_a_later_kind_registers_with_its_check() -> None:
    kinds = KINDS.with_kinds(Kind.of(Sidecar, check_sidecar))
    good = parse_documents(
        SIDECAR + "spec: {selector: {istio: ingressgateway}}\n", "sc.yaml", kinds
    )
    assert [r.ref for r in good.resources] == ["WasmPlugin/default/edge"]
    bad = parse_documents(SIDECAR + "spec: {selector: {}}\n", "sc.yaml", kinds)
    assert [str(e) for e in bad.errors] == [
        "sc.yaml: document 0 (line 1): WasmPlugin/default/edge: spec.selector: "
        "must select at least one workload"
    ]
    # The built-in registry is unchanged.
    assert ("networking.istio.io", "WasmPlugin") not in KINDS
    assert parse_documents(SIDECAR + "spec: {selector: {}}\n", "sc.yaml").errors[0].field == "kind"


def test_a_kind_registers_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        KindRegistry([Kind.of(Sidecar), Kind.of(Sidecar)])


def test_check_receives_its_own_type() -> None:
    kind = Kind.of(Sidecar, check_sidecar)
    with pytest.raises(TypeError):
        kind.check(
            KINDS.resolve("v1", "Service").model.model_validate(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "a"},
                    "spec": {"ports": [{"port": 1}]},
                }
            )
        )


class ExampleSidecar(Resource):
    KIND: ClassVar[str] = "WasmPlugin"
    API_GROUP: ClassVar[str] = "example.com"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: SidecarSpec


class QualifiedSidecar(ExampleSidecar):
    QUALIFIED: ClassVar[bool] = True


def test_one_kind_name_in_two_groups_needs_distinct_refs() -> None:
    """Store keys and refs name kinds without their group unless `QUALIFIED`: two kinds of
    one name would overwrite each other's resources."""
    with pytest.raises(ValueError, match="would share refs"):
        KindRegistry([Kind.of(Sidecar), Kind.of(ExampleSidecar)])
    kinds = KindRegistry([Kind.of(Sidecar), Kind.of(QualifiedSidecar)])
    text = (
        SIDECAR
        + "spec: {selector: {a: b}}\n---\n"
        + SIDECAR.replace("networking.istio.io", "example.com")
        + "spec: {selector: {a: b}}\n"
    )
    result = parse_documents(text, "sc.yaml", kinds)
    assert [r.ref for r in result.resources] == [
        "WasmPlugin/default/edge",
        "WasmPlugin.example.com/default/edge",
    ]
    assert [r.key for r in result.resources] == [
        ("WasmPlugin", "default", "edge"),
        ("WasmPlugin.example.com", "default", "edge"),
    ]


def test_kinds_imported_when_first_met_declare_what_their_models_say() -> None:
    for kind in KINDS.values():
        model = kind.model
        assert (kind.group, kind.name, kind.versions, kind.qualified) == (
            model.API_GROUP,
            model.KIND,
            model.API_VERSIONS,
            model.qualified_kind(),
        ), kind.name


def test_reading_istio_config_imports_no_tekton_nor_argo_cd() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from amimesh.resources import parse_documents; "
        "r = parse_documents('apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
        "spec: {ports: [{port: 80}]}\\n', 'a.yaml'); assert not r.errors, r.errors; "
        "print(sorted(m for m in sys.modules if 'tekton' in m or 'argocd' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
