"""Aggregated Discovery Service (SotW and delta) and per-proxy state.

Public surface (import each from its module: `amimesh.xds.server`, `.status`,
`.stream`, `.client`, `.samples`; importing the package loads none of them):

- `XdsServer`: the grpc.aio ADS server; give it `generate(proxy) -> ProxyConfig`,
  call `config_changed()` when the snapshot changes, read `status()`, and (tests,
  benchmarks) `await wait_synced()`.
- `ProxySyncStatus`, `TypeSyncStatus`, `Nack`: what `status()` reports.
- `StreamState`: the pure per-stream state machine the server drives.
- `AdsClient`: a light ADS client that subscribes, ACKs and NACKs like Envoy.
- `samples`: small hand-written Envoy resources for tests and benchmarks.
"""
