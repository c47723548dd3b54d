"""Knative's autoscaler metrics on `/metrics`: the collector reads the serving controller
at each scrape (a controller with a fake clock, ticks called by hand)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from amimesh.config.store import Store
from amimesh.controlplane.serving import ServingController
from amimesh.controlplane.serving_metrics import AutoscalerCollector, samples
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from amimesh.serving.scaling import RevisionScaling

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: shop}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/window: 6s
        autoscaling.knative.dev/max-scale: "2"
    spec:
      containers: [{image: example.com/hello, command: [python3, app.py]}]
---
apiVersion: serving.knative.dev/v1
kind: Configuration
metadata: {name: bare, namespace: shop}
spec:
  template:
    spec:
      containers: [{image: example.com/bare, command: [python3, app.py]}]
"""

# As prometheus_client writes them: labels in alphabetical order.
HELLO = (
    'configuration_name="hello",namespace_name="shop",revision_name="hello-00001",'
    'service_name="hello"'
)
BARE = (
    'configuration_name="bare",namespace_name="shop",revision_name="bare-00001",'
    'service_name="unknown"'
)


def scrape(serving: ServingController) -> list[str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AutoscalerCollector(serving.scaling))
    return generate_latest(registry).decode().splitlines()


def test_gauges_follow_the_autoscaler_at_each_scrape() -> None:
    store = Store()
    store.set_source("k.yaml", parse_documents(KSVC, "k.yaml"))
    now = [100.0]
    serving = ServingController(store, clock=lambda: now[0], activator_port=4000)
    serving.reconcile()
    lines = scrape(serving)
    assert "# TYPE autoscaler_desired_pods gauge" in lines
    # Nothing decided yet: the pods and the activator's place only. A Configuration no
    # Knative Service owns has service_name "unknown", as Knative reports it.
    assert f"autoscaler_actual_pods{{{HELLO}}} 0.0" in lines
    assert f"autoscaler_actual_pods{{{BARE}}} 0.0" in lines
    assert f"ami_serving_activator_in_path{{{BARE}}} 0.0" in lines  # no route to it
    assert f"ami_serving_activator_in_path{{{HELLO}}} 1.0" in lines  # no instance ready
    assert not [line for line in lines if line.startswith("autoscaler_desired_pods{")]
    assert not [line for line in lines if line.startswith("autoscaler_panic_mode{")]

    labels = {"serving.knative.dev/revision": "hello-00001"}
    store.register_instance(
        Instance(id="h-0.shop", workload="hello-00001", namespace="shop", labels=labels)
    )
    for _ in range(4):  # 3 in flight for a target of 0.7: 5 wanted, 2 at most; panic
        now[0] += 1
        serving.observe("local", {"h-0.shop": 3.0})
        serving.tick(now[0])
    lines = scrape(serving)
    for line in (
        f"autoscaler_desired_pods{{{HELLO}}} 5.0",
        f"autoscaler_requested_pods{{{HELLO}}} 2.0",
        f"autoscaler_actual_pods{{{HELLO}}} 1.0",
        f"autoscaler_panic_mode{{{HELLO}}} 1.0",
        f"autoscaler_stable_request_concurrency{{{HELLO}}} 3.0",
        f"autoscaler_panic_request_concurrency{{{HELLO}}} 3.0",
        f"autoscaler_target_concurrency_per_pod{{{HELLO}}} 0.7",
        f"autoscaler_excess_burst_capacity{{{HELLO}}} -213.0",  # 1 × 1 - 211 - 3
        f"ami_serving_activator_in_path{{{HELLO}}} 1.0",  # the EBC keeps it there
    ):
        assert line in lines, line


def test_requests_per_second_has_knative_s_rps_gauges() -> None:
    row = RevisionScaling(
        namespace="shop",
        revision="r-00001",
        configuration="r",
        service="r",
        ready=2,
        activator=False,
        metric="rps",
        target=150.0,
        desired=2,
        requested=2,
        observed_stable=180.0,
        observed_panic=200.0,
        excess_burst_capacity=0,
    )
    assert samples(row) == {
        "autoscaler_desired_pods": 2.0,
        "autoscaler_requested_pods": 2.0,
        "autoscaler_actual_pods": 2.0,
        "autoscaler_panic_mode": 0.0,
        "autoscaler_excess_burst_capacity": 0.0,
        "autoscaler_stable_requests_per_second": 180.0,
        "autoscaler_panic_requests_per_second": 200.0,
        "autoscaler_target_requests_per_second": 150.0,
        "ami_serving_activator_in_path": 0.0,
    }
