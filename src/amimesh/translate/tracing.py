"""Proxy × Telemetry → the tracing of its HTTP connection managers.

`config` says how a proxy traces (None: it does not); `hcm_tracing` turns that into
the `tracing` block of one connection manager of a direction (`inbound` or `outbound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot

HcmTracing: TypeAlias = hcm_pb2.HttpConnectionManager.Tracing


@dataclass(frozen=True)
class TracingConfig:
    """How a proxy traces its requests."""


def config(snap: Snapshot, proxy: Proxy) -> TracingConfig | None:
    """How `proxy` traces; None when it does not."""
    return None


def hcm_tracing(cfg: TracingConfig, proxy: Proxy, direction: str) -> HcmTracing | None:
    """The `tracing` of one connection manager of `proxy` in `direction` under `cfg`."""
    return None
