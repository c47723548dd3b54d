"""The control plane's Knative Serving controller: derived resources in the store,
revisions kept on disk, and the KPA driven by the nodes' in-flight reports (a fake
clock: ticks are called by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amimesh.config.store import Store
from amimesh.controlplane.serving import SOURCE, RevisionInUse, ServingController
from amimesh.model.snapshot import Instance
from amimesh.resources import VirtualService, Workload, parse_documents
from amimesh.serving import objects
from amimesh.serving.expand import ACTIVATOR_HOST
from amimesh.serving.scaling import RevisionScaling

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/window: 6s
        autoscaling.knative.dev/max-scale: "4"
    spec:
      containers: [{image: example.com/hello, command: [python3, app.py]}]
"""


def started(text: str, **kwargs: Any) -> tuple[Store, ServingController, list[float]]:
    """A store holding `text`, a controller over it on a clock the test moves (now[0]),
    reconciled once."""
    store = Store()
    store.set_source("t.yaml", parse_documents(text, "t.yaml"))
    now = [100.0]
    serving = ServingController(store, clock=lambda: now[0], **kwargs)
    serving.reconcile()
    return store, serving, now


def workloads(store: Store) -> dict[str, Workload]:
    return {r.name: r for r in store.resources() if isinstance(r, Workload)}


def destination(store: Store) -> str:
    (vs,) = [r for r in store.resources() if isinstance(r, VirtualService)]
    return vs.spec.http[0].route[0].destination.host


def ready_instance(n: int) -> Instance:
    labels = {"serving.knative.dev/revision": "hello-00001"}
    return Instance(id=f"hello-00001-{n}.default", workload="hello-00001", labels=labels)


def test_derived_resources_and_revisions_outlive_the_controller(tmp_path: Path) -> None:
    store = Store()
    store.set_source("t.yaml", parse_documents(KSVC, "t.yaml"))
    path = tmp_path / "revisions.json"
    ServingController(store, path, clock=lambda: 5.0).reconcile()
    assert workloads(store)["hello-00001"].spec.replicas == 1
    assert store.source_of(("Workload", "default", "hello-00001")) == SOURCE
    again = ServingController(Store(), path)
    assert [r.name for r in again.history] == ["hello-00001"]
    assert again.history[0].created == 5.0


def test_load_scales_a_revision_up_to_max_scale_and_back() -> None:
    store, serving, now = started(KSVC)
    store.register_instance(ready_instance(0))

    def run(seconds: int, in_flight: float) -> None:
        for _ in range(seconds):
            now[0] += 1
            serving.observe("local", {"hello-00001-0.default": in_flight})
            serving.tick(now[0])

    run(4, 2.0)  # 2 in flight for a target of 0.7: ceil(2.86), three instances
    assert serving.scale_of("default", "hello-00001") == 3
    assert workloads(store)["hello-00001"].spec.replicas == 3
    run(4, 30.0)  # far more: panic, capped by max-scale
    assert serving.scale_of("default", "hello-00001") == 4
    run(40, 0.0)  # idle: back down, never below one while the route needs it
    assert serving.scale_of("default", "hello-00001") == 1
    assert workloads(store)["hello-00001"].spec.replicas == 1


def test_a_stale_report_is_no_load() -> None:
    store, serving, now = started(KSVC)
    store.register_instance(ready_instance(0))
    serving.observe("local", {"hello-00001-0.default": 50.0})
    now[0] += 10  # the node went away: its last report counts for 5 s only
    for _ in range(12):
        now[0] += 1
        serving.tick(now[0])
    assert serving.scale_of("default", "hello-00001") == 1


def test_scale_to_zero_through_the_activator_and_back() -> None:
    store = Store()
    store.set_source("t.yaml", parse_documents(KSVC, "t.yaml"))
    store.set_source(
        "cm.yaml",
        parse_documents(
            "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: config-autoscaler, namespace: knative-serving}\n"
            "data: {scale-to-zero-grace-period: 6s}\n",
            "cm.yaml",
        ),
    )
    now = [100.0]
    serving = ServingController(store, clock=lambda: now[0], activator_port=4000)
    serving.reconcile()
    # No instance ready yet: the route's share waits at the activator.
    assert destination(store) == ACTIVATOR_HOST
    store.register_instance(ready_instance(0))
    for _ in range(40):  # idle: a stable window at 1, then the grace period, then 0
        now[0] += 1
        serving.observe("local", {"hello-00001-0.default": 0.0})
        serving.tick(now[0])
    assert serving.scale_of("default", "hello-00001") == 0
    assert serving.through_activator("default", "hello-00001")
    assert workloads(store)["hello-00001"].spec.replicas == 0
    assert destination(store) == ACTIVATOR_HOST
    store.deregister_instance("hello-00001-0.default")
    # A request at the activator: an instance at once, not at the next tick.
    assert serving.activate("default", "hello-00001")
    assert serving.scale_of("default", "hello-00001") == 1
    assert workloads(store)["hello-00001"].spec.replicas == 1
    assert not serving.activate("default", "hello-09999")


