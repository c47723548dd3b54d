"""The agent's SDS server over a real Unix socket, with a gRPC client in Envoy's place."""

from __future__ import annotations

import asyncio
import datetime
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from amimesh.agent import sds
from amimesh.agent.bootstrap import SDS_CLUSTER, bootstrap, sds_cluster
from amimesh.identity import csr as csr_mod
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.spiffe import SpiffeId
from amimesh.model.proxy import Proxy

NOW = datetime.datetime.now(datetime.UTC)
ID = SpiffeId("cluster.local", "default", "web")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.self_signed(now=NOW)


def secrets(ca: CertificateAuthority) -> sds.Secrets:
    issued, key = ca.issue(ID, ttl=datetime.timedelta(hours=1), now=NOW)
    return sds.Secrets(issued.certificate_chain, csr_mod.key_pem(key), issued.trust_bundle)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[sds.SdsServer]:
    s = sds.SdsServer(tmp_path / "sds.sock")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


class Stream:
    """One StreamSecrets call, as Envoy makes it."""

    def __init__(self, channel: Any) -> None:
        self.requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        self.call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets(self._gen())
        self._reading: asyncio.Task[Any] | None = None

    async def _gen(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (req := await self.requests.get()) is not None:
            yield req

    def send(self, names: list[str], version: str = "", nonce: str = "", **kw: Any) -> None:
        self.requests.put_nowait(
            discovery_pb2.DiscoveryRequest(
                type_url=sds.SECRET_TYPE,
                resource_names=names,
                version_info=version,
                response_nonce=nonce,
                **kw,
            )
        )

    async def recv(self, wait_s: float = 2.0) -> discovery_pb2.DiscoveryResponse:
        # A cancelled read cancels the call: a read that times out stays pending.
        if self._reading is None:
            self._reading = asyncio.ensure_future(self.call.read())
        done, _ = await asyncio.wait([self._reading], timeout=wait_s)
        if not done:
            raise TimeoutError
        response: discovery_pb2.DiscoveryResponse = self._reading.result()
        self._reading = None
        return response

    async def close(self) -> None:
        self.requests.put_nowait(None)
        self.call.cancel()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)


@pytest.fixture
async def channel(server: sds.SdsServer) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"unix:{server.path}") as ch:
        yield ch


def unpack(response: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    out = {}
    for any_ in response.resources:
        s = secret_pb2.Secret()
        any_.Unpack(s)
        out[s.name] = s
    return out


async def test_the_socket_is_private(server: sds.SdsServer) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


async def test_secrets_are_served_and_pushed_on_update(
    server: sds.SdsServer, channel: Any, ca: CertificateAuthority
) -> None:
    first = secrets(ca)
    server.update(first)
    stream = Stream(channel)
    try:
        stream.send([sds.DEFAULT])
        r1 = await stream.recv()
        assert r1.type_url == sds.SECRET_TYPE and r1.version_info == "1"
        got = unpack(r1)
        assert list(got) == [sds.DEFAULT]
        tls = got[sds.DEFAULT].tls_certificate
        assert tls.certificate_chain.inline_bytes.decode() == first.certificate_chain
        assert tls.private_key.inline_bytes.decode() == first.private_key
        stream.send([sds.DEFAULT], version="1", nonce=r1.nonce)  # ACK: nothing more
        second = secrets(ca)
        server.update(second)
        r2 = await stream.recv()
        assert r2.version_info == "2" and r2.nonce != r1.nonce
        tls = unpack(r2)[sds.DEFAULT].tls_certificate
        assert tls.certificate_chain.inline_bytes.decode() == second.certificate_chain
    finally:
        await stream.close()


async def test_a_stream_waits_for_the_first_secrets(
    server: sds.SdsServer, channel: Any, ca: CertificateAuthority
) -> None:
    stream = Stream(channel)
    try:
        stream.send([sds.ROOTCA])
        with pytest.raises(TimeoutError):
            await stream.recv(wait_s=0.3)
        s = secrets(ca)
        server.update(s)
        got = unpack(await stream.recv())
        trusted = got[sds.ROOTCA].validation_context.trusted_ca.inline_bytes.decode()
        assert trusted == s.trust_bundle
    finally:
        await stream.close()


async def test_names_change_and_wildcard(
    server: sds.SdsServer, channel: Any, ca: CertificateAuthority
) -> None:
    server.update(secrets(ca))
    stream = Stream(channel)
    try:
        stream.send([])
        r1 = await stream.recv()
        assert set(unpack(r1)) == {sds.DEFAULT, sds.ROOTCA}
        stream.send([sds.ROOTCA, "unknown"], version=r1.version_info, nonce=r1.nonce)
        r2 = await stream.recv()
        assert list(unpack(r2)) == [sds.ROOTCA]
    finally:
        await stream.close()


async def test_a_nack_is_recorded_and_not_answered(
    server: sds.SdsServer, channel: Any, ca: CertificateAuthority
) -> None:
    server.update(secrets(ca))
    stream = Stream(channel)
    try:
        stream.send([sds.DEFAULT])
        r1 = await stream.recv()
        stream.send(
            [sds.DEFAULT],
            version="",
            nonce=r1.nonce,
            error_detail=status_pb2.Status(code=3, message="bad key"),
        )
        with pytest.raises(TimeoutError):
            await stream.recv(wait_s=0.3)
        assert server.nacks == ["bad key"]
    finally:
        await stream.close()


async def test_fetch_secrets(server: sds.SdsServer, channel: Any, ca: CertificateAuthority) -> None:
    stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
    request = discovery_pb2.DiscoveryRequest(resource_names=[sds.ROOTCA])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.FetchSecrets(request)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    server.update(secrets(ca))
    assert list(unpack(await stub.FetchSecrets(request))) == [sds.ROOTCA]


def test_secrets_never_show_their_key(ca: CertificateAuthority) -> None:
    s = secrets(ca)
    assert "PRIVATE KEY" not in repr(s) and "PRIVATE KEY" not in str(s)


def test_a_long_socket_path_moves_to_a_private_directory(tmp_path: Path) -> None:
    short = tmp_path / "sds.sock"
    assert sds.socket_path(short) == (short, None)
    path, private = sds.socket_path(tmp_path / ("x" * 120) / "sds.sock")
    try:
        assert private is not None and path.parent == private
        assert len(str(path)) <= sds.MAX_SOCKET_PATH
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        sds.remove_private_dir(private)
    assert private is not None and not private.exists()


def test_the_bootstrap_reaches_sds_over_a_pipe() -> None:
    cfg = bootstrap(Proxy(id="web-0.default"), xds_port=1, admin_port=2, sds_socket="/x/sds.sock")
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert clusters[SDS_CLUSTER] == sds_cluster("/x/sds.sock")
    endpoint = clusters[SDS_CLUSTER]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"] == {"pipe": {"path": "/x/sds.sock"}}
    without = bootstrap(Proxy(id="web-0.default"), xds_port=1, admin_port=2)
    assert SDS_CLUSTER not in {c["name"] for c in without["static_resources"]["clusters"]}
