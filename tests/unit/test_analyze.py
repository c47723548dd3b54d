"""`model.analyze`: each known mistake under testdata/analyze is reported with its code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import pytest

from amimesh.model import analyze
from amimesh.model.snapshot import Instance, build_snapshot
from amimesh.resources import Resource, load_path, parse_documents
from amimesh.resources.fields import Strict

TESTDATA = Path(__file__).parent / "testdata" / "analyze"
CASES = sorted(TESTDATA.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\S+)(?: (\S+) (\S+))?$", re.MULTILINE)


def expected(path: Path) -> list[tuple[str, str, str]]:
    found = []
    for code, ref, field in EXPECT.findall(path.read_text()):
        if code != "(none)":
            found.append((code, ref, field))
    return found


def findings_of(text: str, instances: tuple[Instance, ...] = ()) -> list[analyze.Finding]:
    result = parse_documents(text, "test.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return analyze.analyze(build_snapshot(result.resources, instances))


def test_every_case_declares_what_it_expects() -> None:
    assert len(CASES) >= 10
    for path in CASES:
        assert "# expect:" in path.read_text(), path.name


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_known_mistake_is_reported(path: Path) -> None:
    result = load_path(path)
    assert not result.errors, [str(e) for e in result.errors]
    findings = analyze.analyze(build_snapshot(result.resources))
    got = [(f.code, f.ref, f.field) for f in findings]
    assert got == expected(path)
    for f in findings:
        assert f.message and f.hint
        known = {c.code: c for c in analyze.CODES}[f.code]
        assert f.severity == known.severity


def test_the_whole_directory_is_one_mesh_with_every_case() -> None:
    result = load_path(TESTDATA)
    assert not result.errors, [str(e) for e in result.errors]
    got = {(f.code, f.ref, f.field) for f in analyze.analyze(build_snapshot(result.resources))}
    assert got == {e for path in CASES for e in expected(path)}


def test_every_code_has_a_case() -> None:
    covered = {code for path in CASES for code, _, _ in expected(path)}
    assert covered == {c.code for c in analyze.CODES}


def test_messages_say_what_and_how_to_fix() -> None:
    text = (TESTDATA / "unknown-subset.yaml").read_text()
    first, second = findings_of(text)
    assert first.to_dict() == {
        "code": "AMI0102",
        "severity": "Error",
        "resource": "VirtualService/unknown-subset/reviews",
        "field": "spec.http[0].route[0].destination.subset",
        "message": 'subset "v3" is not defined by DestinationRule unknown-subset/reviews; '
        "requests routed there get 503",
        "hint": 'add subset "v3" to that DestinationRule, or use one of: v1',
    }
    assert "no DestinationRule for that host" in second.message
    assert "ratings.unknown-subset.svc.cluster.local" in second.hint


def test_order_is_stable_by_resource_then_field() -> None:
    text = "\n---\n".join(
        (TESTDATA / name).read_text()
        for name in ("rule-unknown-host.yaml", "host-without-service.yaml")
    )
    refs = [f.ref for f in findings_of(text)]
    assert refs == [
        "DestinationRule/rule-unknown-host/ratings",
        "VirtualService/host-without-service/details",
    ]
    assert findings_of(text) == findings_of(text)


def test_live_instances_count_as_subset_endpoints() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""
    # No Workload and no instance: the Service says it selects nothing; subsets are quiet.
    assert [(f.code, f.field) for f in findings_of(text)] == [("AMI0301", "spec.selector")]
    v1 = Instance(id="r1", workload="reviews-v1", labels={"app": "reviews", "version": "v1"},
                  ports={9080: 15001})  # fmt: skip
    got = [(f.code, f.field) for f in findings_of(text, (v1,))]
    assert got == [("AMI0202", "spec.subsets[1].labels")]


def test_workload_entries_back_a_service() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1}
spec: {address: 10.0.0.5, labels: {app: db}}
"""
    assert findings_of(text) == []


def test_service_without_selector() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec: {ports: [{port: 80}]}
"""
    (f,) = findings_of(text)
    assert (f.code, f.field, f.message) == (
        "AMI0301",
        "spec.selector",
        "has no selector, so it has no endpoints",
    )


class Gateway(Resource):
    """A stand-in for the Gateway kind (being added in `resources`)."""

    KIND: ClassVar[str] = "Gateway"
    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: Strict


def test_existing_gateway_is_no_finding() -> None:
    result = load_path(TESTDATA / "unknown-gateway.yaml")
    public = Gateway.model_validate(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "ingress"},
            "spec": {},
        }
    )
    snap = build_snapshot([*result.resources, public])
    got = [(f.code, f.field) for f in analyze.analyze(snap)]
    # ingress/public exists; the match's bare "public" means default/public, which does not.
    assert got == [("AMI0105", "spec.http[0].match[0].gateways[0]")]


def test_delegate_not_exported() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{port: 80}], selector: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r}
spec: {address: 10.0.0.1, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{delegate: {name: api, namespace: team}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: team}
spec:
  exportTo: ["."]
  http: [{directResponse: {status: 200}}]
"""
    (f,) = findings_of(text)
    assert (f.code, f.message) == (
        "AMI0104",
        "delegate VirtualService team/api is not exported to default",
    )
    assert not analyze.has_errors([]) and analyze.has_errors([f])
