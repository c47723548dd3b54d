"""The dashboard's pages and assets, served by the control plane's HTTP API."""

from __future__ import annotations

from aiohttp import web


def routes() -> list[web.RouteDef]:
    return []
