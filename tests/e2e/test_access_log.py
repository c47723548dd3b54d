"""Access logs through real sidecars: one JSON line per request in the client's and the
server's access logs, fault flags, and a Telemetry that turns the server's off."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.harness import Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

BASE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""
FAULT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
"""
QUIET = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging: [{disabled: true}]
"""
# Envoy flushes a file access log every second.
FLUSH_S = 1.0


def entries(sidecar: Sidecar, path: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, sidecar.access_log_lines()) if e["path"] == path]


def wait_entries(sidecar: Sidecar, path: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = entries(sidecar, path)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no access log line for {path} in {sidecar.proxy.access_log}")


def apply(mesh: Mesh, text: str, source: str) -> None:
    runs = mesh.cp.xds.regenerations
    mesh.apply(text, source=source)
    deadline = time.monotonic() + 10
    while mesh.cp.xds.regenerations == runs and time.monotonic() < deadline:
        time.sleep(0.005)
    mesh.wait_synced()


def test_access_logs_through_sidecars(mesh: Mesh) -> None:
    mesh.apply(BASE, source="base.yaml")
    server = mesh.workload("reviews", {"app": "reviews"}, port=9080)
    client = mesh.client()
    mesh.wait_synced()
    with client.http() as http:
        r = http.get("http://reviews:9080/hello", headers={"user-agent": "ami-test"})
        assert r.status_code == 200

        (out,) = wait_entries(client, "/hello")
        (inb,) = wait_entries(server, "/hello")
        for e in (out, inb):
            assert e["method"] == "GET"
            assert e["response_code"] == 200
            assert e["response_flags"] == "-"
            assert e["user_agent"] == "ami-test"
            assert e["authority"] == "reviews:9080"
            assert e["protocol"] == "HTTP/1.1"
            assert isinstance(e["duration"], int)
            assert set(e) >= {"start_time", "request_id", "bytes_sent", "upstream_host"}
        assert out["direction"] == "outbound"
        assert out["upstream_cluster"] == "outbound|9080||reviews.default.svc.cluster.local"
        assert inb["direction"] == "inbound"
        assert inb["upstream_cluster"] == "inbound|9080||"
        assert out["request_id"] == inb["request_id"]

        apply(mesh, FAULT, "fault.yaml")
        assert http.get("http://reviews:9080/fault").status_code == 500
        (faulted,) = wait_entries(client, "/fault")
        assert faulted["response_code"] == 500
        assert faulted["response_flags"] == "FI"
        assert faulted["upstream_cluster"] is None or faulted["upstream_host"] is None

        apply(mesh, QUIET, "quiet.yaml")
        # The first request may still end on the drained listener's connection.
        assert http.get("http://reviews:9080/warm").status_code == 200
        time.sleep(FLUSH_S + 0.5)
        for _ in range(3):
            assert http.get("http://reviews:9080/after").status_code == 200
        assert len(wait_entries(client, "/after")) == 3
        time.sleep(FLUSH_S + 0.5)
        assert entries(server, "/after") == []
