"""HTTP API: Prometheus metrics (`/metrics`), the service graph and golden metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane


def routes(cp: ControlPlane) -> list[web.RouteDef]:
    return []
