"""Hostile YAML against a running mesh: through the HTTP API's apply and as files in the
watched config directory, each document is refused with its error, traffic through a
real Envoy keeps flowing, and the control plane's memory stays flat."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from amimesh.resources.yaml_limits import MAX_BYTES, TOO_BIG
from tests import hostile_yaml as hostile
from tests.e2e.harness import Mesh, wait_for

pytestmark = pytest.mark.envoy

TOKEN = "hostile-yaml-test-token"
MIB = 1024 * 1024
# The control plane runs in this process (the harness's thread): its growth is ours.
MAX_GROWTH = 50 * MIB


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Mesh, Path]]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "web.yaml").write_text(hostile.service("web").replace("port: 80}", "port: 8080}"))
    m = Mesh(tmp_path, config_dir=config, api_token=TOKEN).start()
    try:
        yield m, config
    finally:
        m.stop()


def served(http: httpx.Client) -> bool:
    """Three requests through the client's Envoy all reach the web backend."""
    for _ in range(3):
        response = http.get("http://web:8080/")
        assert response.status_code == 200, response.text
        assert json.loads(response.text)["backend"] == "web"
    return True


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def test_hostile_yaml_is_refused_and_the_mesh_keeps_serving(watched: tuple[Mesh, Path]) -> None:
    mesh, config = watched
    mesh.workload("web", {"app": "web"}, port=8080)
    client = mesh.client()
    mesh.wait_synced()
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{mesh.cp.api_port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        trust_env=False,
        timeout=30.0,
    )
    with client.http() as http, api:
        # Warm up the path the test takes, then measure.
        empty = api.post("/api/v1/apply", params={"source": "e.yaml"}, content=b"# nothing\n")
        assert empty.json() == {"errors": ["e.yaml: no resources to apply"]}
        assert served(http)
        before = rss()

        for name, (content, error) in hostile.HOSTILE.items():
            answer = api.post("/api/v1/apply", params={"source": name}, content=content)
            assert (answer.status_code, answer.json()) == (400, {"errors": [f"{name}: {error}"]})
            assert served(http)

        # A body over the limit, streamed (so this test does not hold it) with its length.
        big = api.post(
            "/api/v1/apply",
            params={"source": "big.yaml"},
            content=(b"#" * MIB for _ in range(MAX_BYTES // MIB + 1)),
            headers={"Content-Length": str(MAX_BYTES + MIB)},
        )
        assert (big.status_code, big.json()) == (400, {"errors": [f"big.yaml: {TOO_BIG}"]})

        for name, (content, _) in hostile.HOSTILE.items():
            (config / name).write_bytes(content)
        expected = {f"{config / name}: {error}" for name, (_, error) in hostile.HOSTILE.items()}
        wait_for(lambda: {str(e) for e in mesh.cp.store.errors()} == expected, timeout=30)
        assert served(http)
        # The bomb in place of a good file: that file's last good content stays in force.
        (config / "web.yaml").write_bytes(hostile.BOMB.encode())
        expected.add(f"{config / 'web.yaml'}: {hostile.BOMB_ERROR}")
        wait_for(lambda: {str(e) for e in mesh.cp.store.errors()} == expected, timeout=30)
        assert served(http)

        # What `ami get svc -o json` asks: only the valid service, and nothing from the bomb.
        services = api.get("/api/v1/resources", params={"kind": "Service"}).json()
        assert [s["metadata"]["name"] for s in services["items"]] == ["web"]
        growth = rss() - before
        assert growth < MAX_GROWTH, f"the process grew by {growth / MIB:.1f} MiB"
        assert served(http)
