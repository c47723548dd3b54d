"""A watched directory drives real Envoys: edits apply live, broken files change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Mesh, wait_for

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
"""

ROUTE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
    - route:
        - destination: {host: web, subset: %s}
"""


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Mesh, Path]]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "services.yaml").write_text(SERVICES)
    (config / "route.yaml").write_text(ROUTE % "v1")
    m = Mesh(tmp_path, config_dir=config).start()
    try:
        yield m, config
    finally:
        m.stop()


def backends_seen(http: httpx.Client, n: int = 10) -> set[str]:
    return {json.loads(http.get("http://web:8080/").text)["backend"] for _ in range(n)}


def test_edit_applies_live_and_broken_file_keeps_last_good(watched: tuple[Mesh, Path]) -> None:
    mesh, config = watched
    mesh.workload("web-v1", {"app": "web", "version": "v1"}, port=8080)
    mesh.workload("web-v2", {"app": "web", "version": "v2"}, port=8080)
    client = mesh.client()
    mesh.wait_synced()
    with client.http() as http:
        check_live_edits(mesh, config, http)


def check_live_edits(mesh: Mesh, config: Path, http: httpx.Client) -> None:
    assert backends_seen(http) == {"web-v1"}

    (config / "route.yaml").write_text(ROUTE % "v2")
    wait_for(lambda: backends_seen(http, 3) == {"web-v2"})

    # A broken edit: reported with file and field, and traffic keeps the old routing.
    (config / "route.yaml").write_text((ROUTE % "v1").replace("hosts: [web]", "hosts: web"))
    wait_for(lambda: mesh.cp.store.errors() != [])
    errors = [str(e) for e in mesh.cp.store.errors()]
    assert any("route.yaml" in e and "spec.hosts" in e for e in errors), errors
    assert backends_seen(http) == {"web-v2"}
