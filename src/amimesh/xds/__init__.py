"""Aggregated Discovery Service (SotW and delta) and per-proxy state.

Public surface:

- `XdsServer`: the grpc.aio ADS server; give it `generate(proxy) -> ProxyConfig`,
  call `config_changed()` when the snapshot changes, read `status()`.
- `ProxySyncStatus`, `TypeSyncStatus`, `Nack`: what `status()` reports.
- `StreamState`: the pure per-stream state machine the server drives.
- `AdsClient`: a light ADS client that behaves like Envoy (tests, benchmarks).
"""

from amimesh.xds.client import AdsClient, Received
from amimesh.xds.server import Generate, XdsServer
from amimesh.xds.status import Mode, Nack, ProxySyncStatus, TypeSyncStatus
from amimesh.xds.stream import RequestOutcome, StreamState

__all__ = [
    "AdsClient",
    "Generate",
    "Mode",
    "Nack",
    "ProxySyncStatus",
    "Received",
    "RequestOutcome",
    "StreamState",
    "TypeSyncStatus",
    "XdsServer",
]
