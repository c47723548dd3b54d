"""A starting mesh sends each Envoy its clusters once: a service's clusters verify the
identities of the Workloads it selects from the first push, so they do not change
(plain text to mutual TLS, more SANs) as the instances become ready; only endpoints
move. Traffic between the sidecars is mutual TLS to the expected identity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_runtime import Up

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH = "\n---\n".join(
    f"""
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  serviceAccount: {name}-sa
  ports: [{{name: http, port: 8000}}]
  readinessProbe: {{httpGet: {{path: /}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8000}}]
"""
    for name in ("front", "back")
)


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Up]:
    with from_yaml(tmp_path, MESH) as up:
        yield up


def port(up: Up, instance: str, which: str) -> str:
    """`http://127.0.0.1:PORT` of the instance's Envoy: `admin_port` or `outbound_port`."""
    return f"http://127.0.0.1:{up.proxy(instance)[which]}"


def cluster(dump: dict[str, Any], name: str) -> dict[str, Any]:
    for config in dump["configs"]:
        for c in config.get("dynamic_active_clusters", []):
            if c["cluster"]["name"] == name:
                found: dict[str, Any] = c["cluster"]
                return found
    raise AssertionError(f"no cluster {name}")


def test_each_envoy_gets_its_clusters_once(mesh: Up) -> None:
    with httpx.Client(trust_env=False, timeout=10) as http:
        # A request from front's app through its sidecar to back: mutual TLS.
        proxy = port(mesh, "front-0.default", "outbound_port")
        with httpx.Client(proxy=proxy, trust_env=False, timeout=10) as via:
            answer = via.get("http://back.default.svc.cluster.local:8000/")
        assert answer.status_code == 200
        for instance in ("front-0.default", "back-0.default"):
            stats = http.get(
                port(mesh, instance, "admin_port") + "/stats",
                params={"filter": "^cluster_manager.cds.update_success$"},
            ).text
            assert stats.strip() == "cluster_manager.cds.update_success: 1", (instance, stats)
        dump = http.get(port(mesh, "front-0.default", "admin_port") + "/config_dump").json()
    back = cluster(dump, "outbound|8000||back.default.svc.cluster.local")
    mtls = back["transport_socket_matches"][0]
    assert mtls["match"] == {"tlsMode": "istio"}
    context = mtls["transport_socket"]["typed_config"]["common_tls_context"]
    sans = context["combined_validation_context"]["default_validation_context"][
        "match_typed_subject_alt_names"
    ]
    assert [s["matcher"]["exact"] for s in sans] == ["spiffe://cluster.local/ns/default/sa/back-sa"]
