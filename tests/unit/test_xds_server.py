"""The xDS server end to end in-process: real gRPC on loopback, `AdsClient` as Envoy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import pytest

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig
from amimesh.xds import samples
from amimesh.xds.client import AdsClient, Reject
from amimesh.xds.server import XdsServer
from amimesh.xds.status import Mode

MODES: list[Mode] = ["sotw", "delta"]


class Snapshot:
    """A stand-in for the mesh snapshot: per-proxy route bodies and cluster sets."""

    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}
        self.clusters: tuple[str, ...] = ("backend",)
        self.timeout_ms = 1000
        self.calls = 0
        self.seen: dict[str, Proxy] = {}
        self.fail: set[str] = set()

    def generate(self, proxy: Proxy) -> ProxyConfig:
        self.calls += 1
        self.seen[proxy.id] = proxy
        if proxy.id in self.fail:
            raise RuntimeError("translation failed")
        resources = [
            samples.listener("http", 15001, "routes"),
            samples.route_config("routes", body=self.bodies.get(proxy.id, "hello")),
        ]
        for name in self.clusters:
            resources.append(samples.cluster(name, connect_timeout_ms=self.timeout_ms))
            resources.append(samples.load_assignment(name, [("127.0.0.1", 9000)]))
        return samples.proxy_config(*resources)


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    # Runs after the fixtures that depend on it (server, clients) have torn down.
    # gRPC's own per-call tasks may need a few loop turns to finish; a leaked task
    # of ours would still be pending after that.
    leftover = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    if leftover:
        _, leftover = await asyncio.wait(leftover, timeout=1.0)
    assert not leftover, leftover


@pytest.fixture
def snapshot() -> Snapshot:
    return Snapshot()


@pytest.fixture
async def server(no_leaked_tasks: None, snapshot: Snapshot) -> AsyncIterator[XdsServer]:
    xds = XdsServer(snapshot.generate, debounce_s=0.01)
    await xds.start()
    try:
        yield xds
    finally:
        await xds.stop(grace=0.5)
        assert not xds.status()


class Clients:
    def __init__(self, port: int) -> None:
        self.port = port
        self.all: list[AdsClient] = []

    async def connect(
        self,
        node_id: str,
        mode: Mode,
        *,
        metadata: Mapping[str, Any] | None = None,
        reject: Reject | None = None,
        hold_cds_ack: bool = True,
    ) -> AdsClient:
        client = AdsClient(
            f"127.0.0.1:{self.port}",
            node_id,
            mode=mode,
            metadata=metadata,
            reject=reject,
            hold_cds_ack=hold_cds_ack,
        )
        self.all.append(client)
        await client.start()
        return client


@pytest.fixture
async def clients(server: XdsServer) -> AsyncIterator[Clients]:
    made = Clients(server.port)
    try:
        yield made
    finally:
        for client in made.all:
            await client.stop()


async def synced(server: XdsServer, proxies: int, accept_nacks: bool = False) -> None:
    async with asyncio.timeout(5):
        await server.wait_synced(proxies=proxies, accept_nacks=accept_nacks)


def first_seen_order(client: AdsClient) -> list[str]:
    order: list[str] = []
    for received in client.received:
        if received.type_url not in order:
            order.append(received.type_url)
    return order


@pytest.mark.parametrize("mode", MODES)
async def test_initial_sync(server: XdsServer, clients: Clients, mode: Mode) -> None:
    client = await clients.connect("web-1", mode)
    await synced(server, 1)
    assert first_seen_order(client) == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    assert client.names(CLUSTER) == {"backend"} and client.names(ENDPOINT) == {"backend"}
    assert client.names(LISTENER) == {"http"} and client.names(ROUTE) == {"routes"}
    [status] = server.status()
    assert status.proxy_id == "web-1" and status.mode == mode and status.synced
    for type_status in status.types:
        assert type_status.acked_version == type_status.sent_version
        assert client.acked[type_status.type_url] == type_status.acked_version


async def test_node_metadata_becomes_the_proxy(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    proxy = Proxy(
        id="reviews-v1-0",
        workload="reviews-v1",
        namespace="shop",
        labels={"app": "reviews", "version": "v1"},
        outbound_port=15001,
        inbound=(InboundPort(port=9080, listen_port=15006, app_port=18080, name="http"),),
    )
    await clients.connect(proxy.id, "sotw", metadata=proxy.metadata())
    await synced(server, 1)
    assert snapshot.seen[proxy.id] == proxy


@pytest.mark.parametrize("mode", MODES)
async def test_a_change_pushes_only_the_affected_proxy_and_type(
    server: XdsServer, clients: Clients, snapshot: Snapshot, mode: Mode
) -> None:
    a = await clients.connect("a", mode)
    b = await clients.connect("b", mode)
    await synced(server, 2)
    before_a, before_b = len(a.received), len(b.received)
    snapshot.bodies["a"] = "changed"
    server.config_changed()
    await synced(server, 2)
    assert [r.type_url for r in a.received[before_a:]] == [ROUTE]
    assert len(b.received) == before_b


async def test_delta_sends_only_changed_names_and_removed_ones(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    snapshot.clusters = ("a", "b", "c")
    client = await clients.connect("p", "delta")
    await synced(server, 1)
    before = len(client.received)
    snapshot.clusters = ("a", "b", "d")  # c goes, d comes; a and b unchanged
    server.config_changed()
    await synced(server, 1)
    got = [(r.type_url, r.names, r.removed) for r in client.received[before:]]
    assert got[0] == (CLUSTER, ("d",), ("c",))
    assert (ENDPOINT, ("d",), ()) in got
    assert client.names(CLUSTER) == {"a", "b", "d"}
    assert client.names(ENDPOINT) == {"a", "b", "d"}


@pytest.mark.parametrize("hold_cds_ack", [True, False])
@pytest.mark.parametrize("mode", MODES)
async def test_a_changed_cluster_gets_fresh_endpoints(
    server: XdsServer, clients: Clients, snapshot: Snapshot, mode: Mode, hold_cds_ack: bool
) -> None:
    client = await clients.connect("p", mode, hold_cds_ack=hold_cds_ack)
    await synced(server, 1)
    before = len(client.received)
    snapshot.timeout_ms = 2500  # the cluster changes, its endpoints do not
    server.config_changed()
    await synced(server, 1)
    got = [(r.type_url, r.names) for r in client.received[before:]]
    assert got == [(CLUSTER, ("backend",)), (ENDPOINT, ("backend",))]


@pytest.mark.parametrize("mode", MODES)
async def test_nack_is_recorded_and_not_resent(
    server: XdsServer, clients: Clients, snapshot: Snapshot, mode: Mode
) -> None:
    def reject(type_url: str, resources: Mapping[str, Any]) -> str | None:
        return "bad body" if type_url == ROUTE and snapshot.bodies.get("p") == "bad" else None

    client = await clients.connect("p", mode, reject=reject)
    await synced(server, 1)
    good = client.acked[ROUTE]
    snapshot.bodies["p"] = "bad"
    server.config_changed()
    await synced(server, 1, accept_nacks=True)
    assert not server.is_synced()
    routes = server.status()[0].type(ROUTE)
    assert routes is not None and routes.rejected and routes.last_nack is not None
    assert routes.last_nack.message == "bad body"
    assert routes.last_nack.resource_names == ("routes",)
    assert routes.acked_version == good == client.acked[ROUTE]
    sent = routes.responses_sent
    # Another regeneration with the same (rejected) config sends nothing.
    server.config_changed()
    await synced(server, 1, accept_nacks=True)
    again = server.status()[0].type(ROUTE)
    assert again is not None and again.responses_sent == sent
    assert [r.rejected for r in client.received if r.type_url == ROUTE][-1] == "bad body"
    # A fixed config goes out and is accepted.
    snapshot.bodies["p"] = "fixed"
    server.config_changed()
    await synced(server, 1)
    routes = server.status()[0].type(ROUTE)
    assert routes is not None and not routes.rejected and routes.last_nack is not None


async def test_debounce_coalesces_a_burst(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    await clients.connect("p", "sotw")
    await synced(server, 1)
    calls, rounds = snapshot.calls, server.regenerations
    for _ in range(20):
        server.config_changed()
    await synced(server, 1)
    assert server.regenerations == rounds + 1
    assert snapshot.calls == calls + 1


async def test_config_changed_from_another_thread(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    client = await clients.connect("p", "sotw")
    await synced(server, 1)
    snapshot.bodies["p"] = "from a thread"
    await asyncio.to_thread(server.config_changed)
    async with asyncio.timeout(5):
        await client.wait_until(lambda c: c.count(ROUTE) == 2)


async def test_delta_reconnect_declares_what_it_holds(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    client = await clients.connect("p", "delta")
    await synced(server, 1)
    await client.stop()
    async with asyncio.timeout(5):
        await server.wait_for(lambda xds: not xds.status())
    snapshot.bodies["p"] = "new"
    before = len(client.received)
    await client.start()
    await synced(server, 1)
    got = [(r.type_url, r.names) for r in client.received[before:]]
    # Clusters, endpoints and listeners unchanged: empty answers; the route changed.
    assert got == [(CLUSTER, ()), (ENDPOINT, ()), (LISTENER, ()), (ROUTE, ("routes",))]


async def test_a_proxy_whose_generation_fails_is_refused_and_others_keep_going(
    server: XdsServer, clients: Clients, snapshot: Snapshot
) -> None:
    snapshot.fail.add("broken")
    broken = await clients.connect("broken", "sotw")
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(5):
            await broken.wait_until(lambda c: False)
    ok = await clients.connect("ok", "sotw")
    await synced(server, 1)
    # A failure during regeneration keeps the proxy's last config.
    snapshot.fail.add("ok")
    snapshot.bodies["ok"] = "never"
    server.config_changed()
    await synced(server, 1)
    assert ok.count(ROUTE) == 1


async def test_on_disconnect_is_called_when_the_last_stream_of_a_proxy_ends(
    snapshot: Snapshot,
) -> None:
    gone: list[str] = []
    xds = XdsServer(snapshot.generate, on_disconnect=lambda proxy: gone.append(proxy.id))
    await xds.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
            first, second = AdsClient(channel, "p"), AdsClient(channel, "p")
            await first.start()
            await second.start()
            await synced(xds, 2)
            await first.stop()
            async with asyncio.timeout(5):
                await xds.wait_for(lambda s: len(s.status()) == 1)
            assert gone == []
            await second.stop()
            async with asyncio.timeout(5):
                await xds.wait_for(lambda s: not s.status())
            assert gone == ["p"]
    finally:
        await xds.stop()


async def test_stop_ends_every_stream(server: XdsServer, clients: Clients) -> None:
    client = await clients.connect("p", "delta")
    await synced(server, 1)
    await server.stop()
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(5):
            await client.wait_until(lambda c: False)


async def test_a_request_without_node_is_refused(server: XdsServer) -> None:
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await call.write(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_many_proxies_converge(server: XdsServer, snapshot: Snapshot) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        fleet = [AdsClient(channel, f"p{i}", mode=MODES[i % 2]) for i in range(50)]
        try:
            for client in fleet:
                await client.start()
            await synced(server, 50)
            snapshot.clusters = ("backend", "extra")
            server.config_changed()
            await synced(server, 50)
            assert all(c.names(ENDPOINT) == {"backend", "extra"} for c in fleet)
        finally:
            for client in fleet:
                await client.stop()
