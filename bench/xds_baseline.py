"""The floor of an xDS push on this machine: a bare ADS fan-out with no control plane.

A minimal servicer holds N streams; each round it sends the same prebuilt
RouteConfiguration to every stream and times until every minimal client has ACKed.
No translation, no diffing, no file watch: what is left is gRPC and protobuf.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped]
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from amimesh.translate.built import ROUTE


class _Fanout(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, resource: any_pb2.Any, expected: int) -> None:
        self.resource = resource
        self.queues: list[asyncio.Queue[int]] = []
        self.expected = expected
        self.connected = asyncio.Event()
        self.acks = 0
        self.all_acked = asyncio.Event()

    async def StreamAggregatedResources(  # noqa: N802 - gRPC method name
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        async for r in self._serve(requests, delta=False):
            yield r

    async def DeltaAggregatedResources(  # noqa: N802 - gRPC method name
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        async for r in self._serve(requests, delta=True):
            yield r

    async def _serve(self, requests: AsyncIterator[Any], *, delta: bool) -> AsyncIterator[Any]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        self.queues.append(queue)
        if len(self.queues) == self.expected:
            self.connected.set()

        async def read() -> None:
            async for req in requests:
                if req.response_nonce:
                    self.acks += 1
                    if self.acks == self.expected:
                        self.all_acked.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                n = await queue.get()
                if delta:
                    yield discovery_pb2.DeltaDiscoveryResponse(
                        type_url=ROUTE,
                        nonce=str(n),
                        system_version_info=str(n),
                        resources=[
                            discovery_pb2.Resource(
                                name="outbound", version=str(n), resource=self.resource
                            )
                        ],
                    )
                else:
                    yield discovery_pb2.DiscoveryResponse(
                        type_url=ROUTE, nonce=str(n), version_info=str(n), resources=[self.resource]
                    )
        finally:
            reader.cancel()


async def _client(channel: Any, delta: bool, ready: asyncio.Event) -> None:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    if delta:
        call = stub.DeltaAggregatedResources()
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=ROUTE, resource_names_subscribe=["outbound"]
            )
        )
    else:
        call = stub.StreamAggregatedResources()
        await call.write(
            discovery_pb2.DiscoveryRequest(type_url=ROUTE, resource_names=["outbound"])
        )
    try:
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            if delta:
                await call.write(
                    discovery_pb2.DeltaDiscoveryRequest(type_url=ROUTE, response_nonce=resp.nonce)
                )
            else:
                await call.write(
                    discovery_pb2.DiscoveryRequest(
                        type_url=ROUTE,
                        version_info=resp.version_info,
                        response_nonce=resp.nonce,
                        resource_names=["outbound"],
                    )
                )
    except asyncio.CancelledError:
        call.cancel()
        raise


def _channels(port: int, clients: int) -> list[Any]:
    """One channel per 50 clients, as the convergence bench's simulated proxies share."""
    return [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1)]
        )
        for _ in range(max(1, clients // 50))
    ]


async def fan_out(resource: any_pb2.Any, clients: int, mode: str, *, rounds: int) -> list[float]:
    """Milliseconds from send-to-all until all ACKed, for each of `rounds` pushes."""
    servicer = _Fanout(resource, clients)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channels = _channels(port, clients)
    ready = asyncio.Event()
    tasks = [
        asyncio.create_task(_client(channels[i % len(channels)], mode == "delta", ready))
        for i in range(clients)
    ]
    out: list[float] = []
    try:
        await asyncio.wait_for(servicer.connected.wait(), 60)
        for n in range(1, rounds + 1):
            servicer.acks = 0
            servicer.all_acked.clear()
            t0 = time.perf_counter()
            for q in servicer.queues:
                q.put_nowait(n)
            await asyncio.wait_for(servicer.all_acked.wait(), 60)
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
        await server.stop(0)


class _InitialFanout(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """Answers each type's first request with its prebuilt response; counts ACKs."""

    def __init__(self, responses: dict[str, bytes], expected: int) -> None:
        self.responses = responses
        self.expected = expected
        self.acks = 0
        self.all_acked = asyncio.Event()

    async def DeltaAggregatedResources(  # noqa: N802 - gRPC method name
        self, requests: AsyncIterator[Any], context: Any
    ) -> None:
        async for req in requests:
            if req.response_nonce:
                self.acks += 1
                if self.acks == self.expected:
                    self.all_acked.set()
            else:
                await context.write(self.responses[req.type_url])


async def _initial_client(channel: Any, types: list[str]) -> None:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.DeltaAggregatedResources()
    for type_url in types:
        await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=type_url))
    try:
        for _ in types:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            await call.write(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=resp.type_url, response_nonce=resp.nonce
                )
            )
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        call.cancel()
        raise


async def initial_sync(tables: dict[str, dict[str, Any]], clients: int) -> float:
    """Seconds until `clients` minimal delta clients, connecting at once, have each
    received and ACKed every table of `tables` (type URL -> name -> packed resource):
    the same bytes a proxy's initial sync carries, with no translation and no
    bookkeeping."""
    responses = {
        type_url: discovery_pb2.DeltaDiscoveryResponse(
            type_url=type_url,
            nonce="1",
            system_version_info="1",
            resources=[
                discovery_pb2.Resource(name=name, version="1", resource=packed)
                for name, packed in sorted(table.items())
            ],
        ).SerializeToString()
        for type_url, table in tables.items()
    }
    servicer = _InitialFanout(responses, clients * len(tables))
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "envoy.service.discovery.v3.AggregatedDiscoveryService",
                {
                    "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                        servicer.DeltaAggregatedResources,
                        request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                        response_serializer=lambda b: b,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channels = _channels(port, clients)
    t0 = time.perf_counter()
    types = list(tables)
    tasks = [
        asyncio.create_task(_initial_client(channels[i % len(channels)], types))
        for i in range(clients)
    ]
    try:
        await asyncio.wait_for(servicer.all_acked.wait(), 300)
        return time.perf_counter() - t0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
        await server.stop(0)
