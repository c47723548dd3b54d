"""`POST /api/v1/certificates`: a CSR signed for the identity an instance token grants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity import csr as csr_mod
from amimesh.identity import pem
from amimesh.identity.spiffe import SpiffeId

ADMIN = "admin-token"
PATH = "/api/v1/certificates"
REVIEWS = SpiffeId("cluster.local", "default", "reviews")
RATINGS = SpiffeId("cluster.local", "default", "ratings")
Client = test_utils.TestClient[Any, Any]


@pytest.fixture
async def cp() -> ControlPlane:
    return ControlPlane(ControlPlaneConfig(debounce_s=0.01, cert_ttl_s=600))


@pytest.fixture
async def client(cp: ControlPlane) -> AsyncIterator[Client]:
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, ADMIN)))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


async def post(client: Client, token: str | None, body: Any, status: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with client.post(PATH, json=body, headers=headers) as resp:
        data: dict[str, Any] = await resp.json()
        assert resp.status == status, data
        return data


def csr(identity: SpiffeId) -> str:
    return csr_mod.make_csr(csr_mod.new_key(), identity)


async def test_an_instance_token_gets_its_certificate(cp: ControlPlane, client: Client) -> None:
    token = cp.identity.grant(REVIEWS)
    body = await post(client, token, {"csr": csr(REVIEWS)}, 200)
    assert set(body) >= {"certificate_chain", "trust_bundle", "serial", "not_after", "spiffe_id"}
    assert body["spiffe_id"] == REVIEWS.uri
    leaf = pem.load_certificates(body["certificate_chain"])[0]
    assert pem.serial_hex(leaf) == body["serial"]
    assert pem.not_after(leaf).isoformat() == body["not_after"]
    assert (pem.not_after(leaf) - pem.not_before(leaf)).total_seconds() == 600 + 60
    assert pem.load_certificates(body["trust_bundle"]) == [cp.identity.ca.cert]


async def test_someone_elses_identity_is_forbidden(cp: ControlPlane, client: Client) -> None:
    token = cp.identity.grant(REVIEWS)
    body = await post(client, token, {"csr": csr(RATINGS)}, 403)
    assert REVIEWS.uri in body["error"] and RATINGS.uri in body["error"]


@pytest.mark.parametrize("token", [None, "", "unknown", f"{ADMIN}x"])
async def test_unknown_tokens_are_unauthorized(client: Client, token: str | None) -> None:
    body = await post(client, token, {"csr": csr(REVIEWS)}, 401)
    assert body["error"].startswith("unauthorized")


async def test_a_revoked_token_is_unauthorized(cp: ControlPlane, client: Client) -> None:
    token = cp.identity.grant(REVIEWS)
    cp.identity.revoke(token)
    await post(client, token, {"csr": csr(REVIEWS)}, 401)


async def test_the_api_token_gets_no_certificate(client: Client) -> None:
    body = await post(client, ADMIN, {"csr": csr(REVIEWS)}, 403)
    assert "instance token" in body["error"]


async def test_instance_tokens_open_nothing_else(cp: ControlPlane, client: Client) -> None:
    token = cp.identity.grant(REVIEWS)
    async with client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"csr": "garbage"}, "csr: not a PEM certificate request"),
        ({"nope": 1}, 'want {"csr"'),
        (["csr"], 'want {"csr"'),
        ({"csr": 5}, 'want {"csr"'),
    ],
)
async def test_a_malformed_request_is_a_bad_request(
    cp: ControlPlane, client: Client, body: Any, message: str
) -> None:
    token = cp.identity.grant(REVIEWS)
    assert message in (await post(client, token, body, 400))["error"]


async def test_a_body_that_is_not_json(cp: ControlPlane, client: Client) -> None:
    token = cp.identity.grant(REVIEWS)
    headers = {"Authorization": f"Bearer {token}"}
    async with client.post(PATH, data="{", headers=headers) as resp:
        assert resp.status == 400
        assert "not JSON" in (await resp.json())["error"]


async def test_server_names_for_gateway_tokens_only(cp: ControlPlane, client: Client) -> None:
    names = {"dns_names": ["localhost", "*.example.com"], "ip_addresses": ["127.0.0.1"]}
    gateway = cp.identity.grant(REVIEWS, serving=True)
    body = await post(client, gateway, {"csr": csr(REVIEWS), **names}, 200)
    assert body["spiffe_id"] == REVIEWS.uri
    workload = cp.identity.grant(RATINGS)
    refused = await post(client, workload, {"csr": csr(RATINGS), **names}, 403)
    assert "are for gateway tokens" in refused["error"]
    for bad, message in [
        ({"dns_names": "localhost"}, "body: dns_names must be a list of strings"),
        ({"dns_names": ["a b"]}, "body: dns_names: 'a b' is not a DNS name"),
        ({"ip_addresses": ["localhost"]}, "body: ip_addresses: 'localhost' is not an IP address"),
    ]:
        answer = await post(client, gateway, {"csr": csr(REVIEWS), **bad}, 400)
        assert answer["error"] == message
