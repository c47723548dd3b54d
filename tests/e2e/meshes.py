"""A mesh of `ami up` from YAML text, as a test module's fixture starts it, and the
requests its tests send it.

    with from_yaml(tmp_path, MESH, files={"apps/app.py": APP}) as up:
        through_gateway(up, "hello.default.example.com")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.test_runtime import Up, running


@contextmanager
def from_yaml(
    root: Path,
    mesh: str,
    *,
    files: Mapping[str, str] | None = None,
    ready: str | None = "every instance ready",
) -> Iterator[Up]:
    """`mesh` as ROOT/site/mesh.yaml, with `files` (paths in the site) beside it, run as
    `running` runs it (state in ROOT/state)."""
    config = root / "site"
    config.mkdir(parents=True)
    (config / "mesh.yaml").write_text(mesh)
    for name, text in (files or {}).items():
        path = config / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with running(config, root / "state", ready=ready) as up:
        yield up


def through_gateway(
    up: Up, host: str, path: str = "", *, timeout: float = 10, client: httpx.Client | None = None
) -> httpx.Response:
    """GET `path` from the mesh's ingress gateway with `Host: host` (through `client`
    when given)."""
    url = up.info().gateway_urls[0] + path
    headers = {"Host": host}
    if client is not None:
        return client.get(url, headers=headers)
    return httpx.get(url, headers=headers, timeout=timeout, trust_env=False)


def apply(up: Up, text: str, source: str = "test.yaml") -> None:
    """Apply YAML through the mesh's API, as `ami apply -f` does."""
    with up.client() as c:
        resp = c.post("/api/v1/apply", params={"source": source}, content=text)
    assert resp.status_code == 200, resp.text
