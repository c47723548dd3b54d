"""A small ADS client that subscribes the way Envoy does: a fake Envoy for tests and
benchmarks.

It subscribes to CDS and LDS by wildcard, then to EDS for the EDS clusters it holds
and to RDS for the route names its listeners use, and ACKs every response, or NACKs
the ones a `reject` callback refuses (keeping what it held, as Envoy does). Like
Envoy after its first sync, it withholds a CDS ACK until the new or changed EDS
clusters got their endpoints (their warming). It keeps resources packed and decodes
only clusters and listeners, to stay light when a thousand of them run in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, struct_pb2

from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE
from amimesh.xds import refs
from amimesh.xds.status import Mode
from amimesh.xds.wire import ErrorDetail, error_to_proto

Packed = Mapping[str, any_pb2.Any]
# (type_url, resources of one response by name) -> NACK message, or None to accept.
Reject = Callable[[str, Packed], str | None]
# Held listeners by name -> RouteConfiguration names to subscribe to.
RouteNames = Callable[[Packed], Iterable[str]]

_WILDCARD_TYPES = (CLUSTER, LISTENER)


@dataclass(frozen=True)
class Received:
    """One response as the client saw it; `rejected` is the NACK message if refused."""

    type_url: str
    version: str
    nonce: str
    names: tuple[str, ...]
    removed: tuple[str, ...]
    rejected: str | None


def _held_route_names(listeners: Packed) -> set[str]:
    names: set[str] = set()
    for listener in refs.decode_listeners(listeners.values()):
        names |= refs.listener_route_names(listener)
    return names


# Packed cluster -> its EDS name: every simulated proxy of a process receives the same
# clusters, decoded once (bounded; forgetting costs only a decode).
_EDS_NAMES: dict[bytes, str | None] = {}
_MAX_EDS_NAMES = 100_000


def _eds_name(packed: any_pb2.Any) -> str | None:
    value = packed.value
    try:
        return _EDS_NAMES[value]
    except KeyError:
        pass
    (cluster,) = refs.decode_clusters([packed])
    name = refs.cluster_eds_name(cluster)
    if len(_EDS_NAMES) >= _MAX_EDS_NAMES:
        _EDS_NAMES.clear()
    _EDS_NAMES[value] = name
    return name


def _held_eds_names(clusters: Packed) -> set[str]:
    names = (_eds_name(c) for c in clusters.values())
    return {n for n in names if n is not None}


class AdsClient:
    """One simulated proxy on one ADS stream (SotW or delta).

    `target` is an address ("127.0.0.1:port") or a `grpc.aio.Channel` to share (not
    closed by `stop`). `resources` holds what the client accepted, per type and name.
    `stop()` then `start()` reconnects; in delta the client then declares what it
    holds in `initial_resource_versions`, as Envoy does.
    """

    def __init__(
        self,
        target: str | grpc.aio.Channel,
        node_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        mode: Mode = "sotw",
        reject: Reject | None = None,
        route_names: RouteNames | None = None,
        hold_cds_ack: bool = True,
    ) -> None:
        self.node_id = node_id
        self.hold_cds_ack = hold_cds_ack
        self.mode: Mode = mode
        self.reject = reject
        self._target = target
        self._metadata = dict(metadata or {})
        self._route_names = route_names or _held_route_names
        self.resources: dict[str, dict[str, any_pb2.Any]] = {}
        self.versions: dict[str, dict[str, str]] = {}  # delta: per-resource versions
        self.acked: dict[str, str] = {}  # per type: last accepted version
        self.received: list[Received] = []
        self._nonces: dict[str, str] = {}
        self._subscribed: dict[str, set[str]] = {ENDPOINT: set(), ROUTE: set()}
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._node_sent = False
        self._clusters_initialized = False
        self._warming: set[str] = set()
        self._held_cds_nonce: str | None = None
        # How the last stream ended, if the server ended it with an error.
        self.error: grpc.aio.AioRpcError | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the stream and send the initial subscriptions."""
        if self._reader is not None:
            raise RuntimeError("AdsClient already started")
        if isinstance(self._target, str):
            self._channel = grpc.aio.insecure_channel(
                self._target, options=[("grpc.max_receive_message_length", -1)]
            )
            channel = self._channel
        else:
            channel = self._target
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        if self.mode == "sotw":
            self._call = stub.StreamAggregatedResources()
        else:
            self._call = stub.DeltaAggregatedResources()
        self._nonces.clear()
        self._node_sent = False
        self.error = None
        self._held_cds_nonce = None
        self._warming = set()
        for type_url in _WILDCARD_TYPES:
            await self._subscribe_initial(type_url)
        for type_url in (ENDPOINT, ROUTE):
            if self._subscribed[type_url]:
                await self._subscribe_initial(type_url)
        self._reader = asyncio.create_task(self._read(), name=f"ads-client-{self.node_id}")

    async def stop(self) -> None:
        """Close the stream (and the channel if this client opened it)."""
        reader, self._reader = self._reader, None
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def wait_until(self, predicate: Callable[[AdsClient], bool]) -> None:
        """Wait until `predicate(self)` holds (checked after each response); raise
        `ConnectionError` if the stream ends first. Bound it with `asyncio.timeout`."""
        while not predicate(self):
            reader = self._reader
            if reader is None or reader.done():
                raise ConnectionError(f"ADS stream of {self.node_id} ended: {self.error}")
            self._changed.clear()
            await self._changed.wait()

    def count(self, type_url: str) -> int:
        """How many responses of this type arrived (accepted or not)."""
        return sum(1 for r in self.received if r.type_url == type_url)

    def names(self, type_url: str) -> set[str]:
        """Names of the resources of this type the client holds."""
        return set(self.resources.get(type_url, {}))

    # -- reading --------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    return
                if self.mode == "sotw":
                    await self._on_sotw(response)
                else:
                    await self._on_delta(response)
                self._changed.set()
        except grpc.aio.AioRpcError as err:
            self.error = err
        finally:
            self._changed.set()

    async def _write(self, request: Any) -> None:
        try:
            await self._call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # The stream ended; the reader records how.

    async def _on_sotw(self, response: Any) -> None:
        type_url = response.type_url
        got = {refs.resource_name(r): r for r in response.resources}
        error = self.reject(type_url, got) if self.reject else None
        self._nonces[type_url] = response.nonce
        self.received.append(
            Received(type_url, response.version_info, response.nonce, tuple(got), (), error)
        )
        warming: set[str] = set()
        if error is None:
            held = self.resources.setdefault(type_url, {})
            warming = self._warming_after(type_url, held, got)
            if type_url in _WILDCARD_TYPES:
                self.resources[type_url] = got
            else:
                wanted = self._subscribed.get(type_url, set())
                held.update((n, r) for n, r in got.items() if n in wanted)
            self.acked[type_url] = response.version_info
        await self._answer(type_url, response.nonce, error, set(got), warming)

    async def _on_delta(self, response: Any) -> None:
        type_url = response.type_url
        # One pass over the resources: each access makes Python objects of them.
        items = [(r.name, r.resource, r.version) for r in response.resources]
        got = {name: resource for name, resource, _ in items}
        removed = tuple(response.removed_resources)
        error = self.reject(type_url, got) if self.reject else None
        self.received.append(
            Received(
                type_url, response.system_version_info, response.nonce, tuple(got), removed, error
            )
        )
        warming: set[str] = set()
        if error is None:
            held = self.resources.setdefault(type_url, {})
            warming = self._warming_after(type_url, held, got)
            versions = self.versions.setdefault(type_url, {})
            held.update(got)
            versions.update((name, version) for name, _, version in items)
            for name in removed:
                held.pop(name, None)
                versions.pop(name, None)
            self.acked[type_url] = response.system_version_info
        await self._answer(type_url, response.nonce, error, set(got), warming)

    async def _answer(
        self, type_url: str, nonce: str, error: str | None, names: set[str], warming: set[str]
    ) -> None:
        """ACK or NACK a response, then subscribe to what it leads to."""
        if type_url == CLUSTER and warming and self._clusters_initialized:
            # Like Envoy once initialized: hold the CDS ACK while the updated EDS
            # clusters warm, that is until their endpoints arrive.
            self._warming, self._held_cds_nonce = warming, nonce
        else:
            if type_url == CLUSTER:
                self._clusters_initialized = True
                self._held_cds_nonce = None
            await self._send_answer(type_url, nonce, error)
        await self._follow(type_url)
        if type_url == ENDPOINT and error is None and self._held_cds_nonce is not None:
            self._warming -= names
            if not self._warming:
                held, self._held_cds_nonce = self._held_cds_nonce, None
                await self._send_answer(CLUSTER, held, None)

    async def _send_answer(self, type_url: str, nonce: str, error: str | None) -> None:
        detail = ErrorDetail(error) if error is not None else None
        if self.mode == "sotw":
            await self._send_sotw(type_url, detail)
            return
        request = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=nonce)
        if detail is not None:
            request.error_detail.CopyFrom(error_to_proto(detail))
        await self._write(request)

    def _warming_after(self, type_url: str, held: Packed, got: Packed) -> set[str]:
        """EDS names of the clusters in `got` that are new or changed."""
        if type_url != CLUSTER or not self.hold_cds_ack:
            return set()
        changed = {n: r for n, r in got.items() if n not in held or held[n].value != r.value}
        return _held_eds_names(changed)

    # -- subscribing ----------------------------------------------------------------

    async def _follow(self, type_url: str) -> None:
        # Like Envoy: clusters lead to their endpoints, listeners to their routes.
        if type_url == CLUSTER:
            wanted = _held_eds_names(self.resources.get(CLUSTER, {}))
            await self._resubscribe(ENDPOINT, wanted)
        elif type_url == LISTENER:
            wanted = set(self._route_names(self.resources.get(LISTENER, {})))
            await self._resubscribe(ROUTE, wanted)

    async def _resubscribe(self, type_url: str, wanted: set[str]) -> None:
        current = self._subscribed[type_url]
        if wanted == current:
            return
        held = self.resources.get(type_url, {})
        for name in current - wanted:
            held.pop(name, None)
            self.versions.get(type_url, {}).pop(name, None)
        self._subscribed[type_url] = wanted
        if self.mode == "sotw":
            if type_url not in self._nonces and not wanted:
                return  # an empty first request would mean wildcard
            await self._send_sotw(type_url, None)
        else:
            await self._write_delta(
                type_url, subscribe=sorted(wanted - current), unsubscribe=sorted(current - wanted)
            )

    async def _subscribe_initial(self, type_url: str) -> None:
        if self.mode == "sotw":
            await self._send_sotw(type_url, None)
            return
        held = self.versions.get(type_url, {})
        if type_url in _WILDCARD_TYPES:
            await self._write_delta(type_url, initial=held)
        else:
            names = self._subscribed[type_url]
            initial = {n: v for n, v in held.items() if n in names}
            await self._write_delta(type_url, subscribe=sorted(names), initial=initial)

    async def _send_sotw(self, type_url: str, error: ErrorDetail | None) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            version_info=self.acked.get(type_url, ""),
            response_nonce=self._nonces.get(type_url, ""),
            resource_names=sorted(self._subscribed.get(type_url, ())),
        )
        if error is not None:
            request.error_detail.CopyFrom(error_to_proto(error))
        self._add_node(request)
        await self._write(request)

    async def _write_delta(
        self,
        type_url: str,
        *,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        initial: Mapping[str, str] | None = None,
    ) -> None:
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=dict(initial or {}),
        )
        self._add_node(request)
        await self._write(request)

    def _add_node(self, request: Any) -> None:
        # Only the first request of a stream carries the node, as Envoy does.
        if self._node_sent:
            return
        metadata = struct_pb2.Struct()
        metadata.update(self._metadata)
        request.node.CopyFrom(base_pb2.Node(id=self.node_id, metadata=metadata))
        self._node_sent = True
