"""`ami service|revision|route`: the Python API (`cli.knative`) over a fake API client,
and kn's columns and describe views (`cli.render_knative`)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from amimesh.cli import knative, render, render_knative
from amimesh.cli.ksvc_flags import FlagError, TemplateFlags
from amimesh.cli.ksvc_traffic import TrafficFlags

NOW = 1_700_000_000.0
T0 = "2023-11-14T22:13:20Z"  # NOW
T1 = "2023-11-14T22:11:20Z"  # two minutes before


def condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    out = {"type": kind, "status": status}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def ksvc(name: str = "hello", ready: str = "True", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": T1},
        "spec": {"template": {"spec": {"containers": [{"image": "example.com/hello"}]}}},
        "status": {
            "conditions": [
                condition("ConfigurationsReady", ready),
                condition("Ready", ready),
                condition("RoutesReady", "True"),
            ],
            "url": f"http://{name}.default.example.com",
            "address": {"url": f"http://{name}.default.svc.cluster.local"},
            "latestCreatedRevisionName": f"{name}-00002",
            "latestReadyRevisionName": f"{name}-00002",
            "traffic": [
                {"revisionName": f"{name}-00002", "percent": 70, "latestRevision": True},
                {"revisionName": f"{name}-00001", "percent": 30, "tag": "old"},
            ],
            **status,
        },
        "source": "api",
    }


def revision(name: str, generation: int, service: str = "hello", ready: str = "True") -> Any:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": T1 if generation == 1 else T0,
            "labels": {
                "serving.knative.dev/service": service,
                "serving.knative.dev/configurationGeneration": str(generation),
            },
        },
        "spec": {
            "containers": [
                {
                    "image": "example.com/hello",
                    "command": ["python3", "app.py"],
                    "env": [{"name": "TARGET", "value": str(generation)}],
                }
            ]
        },
        "status": {"conditions": [condition("Ready", ready, "" if ready == "True" else "Deploy")]},
        "source": "serving",
    }


class FakeApi:
    """The API client, over lists of items: what `GET /api/v1/resources` answers, and
    what was applied and deleted."""

    def __init__(self, services: list[Any], revisions: list[Any]) -> None:
        self.services = services
        self.revisions = revisions
        self.applied: list[Any] = []
        self.deleted: list[str] = []
        self.instances: list[Any] = []

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if path == "/api/v1/status":
            return {"instances": self.instances}
        params = params or {}
        items = {"ksvc": self.services, "rev": self.revisions, "rt": []}[params["kind"]]
        return {
            "items": [
                i
                for i in items
                if params.get("name") in ("", None, i["metadata"]["name"])
                and params.get("namespace") in ("", None, i["metadata"]["namespace"])
            ]
        }

    def post_yaml(self, path: str, text: str, params: dict[str, str]) -> dict[str, Any]:
        assert path == "/api/v1/apply" and params == {"source": "<flags>"}
        self.applied.append(yaml.safe_load(text))
        return {"results": [{"resource": "x", "action": "configured"}]}

    def delete(self, path: str) -> dict[str, Any]:
        self.deleted.append(path)
        return {"deleted": [path], "notes": [], "errors": []}


def api(*services: Any) -> Any:
    return FakeApi(list(services), [revision("hello-00001", 1), revision("hello-00002", 2)])


# --- the Python API ----------------------------------------------------------------------


def test_create_refuses_an_existing_service_unless_forced() -> None:
    fake = api(ksvc())
    flags = TemplateFlags(image="example.com/hello")
    with pytest.raises(knative.Exists, match='"hello" already exists .* --force'):
        knative.create_service(fake, "hello", "default", flags)
    assert not fake.applied
    service, action = knative.create_service(fake, "hello", "default", flags, force=True)
    assert fake.applied == [service] and action == "configured"


def test_update_applies_the_service_with_the_new_traffic() -> None:
    fake = api(ksvc())
    traffic = TrafficFlags(traffic=("hello-00001=50", "@latest=50"))
    service, _ = knative.update_service(fake, "hello", "default", traffic=traffic)
    (applied,) = fake.applied
    assert applied == service and "status" not in applied and "source" not in applied
    assert [t["percent"] for t in applied["spec"]["traffic"]] == [50, 50]


def test_update_names_an_unknown_service_and_an_unknown_revision() -> None:
    fake = api(ksvc())
    with pytest.raises(knative.NotFound, match='Knative Service "nope" not found in namespace'):
        knative.update_service(fake, "nope", "default", TemplateFlags(env=("A=b",)))
    with pytest.raises(FlagError, match='no revision "hello-00009" of Knative Service "hello"'):
        knative.update_service(
            fake, "hello", "default", traffic=TrafficFlags(traffic=("hello-00009=100",))
        )
    with pytest.raises(FlagError, match="nothing to change"):
        knative.update_service(fake, "hello", "default")
    assert not fake.applied


def test_revisions_of_a_service_newest_first() -> None:
    other = revision("bye-00001", 1, service="bye")
    fake = api(ksvc())
    fake.revisions.append(other)
    names = [r["metadata"]["name"] for r in knative.list_revisions(fake, "default", "hello")]
    assert names == ["hello-00002", "hello-00001"]
    every = [r["metadata"]["name"] for r in knative.list_revisions(fake, None)]
    assert every == ["bye-00001", "hello-00002", "hello-00001"]
    with pytest.raises(knative.NotFound):
        knative.list_revisions(fake, "default", "nope")


def test_delete_goes_through_the_resources_endpoint() -> None:
    fake = api(ksvc())
    knative.delete_service(fake, "hello", "default")
    knative.delete_revision(fake, "hello-00001", "default")
    assert fake.deleted == [
        "/api/v1/resources/ksvc/default/hello",
        "/api/v1/resources/rev/default/hello-00001",
    ]
    with pytest.raises(knative.NotFound, match='revision "x" not found'):
        knative.delete_revision(fake, "x", "default")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_reports_each_step_until_ready() -> None:
    waiting = ksvc(ready="Unknown")
    waiting["status"]["conditions"][0].update(reason="Deploying", message="not ready yet")
    answers = [waiting, waiting, ksvc()]
    fake = api()
    fake.get = lambda path, params=None: {"items": [answers.pop(0)]}  # type: ignore[method-assign]
    clock = Clock()
    seen: list[tuple[float, str]] = []
    item = knative.wait_ready(
        fake,
        "default",
        "hello",
        timeout_s=10,
        on_change=lambda s, c: seen.append((s, f"{c['status']} {c.get('reason', '')}")),
        clock=clock,
        sleep=clock.sleep,
    )
    assert item["status"]["latestReadyRevisionName"] == "hello-00002"
    # Ready has no reason of its own: the first condition that is not True says why.
    assert seen == [(0.0, "Unknown Deploying"), (1.0, "True ")]


def test_wait_fails_on_a_lasting_false_and_on_time() -> None:
    failed = ksvc(ready="False")
    failed["status"]["conditions"][1].update(reason="RevisionFailed", message="no command")
    fake = api(failed)
    clock = Clock()
    with pytest.raises(knative.NotReady, match="failed: RevisionFailed: no command"):
        knative.wait_ready(fake, "default", "hello", timeout_s=60, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(knative.FAILED_FOR_S)
    slow = api(ksvc(ready="Unknown"))
    clock = Clock()
    with pytest.raises(knative.NotReady, match="not ready after 3s"):
        knative.wait_ready(slow, "default", "hello", timeout_s=3, clock=clock, sleep=clock.sleep)


# --- kn's columns and views ----------------------------------------------------------------


def lines(renderable: Any) -> list[str]:
    return [line.rstrip() for line in render.to_text(renderable).splitlines()]


def test_service_list_columns() -> None:
    failing = ksvc("bye", ready="False")
    failing["status"]["conditions"][1].update(reason="RevisionFailed", message="no command")
    table = render_knative.services_table([ksvc(), failing], NOW, namespaces=False)
    head, hello, bye = lines(table)
    assert head.split() == ["NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON"]
    assert hello.split() == [
        "hello",
        "http://hello.default.example.com",
        "hello-00002",
        "2m0s",
        "3",
        "OK",
        "/",
        "3",
        "True",
    ]
    assert bye.split()[-5:] == ["False", "RevisionFailed", ":", "no", "command"]
    with_ns = lines(render_knative.services_table([ksvc()], NOW, namespaces=True))
    assert with_ns[0].split()[:2] == ["NAMESPACE", "NAME"] and with_ns[1].startswith("default")


def test_revision_list_columns_with_traffic_and_tags() -> None:
    services = render_knative.services_by_key([ksvc()])
    revisions = [revision("hello-00002", 2), revision("hello-00001", 1, ready="Unknown")]
    head, second, first = lines(
        render_knative.revisions_table(revisions, services, NOW, namespaces=False)
    )
    assert head.split() == [
        "NAME",
        "SERVICE",
        "TRAFFIC",
        "TAGS",
        "GENERATION",
        "AGE",
        "CONDITIONS",
        "READY",
        "REASON",
    ]
    assert second.split() == ["hello-00002", "hello", "70%", "2", "0s", "1", "OK", "/", "1", "True"]
    assert first.split() == [
        "hello-00001",
        "hello",
        "30%",
        "old",
        "1",
        "2m0s",
        "0",
        "OK",
        "/",
        "1",
        "Unknown",
        "Deploy",
    ]


def test_route_list_columns() -> None:
    route = {"metadata": {"name": "hello"}, "status": ksvc()["status"]}
    head, row = lines(render_knative.routes_table([route], namespaces=False))
    assert head.split() == ["NAME", "URL", "READY"]
    assert row.split() == ["hello", "http://hello.default.example.com", "True"]


def test_service_describe_shows_revisions_by_traffic_and_conditions() -> None:
    rows = [
        {"workload": "hello-00002", "namespace": "default", "ready": True},
        {"workload": "hello-00001", "namespace": "default", "ready": False},
    ]
    revisions = [revision("hello-00002", 2), revision("hello-00001", 1)]
    text = lines(render_knative.service_view(ksvc(), revisions, rows, NOW))
    assert text[:5] == [
        "Name:      hello",
        "Namespace: default",
        "Age:       2m0s",
        "URL:       http://hello.default.example.com",
        "Cluster:   http://hello.default.svc.cluster.local",
    ]
    at = text.index("Revisions:")
    assert text[at + 1] == "   70%  @latest (hello-00002) [2] (0s)"
    assert text[at + 2].split() == ["Image:", "example.com/hello"]
    assert text[at + 4].split() == ["Replicas:", "1/1"]
    assert text[at + 5] == "   30%  hello-00001 #old [1] (2m0s)"
    assert text[at + 8].split() == ["Replicas:", "0/1"]
    at = text.index("Conditions:")
    assert [line.split() for line in text[at + 1 :]] == [
        ["OK", "TYPE", "REASON"],
        ["++", "ConfigurationsReady"],
        ["++", "Ready"],
        ["++", "RoutesReady"],
    ]


def test_revision_describe() -> None:
    rev = revision("hello-00001", 1)
    rev["metadata"]["annotations"] = {"autoscaling.knative.dev/max-scale": "3"}
    text = lines(render_knative.revision_view(rev, ksvc(), [], NOW))
    assert [line.split(":", 1)[0] for line in text[: text.index("")]] == [
        "Name",
        "Namespace",
        "Age",
        "Image",
        "Command",
        "Env",
        "Scale",
        "Replicas",
        "Service",
        "Traffic",
        "Generation",
    ]
    assert "Traffic:    30% #old" in text and "Scale:      0 ... 3" in text
    assert text[-1].split() == ["++", "Ready"]
