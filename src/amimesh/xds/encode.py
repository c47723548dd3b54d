"""Responses encoded once per resource, not once per stream.

A protobuf message on the wire is a sequence of fields, and a parser takes them in
any order and appends repeated ones. So a response is sent as the small fields that
differ per stream (version, type, nonce, removals), encoded each time, followed by
each resource's field bytes, encoded once per `Built` and shared by every stream
that receives it. The gRPC method handlers then pass these bytes through as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]
from envoy.service.discovery.v3 import discovery_pb2

from amimesh.translate.built import Built
from amimesh.xds.wire import Response

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
# Field number 2 with wire type 2 (length-delimited): `resources` in both responses.
_RESOURCES_TAG = b"\x12"

_SOTW = "xds-sotw-field"
_DELTA = "xds-delta-field"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(payload: bytes) -> bytes:
    return _RESOURCES_TAG + _varint(len(payload)) + payload


def _sotw_field(built: Built) -> bytes:
    field = built.encoded.get(_SOTW)
    if field is None:
        field = built.encoded[_SOTW] = _field(built.any.SerializeToString(deterministic=True))
    return field


def _delta_field(built: Built) -> bytes:
    field = built.encoded.get(_DELTA)
    if field is None:
        resource = discovery_pb2.Resource(
            name=built.name, version=built.version, resource=built.any
        )
        field = built.encoded[_DELTA] = _field(resource.SerializeToString(deterministic=True))
    return field


def sotw_response(response: Response) -> bytes:
    """A `DiscoveryResponse`, as bytes."""
    head = discovery_pb2.DiscoveryResponse(
        version_info=response.version, type_url=response.type_url, nonce=response.nonce
    ).SerializeToString()
    return b"".join([head, *(_sotw_field(b) for b in response.resources)])


def delta_response(response: Response) -> bytes:
    """A `DeltaDiscoveryResponse`, as bytes."""
    head = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=response.version,
        type_url=response.type_url,
        nonce=response.nonce,
        removed_resources=list(response.removed),
    ).SerializeToString()
    return b"".join([head, *(_delta_field(b) for b in response.resources)])


def _pass_through(data: bytes) -> bytes:
    return data


def add_ads_handlers(server: Any, sotw: Callable[..., Any], delta: Callable[..., Any]) -> None:
    """Register the two ADS methods on `server`, with responses written as bytes."""
    handlers = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            sotw,
            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=_pass_through,
        ),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
            delta,
            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            response_serializer=_pass_through,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
