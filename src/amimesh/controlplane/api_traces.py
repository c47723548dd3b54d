"""HTTP API: trace search and one trace.

GET /api/v1/traces?service=S&min_duration_ms=D&limit=N
    {"traces": [{"trace_id", "root_service", "root_name", "start", "start_unix_nano",
                 "duration_ms", "span_count", "error", "services": [...]}]}
    newest first; `service`: traces with a span of S; `limit` 20 by default, at
    most 1000. `start` is UTC ISO 8601 with milliseconds.
GET /api/v1/traces/{trace_id}
    {"trace_id", "spans": [{"span_id", "parent_span_id", "name", "service", "kind",
                            "start_unix_nano", "end_unix_nano", "duration_ms",
                            "status", "error", "attributes": {...}}]}
    spans by start time; 404 {"error": ...} when the store has no such trace.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from aiohttp import web

from amimesh.telemetry.trace_store import MAX_LIMIT, span_json

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

PREFIX = "/api/v1/traces"
DEFAULT_LIMIT = 20
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def routes(cp: ControlPlane) -> list[web.RouteDef]:
    async def search(request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            return _error(f"limit must be a whole number, got {q.get('limit')!r}")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
        try:
            min_ms = float(q.get("min_duration_ms") or 0)
        except ValueError:
            return _error(f"min_duration_ms must be a number, got {q.get('min_duration_ms')!r}")
        if not math.isfinite(min_ms) or min_ms < 0:
            return _error(f"min_duration_ms must be 0 or more, got {q.get('min_duration_ms')!r}")
        found = await cp.traces.search(
            service=q.get("service") or None, min_duration_ms=min_ms, limit=limit
        )
        return web.json_response({"traces": [t.to_json() for t in found]})

    async def one(request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"]
        if not _TRACE_ID.match(trace_id):
            return _error(f"not a trace id (up to 32 hex digits): {trace_id!r}")
        # Trace ids are 32 hex digits; a shorter one (a 64-bit Zipkin id) is padded.
        full = trace_id.lower().rjust(32, "0")
        spans = await cp.traces.trace(full)
        if not spans:
            return _error(f"no trace {trace_id} in the store", 404)
        return web.json_response({"trace_id": full, "spans": [span_json(s) for s in spans]})

    return [web.get(PREFIX, search), web.get(PREFIX + "/{trace_id}", one)]
