"""Telemetry `metrics[].overrides` on real traffic: a namespace's Telemetry turns the
request and response sizes off on the client side (`mode: CLIENT`) only, and on the
server side removes `request_protocol` and sets `source_version` to a literal. The
caller's proxy then reports requests without sizes, the callee's with them and with its
labels overridden, and the control plane shows exactly that."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from amimesh.telemetry.labels import LABELS
from amimesh.telemetry.metrics import HttpSeries
from tests.e2e.harness import Mesh, Sidecar, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 9080}]}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: sizes, namespace: shop}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_SIZE, mode: CLIENT}
      disabled: true
    - match: {metric: RESPONSE_SIZE, mode: CLIENT}
      disabled: true
    - match: {mode: SERVER}
      tagOverrides:
        request_protocol: {operation: REMOVE}
        source_version: {value: "'pinned'"}
"""
REPORTER = LABELS.index("reporter")
SOURCE_WORKLOAD = LABELS.index("source_workload")
PROTOCOL = LABELS.index("request_protocol")
SOURCE_VERSION = LABELS.index("source_version")


@pytest.fixture(scope="module")
def client(module_mesh: Mesh) -> Iterator[Sidecar]:
    module_mesh.apply(CONFIG, source="telemetry.yaml")
    module_mesh.workload("web", {"app": "web"}, port=9080, namespace="shop")
    client = module_mesh.client("caller", namespace="shop")
    module_mesh.wait_synced()
    yield client


def keyed(mesh: Mesh, reporter: str) -> tuple[tuple[str, ...], HttpSeries] | None:
    http, _ = mesh.cp.metrics.snapshot()
    for key, s in http.items():
        if key[REPORTER] == reporter and key[SOURCE_WORKLOAD] == "caller":
            return key, s
    return None


def series(mesh: Mesh, reporter: str) -> HttpSeries | None:
    found = keyed(mesh, reporter)
    return found[1] if found else None


def test_sizes_off_on_the_client_side_only(module_mesh: Mesh, client: Sidecar) -> None:
    with client.http() as http:
        for _ in range(5):
            assert http.get("http://web.shop:9080/x").status_code == 200

    def both_reported() -> bool:
        source, dest = series(module_mesh, "source"), series(module_mesh, "destination")
        return bool(source and dest and source.count >= 5 and dest.count >= 5)

    wait_for(both_reported, timeout=60)
    source, dest = series(module_mesh, "source"), series(module_mesh, "destination")
    assert source is not None and dest is not None
    assert not any(source.request_bytes.counts)
    assert not any(source.response_bytes.counts)
    assert sum(dest.request_bytes.counts) >= 5
    assert sum(dest.response_bytes.counts) >= 5
    # What Prometheus sees: no size histogram for the source's series.
    text = generate_latest(module_mesh.cp.metrics.registry).decode()
    reporters = {
        s.labels["reporter"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "istio_request_bytes_count" and s.labels.get("source_workload") == "caller"
    }
    assert reporters == {"destination"}
    # The server side's labels, overridden; the client side's, Istio's.
    source_key = keyed(module_mesh, "source")
    dest_key = keyed(module_mesh, "destination")
    assert source_key is not None and dest_key is not None
    assert source_key[0][PROTOCOL] == "http"
    assert (dest_key[0][PROTOCOL], dest_key[0][SOURCE_VERSION]) == ("", "pinned")
