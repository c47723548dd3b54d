"""The HTTP filters a sidecar's inbound listener runs before its router.

Request authentication (JWT, `RequestAuthentication`) and authorization
(`AuthorizationPolicy`) apply where traffic enters a workload, so they live on the
inbound side. The inbound listener asks this module for its filters; a workload no
policy selects gets none.
"""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot


def http_filters(
    snap: Snapshot, proxy: Proxy, port: InboundPort
) -> list[hcm_pb2.HttpFilter]:
    """Filters for `port` of `proxy`, in order, to run before the router."""
    del snap, proxy, port
    return []
