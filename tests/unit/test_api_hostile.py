"""The HTTP API's apply and delete refuse hostile and oversized YAML bodies with the
loader's errors, read no more of a body than the limit, and change nothing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import test_utils

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.resources.yaml_limits import MAX_BYTES, TOO_BIG
from tests import hostile_yaml as hostile
from tests.unit.test_api import AUTH, TOKEN, Client, call

MIB = 1024 * 1024


@pytest.fixture
async def cp() -> ControlPlane:
    return ControlPlane(ControlPlaneConfig(debounce_s=0.01))


@pytest.fixture
async def client(cp: ControlPlane) -> AsyncIterator[Client]:
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


@pytest.mark.parametrize("path", ["/api/v1/apply", "/api/v1/delete"])
async def test_hostile_bodies_get_their_errors(client: Client, cp: ControlPlane, path: str) -> None:
    for name, (content, error) in hostile.HOSTILE.items():
        body = await call(client, "POST", f"{path}?source={name}", data=content, status=400)
        assert body == {"errors": [f"{name}: {error}"]}
    assert cp.store.resources() == []


async def test_a_body_the_content_length_says_is_too_large(client: Client) -> None:
    data = io.BytesIO(b"#" * (MAX_BYTES + 1))
    body = await call(client, "POST", "/api/v1/apply?source=big.yaml", data=data, status=400)
    assert body == {"errors": [f"big.yaml: {TOO_BIG}"]}


async def test_a_body_without_length_is_read_only_to_the_limit(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BYTES // MIB + 8):
            yield b"#" * MIB

    body = await call(client, "POST", "/api/v1/apply?source=big.yaml", data=chunks(), status=400)
    assert body == {"errors": [f"big.yaml: {TOO_BIG}"]}


async def test_a_body_is_utf8_whatever_charset_it_claims(client: Client) -> None:
    text = hostile.service("web").encode("utf-16")
    headers = {**AUTH, "Content-Type": "application/yaml; charset=utf-16"}
    async with client.post("/api/v1/apply?source=u.yaml", data=text, headers=headers) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body == {
        "errors": ["u.yaml: document 0 (line 1): is not UTF-8 text: byte 0xff at line 1, column 1"]
    }


async def test_mutants_get_an_answer_never_a_server_error(client: Client) -> None:
    answers = set()
    for name, content in hostile.mutants(seed=7, count=60):
        async with client.post(f"/api/v1/apply?source={name}", data=content, headers=AUTH) as resp:
            body = await resp.json()
            answers.add(resp.status)
            assert resp.status in (200, 400), body
            if resp.status == 400:
                assert body["errors"] and all(e.startswith(f"{name}: ") for e in body["errors"])
            else:
                assert body["applied"]
    assert answers == {200, 400}
