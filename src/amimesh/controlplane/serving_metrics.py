"""Knative's autoscaler metrics on the control plane's `/metrics`, read from the serving
controller at each scrape: a prometheus_client collector, no thread, nothing kept.

Names and labels are those Knative's autoscaler gives them in Prometheus (its
OpenCensus metrics up to Knative 1.18, prefixed by the component), so Knative's own
dashboards and queries read them: gauges per revision, labelled `namespace_name`,
`configuration_name`, `revision_name` and `service_name` (`unknown` for a revision no
Knative Service owns, as Knative reports it). A value the autoscaler does not have
yet (no decision) is left out, as Knative reports none. `ami_serving_activator_in_path`
is Ami's: Knative has no metric for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from amimesh.serving.scaling import RevisionScaling

LABELS = ("namespace_name", "configuration_name", "revision_name", "service_name")
UNKNOWN = "unknown"

# name → help, in the order they are exposed.
GAUGES = {
    "autoscaler_desired_pods": "Number of pods autoscaler wants to allocate",
    "autoscaler_requested_pods": "Number of pods autoscaler requested (within min and max scale)",
    "autoscaler_actual_pods": "Number of pods that are ready currently",
    "autoscaler_panic_mode": "1 if autoscaler is in panic mode, 0 otherwise",
    "autoscaler_excess_burst_capacity": (
        "Capacity of the ready pods beyond the target burst capacity and the panic load"
    ),
    "autoscaler_stable_request_concurrency": "Requests in flight, all pods, stable window average",
    "autoscaler_panic_request_concurrency": "Requests in flight, all pods, panic window average",
    "autoscaler_target_concurrency_per_pod": "The desired number of concurrent requests per pod",
    "autoscaler_stable_requests_per_second": "Requests per second, all pods, stable window average",
    "autoscaler_panic_requests_per_second": "Requests per second, all pods, panic window average",
    "autoscaler_target_requests_per_second": "The desired requests-per-second per pod",
    "ami_serving_activator_in_path": "1 if the revision's requests go through the activator",
}


def samples(s: RevisionScaling) -> dict[str, float]:
    """The gauges of one revision, by name; those without a value left out."""
    out: dict[str, float | int | None] = {
        "autoscaler_desired_pods": s.desired,
        "autoscaler_requested_pods": s.requested,
        "autoscaler_actual_pods": s.ready,
        "autoscaler_excess_burst_capacity": s.excess_burst_capacity,
        "ami_serving_activator_in_path": int(s.activator),
    }
    if s.desired is not None:  # a decision was made
        out["autoscaler_panic_mode"] = int(s.panic)
    kind = "request_concurrency" if s.metric == "concurrency" else "requests_per_second"
    out[f"autoscaler_stable_{kind}"] = s.observed_stable
    out[f"autoscaler_panic_{kind}"] = s.observed_panic
    target = "concurrency_per_pod" if s.metric == "concurrency" else "requests_per_second"
    out[f"autoscaler_target_{target}"] = s.target
    return {name: float(v) for name, v in out.items() if v is not None}


class AutoscalerCollector(Collector):
    """Knative's autoscaler gauges of what `scaling` returns, at each collection."""

    def __init__(self, scaling: Callable[[], Sequence[RevisionScaling]]) -> None:
        self._scaling = scaling

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(name, text, labels=LABELS) for name, text in GAUGES.items()
        }
        for s in self._scaling():
            labels = [s.namespace, s.configuration, s.revision, s.service or UNKNOWN]
            for name, value in samples(s).items():
                families[name].add_metric(labels, value)
        yield from families.values()
