"""What one Envoy resource makes a client ask for next.

A Cluster of type EDS makes Envoy subscribe to a ClusterLoadAssignment; a Listener
whose HttpConnectionManager uses RDS makes it subscribe to a RouteConfiguration.
The server needs the first to know which clusters warm on EDS; the ADS client needs
both to subscribe the way Envoy does.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from google.protobuf import any_pb2
from google.protobuf.message import Message

_HCM = http_connection_manager_pb2.HttpConnectionManager
_HCM_TYPE_URL = "type.googleapis.com/" + _HCM.DESCRIPTOR.full_name


def cluster_eds_name(cluster: Message, *, ads_only: bool = False) -> str | None:
    """The ClusterLoadAssignment name an EDS cluster waits for, or None.

    None for a cluster that is not of type EDS (STATIC, STRICT_DNS, ...). With
    `ads_only`, also None when the cluster takes its endpoints from somewhere else
    than the ADS stream (another config source never reaches this server).
    """
    if not isinstance(cluster, cluster_pb2.Cluster):
        return None
    if cluster.WhichOneof("cluster_discovery_type") != "type":
        return None
    if cluster.type != cluster_pb2.Cluster.EDS:
        return None
    eds = cluster.eds_cluster_config
    if ads_only and eds.eds_config.WhichOneof("config_source_specifier") != "ads":
        return None
    return str(eds.service_name or cluster.name)


def listener_route_names(listener: Message, *, ads_only: bool = False) -> set[str]:
    """Names of the RouteConfigurations a Listener's HTTP connection managers use by RDS.

    With `ads_only`, only those whose RDS config source is the ADS stream.
    """
    if not isinstance(listener, listener_pb2.Listener):
        return set()
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    names: set[str] = set()
    for chain in chains:
        for network_filter in chain.filters:
            typed = network_filter.typed_config
            if typed.type_url != _HCM_TYPE_URL:
                continue
            hcm = _HCM()
            typed.Unpack(hcm)
            if hcm.WhichOneof("route_specifier") != "rds":
                continue
            source = hcm.rds.config_source.WhichOneof("config_source_specifier")
            if ads_only and source != "ads":
                continue
            names.add(hcm.rds.route_config_name)
    return names


def decode_clusters(resources: Iterable[any_pb2.Any]) -> list[Message]:
    """Clusters decoded from their packed form (what a client receives)."""
    return [_unpack(cluster_pb2.Cluster(), res) for res in resources]


def decode_listeners(resources: Iterable[any_pb2.Any]) -> list[Message]:
    """Listeners decoded from their packed form (what a client receives)."""
    return [_unpack(listener_pb2.Listener(), res) for res in resources]


def _unpack(message: Message, packed: any_pb2.Any) -> Message:
    message.ParseFromString(packed.value)
    return message


def resource_name(packed: any_pb2.Any) -> str:
    """The name of a packed xDS resource, read without decoding the message.

    Every type served here keeps its name in field 1 (`name`, or `cluster_name` for
    a ClusterLoadAssignment). "" if the field is absent or the bytes are malformed.
    """
    data = packed.value
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            field_number, wire_type = key >> 3, key & 7
            if wire_type == 2:
                length, pos = _varint(data, pos)
                if field_number == 1:
                    return bytes(data[pos : pos + length]).decode()
                pos += length
            elif wire_type == 0:
                _, pos = _varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            else:
                return ""
    except (IndexError, UnicodeDecodeError):
        return ""
    return ""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
