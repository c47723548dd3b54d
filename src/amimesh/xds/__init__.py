"""Aggregated Discovery Service (SotW and delta) and per-proxy state.

Public surface:

- `XdsServer`: the grpc.aio ADS server; give it `generate(proxy) -> ProxyConfig`,
  call `config_changed()` when the snapshot changes, read `status()`, and (tests,
  benchmarks) `await wait_synced()`.
- `ProxySyncStatus`, `TypeSyncStatus`, `Nack`: what `status()` reports.
- `StreamState`: the pure per-stream state machine the server drives.
- `AdsClient`: a light ADS client that subscribes, ACKs and NACKs like Envoy.
- `samples`: small hand-written Envoy resources for tests and benchmarks.
"""

from amimesh.xds import samples
from amimesh.xds.client import AdsClient, Received, Reject
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
    "Reject",
    "RequestOutcome",
    "StreamState",
    "TypeSyncStatus",
    "XdsServer",
    "samples",
]