def test_deleted_revisions_stay_deleted_across_restarts(tmp_path: Path) -> None:
    store = Store()
    path = tmp_path / "revisions.json"
    serving = ServingController(store, path, clock=lambda: 5.0)
    store.set_source("t.yaml", parse_documents(KSVC, "t.yaml"))
    serving.reconcile()
    store.set_source("t.yaml", parse_documents(KSVC.replace("hello,", "hello:2,"), "t.yaml"))
    serving.reconcile()
    states = {
        o["metadata"]["name"]: o["metadata"]["labels"]["serving.knative.dev/routingState"]
        for o in serving.objects()
        if o["kind"] == "Revision"
    }
    # None is ready yet: the route takes the latest created.
    assert states == {"hello-00001": "reserve", "hello-00002": "active"}
    with pytest.raises(RevisionInUse, match="referenced by the traffic of route hello"):
        serving.delete_revision("default", "hello-00002")
    assert serving.delete_revision("default", "hello-00001")
    assert not serving.delete_revision("default", "hello-00001")
    assert "hello-00001" not in workloads(store)
    assert [r.name for r in ServingController(Store(), path).history] == ["hello-00002"]
    # In force still: nothing to forget. Gone: its revisions go too.
    assert serving.forget("default", "hello") == []
    store.remove_source("t.yaml")
    assert serving.forget("default", "hello") == ["hello-00002"]
    assert ServingController(Store(), path).history == []
    assert workloads(store) == {}


def test_timestamps_are_kubernetes_s() -> None:
    assert objects.timestamp(1_700_000_000.7) == "2023-11-14T22:13:20Z"


def test_scaling_shows_each_running_revision_as_its_autoscaler_decided() -> None:
    store, serving, now = started(KSVC)
    # Before any tick: the revision runs its initial scale, nothing is decided yet.
    (row,) = serving.scaling()
    assert row == RevisionScaling(
        namespace="default",
        revision="hello-00001",
        configuration="hello",
        service="hello",
        ready=0,
        activator=False,
    )
    store.register_instance(ready_instance(0))
    for _ in range(4):  # 2 in flight against a target of 0.7 a second time: panic, 3
        now[0] += 1
        serving.observe("local", {"hello-00001-0.default": 2.0})
        serving.tick(now[0])
    (row,) = serving.scaling()
    assert row == RevisionScaling(
        namespace="default",
        revision="hello-00001",
        configuration="hello",
        service="hello",
        ready=1,
        activator=False,  # no activator in this mesh
        metric="concurrency",
        target=pytest.approx(0.7),
        desired=3,
        requested=3,
        observed_stable=2.0,
        observed_panic=2.0,
        panic=True,
        # One instance takes 1 (the target annotation), the burst capacity is 211.
        excess_burst_capacity=1 - 211 - 2,
        active="active",
    )
    assert row.to_json()["requested"] == 3 and row.to_json()["revision"] == "hello-00001"
    # A new template: the old revision keeps the route until the new one is ready,
    # then runs nothing and is not shown.
    store.set_source("t.yaml", parse_documents(KSVC.replace("hello,", "hello:2,"), "t.yaml"))
    serving.reconcile()
    assert [(r.revision, r.ready) for r in serving.scaling()] == [
        ("hello-00001", 1),
        ("hello-00002", 0),
    ]
    labels = {"serving.knative.dev/revision": "hello-00002"}
    store.register_instance(
        Instance(id="hello-00002-0.default", workload="hello-00002", labels=labels)
    )
    serving.reconcile()
    assert [(r.revision, r.ready) for r in serving.scaling()] == [("hello-00002", 1)]


def test_scaling_at_zero_is_through_the_activator() -> None:
    store = Store()
    store.set_source("t.yaml", parse_documents(KSVC, "t.yaml"))
    now = [100.0]
    serving = ServingController(store, clock=lambda: now[0], activator_port=4000)
    serving.reconcile()
    (row,) = serving.scaling()
    assert row.activator and row.ready == 0  # no instance ready yet
    store.register_instance(ready_instance(0))
    for _ in range(4):
        now[0] += 1
        serving.observe("local", {"hello-00001-0.default": 0.0})
        serving.tick(now[0])
    # Ready, idle: the burst capacity rule keeps the activator in the path (EBC < 0).
    (row,) = serving.scaling()
    assert (row.requested, row.ready, row.activator, row.panic) == (1, 1, True, False)
    assert row.excess_burst_capacity == 1 - 211
    for _ in range(60):
        now[0] += 1
        serving.tick(now[0])
    store.deregister_instance("hello-00001-0.default")
    (row,) = serving.scaling()
    assert (row.desired, row.requested, row.ready, row.activator) == (0, 0, 0, True)
    assert row.active == "inactive"


def test_a_revision_on_the_rps_metric_scales_on_requests_per_second() -> None:
    store = Store()
    rps = KSVC.replace(
        'autoscaling.knative.dev/target: "1"',
        'autoscaling.knative.dev/metric: rps\n        autoscaling.knative.dev/target: "10"',
    )
    store.set_source("t.yaml", parse_documents(rps, "t.yaml"))
    now = [100.0]
    serving = ServingController(store, clock=lambda: now[0])
    serving.reconcile()
    store.register_instance(ready_instance(0))
    for _ in range(4):  # one in flight, but 20 requests a second: a target of 10 × 0.7
        now[0] += 1
        serving.observe("local", {"hello-00001-0.default": 1.0}, {"hello-00001-0.default": 20.0})
        serving.tick(now[0])
    assert serving.scale_of("default", "hello-00001") == 3


GC_NOW = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-gc, namespace: knative-serving}
data:
  retain-since-create-time: disabled
  retain-since-last-active-time: 30s
  min-non-active-revisions: "1"
  max-non-active-revisions: "5"
---
"""


def test_revisions_nothing_routes_are_collected_as_config_gc_says(tmp_path: Path) -> None:
    path = tmp_path / "revisions.json"
    store, serving, now = started(GC_NOW + KSVC, path=path)
    for n, target in enumerate(("2", "3", "4"), start=2):
        now[0] += 10
        text = GC_NOW + KSVC.replace('target: "1"', f'target: "{target}"')
        store.set_source("t.yaml", parse_documents(text, "t.yaml"))
        serving.reconcile()
        assert serving.history[-1].name == f"hello-0000{n}"
    # 1 and 2 went out of use 20 s and 10 s ago, 3 just now: none stale yet.
    assert serving.collect_garbage() == []
    now[0] += 25  # 1 has been out of use for 45 s, 2 for 35 s, 3 for 25 s
    # One non-active revision is kept (the newest out of use): 1 and 2 go.
    assert serving.collect_garbage() == ["default/hello-00001", "default/hello-00002"]
    assert [r.name for r in serving.history] == ["hello-00003", "hello-00004"]
    assert "hello-00001" not in workloads(store)
    # When each stopped being active outlives the control plane: with no minimum,
    # 3 (out of use for 35 s) is stale at once for a new one.
    none_kept = GC_NOW.replace('revisions: "1"', 'revisions: "0"')
    text = none_kept + KSVC.replace('target: "1"', 'target: "4"')
    store.set_source("t.yaml", parse_documents(text, "t.yaml"))
    again = ServingController(store, path, clock=lambda: now[0] + 10)
    again.reconcile()
    assert [r.name for r in again.history] == ["hello-00004"]


def test_a_revision_annotated_no_gc_is_kept() -> None:
    keep = KSVC.replace(
        "autoscaling.knative.dev/target",
        'serving.knative.dev/no-gc: "true"\n        autoscaling.knative.dev/target',
    )
    no_min = GC_NOW.replace('min-non-active-revisions: "1"', 'min-non-active-revisions: "0"')
    store, serving, now = started(no_min + keep)
    store.set_source("t.yaml", parse_documents(no_min + KSVC.replace('"1"', '"2"', 1), "t.yaml"))
    serving.reconcile()
    now[0] += 60
    assert serving.collect_garbage() == []
    assert [r.name for r in serving.history] == ["hello-00001", "hello-00002"]


def test_a_bad_config_gc_is_refused_naming_its_key() -> None:
    bad = GC_NOW.replace('"5"', '"0"')  # min 1 > max 0
    result = parse_documents(bad, "gc.yaml")
    (error,) = result.errors
    assert "data.min-non-active-revisions" in str(error) and "gc.yaml" in str(error)
    assert "must be <= max-non-active-revisions(0)" in str(error)


def test_a_revision_that_stops_taking_traffic_keeps_its_instances_a_while() -> None:
    # The proxies' routes to it change after the new revision is ready: a request
    # already on its way to the old one is answered by it, not left at the activator.
    from amimesh.controlplane.serving import RETIRE_GRACE_S

    store, serving, now = started(KSVC)
    store.register_instance(ready_instance(0))
    for _ in range(4):
        now[0] += 1
        serving.observe("local", {"hello-00001-0.default": 0.5})
        serving.tick(now[0])
    running = workloads(store)["hello-00001"].spec.replicas
    assert running >= 1
    store.set_source(
        "t.yaml", parse_documents(KSVC.replace("hello, command", "hello2, command"), "t.yaml")
    )
    serving.reconcile()
    labels = {"serving.knative.dev/revision": "hello-00002"}
    store.register_instance(
        Instance(id="hello-00002-0.default", workload="hello-00002", labels=labels)
    )
    serving.reconcile()
    assert destination(store).startswith("hello-00002")
    for _ in range(5):  # within the grace: still running
        now[0] += 1
        serving.tick(now[0])
        assert workloads(store)["hello-00001"].spec.replicas == running
    for _ in range(int(RETIRE_GRACE_S)):  # then stopped
        now[0] += 1
        serving.tick(now[0])
    assert workloads(store)["hello-00001"].spec.replicas == 0
