"""The trace store: spans in SQLite, a summary per trace, bounded by count and age.

    store = TraceStore(path)              # None: in memory
    store.add(spans)                      # one transaction per batch
    store.search(service="reviews", min_duration_ms=100, limit=20)  # newest first
    store.trace(trace_id)                 # its spans, by start time; [] if unknown
    store.prune(now_ns)                   # by age, then by count

Three tables: `spans` (key: trace id, span id), `traces` (one summary row per trace:
start, end, duration, span count, error, root span's service and name; indexed by start
and duration) and `trace_services` (which services a trace went through; indexed by
service). A span that comes twice is kept once. The root of a trace is its span without
a parent in the trace (the earliest, if several).

Bounds: at most `max_spans` spans and nothing older than `max_age_s` (by trace start).
When a batch takes the store over `max_spans`, whole traces go, oldest first, down to
`PRUNE_TO` of the bound (so that not every batch prunes).

Not thread-safe: one thread uses a store (the collector runs it on its own thread).
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.telemetry.spans import Span, traces_of

DEFAULT_MAX_SPANS = 100_000
DEFAULT_MAX_AGE_S = 24 * 3600.0
PRUNE_TO = 0.9
MAX_LIMIT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    error INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error INTEGER NOT NULL,
    root_service TEXT NOT NULL,
    root_name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces (duration_ns);
CREATE TABLE IF NOT EXISTS trace_services (
    service TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (service, trace_id)
);
CREATE INDEX IF NOT EXISTS trace_services_by_trace ON trace_services (trace_id);
"""


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root_service: str
    root_name: str
    start_unix_nano: int
    duration_ns: int
    span_count: int
    error: bool
    services: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The API's form (`GET /api/v1/traces`)."""
        return {
            "trace_id": self.trace_id,
            "root_service": self.root_service,
            "root_name": self.root_name,
            "start": iso_time(self.start_unix_nano),
            "start_unix_nano": self.start_unix_nano,
            "duration_ms": round(self.duration_ns / 1e6, 3),
            "span_count": self.span_count,
            "error": self.error,
            "services": list(self.services),
        }


def iso_time(unix_nano: int) -> str:
    """`2025-01-02T03:04:05.678Z` (UTC, milliseconds)."""
    moment = datetime.datetime.fromtimestamp(unix_nano / 1e9, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def span_json(span: Span) -> dict[str, Any]:
    """The API's form of a span (`GET /api/v1/traces/{trace_id}`)."""
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "service": span.service,
        "kind": span.kind,
        "start_unix_nano": span.start_unix_nano,
        "end_unix_nano": span.end_unix_nano,
        "duration_ms": round(span.duration_nano / 1e6, 3),
        "status": span.status,
        "error": span.error,
        "attributes": dict(span.attributes),
    }


def root_of(spans: Sequence[Span]) -> Span | None:
    """The span of a trace whose parent is not in it (the earliest such); None if empty."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    candidates = roots or list(spans)
    return min(candidates, key=lambda s: (s.start_unix_nano, s.span_id), default=None)


class TraceStore:
    def __init__(
        self,
        path: Path | None = None,
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self.path = path
        self.max_spans = max_spans
        self.max_age_ns = int(max_age_s * 1e9)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count = int(self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
        self.pruned_spans = 0

    @property
    def span_count(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()

    # --- writing -----------------------------------------------------------------------

    def add(self, spans: Iterable[Span]) -> int:
        """Store a batch of spans (one transaction) and prune if over the bound; returns
        how many were new."""
        batch = list(spans)
        if not batch:
            return 0
        db = self._db
        with db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.service,
                        s.kind,
                        s.start_unix_nano,
                        s.end_unix_nano,
                        s.status,
                        int(s.error),
                        json.dumps(dict(s.attributes), separators=(",", ":")),
                    )
                    for s in batch
                ],
            )
            added = db.total_changes - before
            if added:
                for trace_id, _ in traces_of(batch):
                    self._summarize(trace_id)
        self._count += added
        if self._count > self.max_spans:
            self._prune_count()
        return added

    def _summarize(self, trace_id: str) -> None:
        spans = [
            Span(r[0], r[1], r[2], r[3], r[4], "", r[5], r[6], r[7])
            for r in self._db.execute(
                "SELECT trace_id, span_id, parent_span_id, name, service, start_ns, end_ns, "
                "CASE error WHEN 1 THEN 'ERROR' ELSE 'UNSET' END FROM spans WHERE trace_id = ?",
                (trace_id,),
            )
        ]
        root = root_of(spans)
        if root is None:
            return
        start = min(s.start_unix_nano for s in spans)
        end = max(s.end_unix_nano for s in spans)
        self._db.execute(
            "INSERT OR REPLACE INTO traces VALUES (?,?,?,?,?,?,?,?)",
            (
                trace_id,
                start,
                end,
                max(0, end - start),
                len(spans),
                int(any(s.error for s in spans)),
                root.service,
                root.name,
            ),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO trace_services VALUES (?,?)",
            [(service, trace_id) for service in {s.service for s in spans}],
        )

    def prune(self, now_ns: int) -> int:
        """Drop traces that started more than `max_age_s` before `now_ns`, then the
        oldest while over `max_spans`; returns how many spans went."""
        cutoff = now_ns - self.max_age_ns
        old = [
            r[0]
            for r in self._db.execute("SELECT trace_id FROM traces WHERE start_ns < ?", (cutoff,))
        ]
        gone = self._delete(old)
        if self._count > self.max_spans:
            gone += self._prune_count()
        return gone

    def _prune_count(self) -> int:
        excess = self._count - int(self.max_spans * PRUNE_TO)
        victims: list[str] = []
        covered = 0
        for trace_id, count in self._db.execute(
            "SELECT trace_id, span_count FROM traces ORDER BY start_ns, trace_id"
        ):
            if covered >= excess:
                break
            victims.append(trace_id)
            covered += count
        return self._delete(victims)

    def _delete(self, trace_ids: Sequence[str]) -> int:
        if not trace_ids:
            return 0
        rows = [(t,) for t in trace_ids]
        db = self._db
        with db:
            before = db.total_changes
            db.executemany("DELETE FROM spans WHERE trace_id = ?", rows)
            gone = db.total_changes - before
            db.executemany("DELETE FROM traces WHERE trace_id = ?", rows)
            db.executemany("DELETE FROM trace_services WHERE trace_id = ?", rows)
        self._count -= gone
        self.pruned_spans += gone
        return gone

    # --- reading -----------------------------------------------------------------------

    def search(
        self, *, service: str | None = None, min_duration_ms: float = 0.0, limit: int = 20
    ) -> list[TraceSummary]:
        """Traces through `service` (any span of it) lasting at least `min_duration_ms`,
        newest first, at most `limit` (capped at `MAX_LIMIT`)."""
        limit = max(1, min(limit, MAX_LIMIT))
        sql = (
            "SELECT trace_id, root_service, root_name, start_ns, duration_ns, span_count, "
            "error FROM traces WHERE duration_ns >= ?"
        )
        args: list[Any] = [int(min_duration_ms * 1e6)]
        if service:
            sql += " AND trace_id IN (SELECT trace_id FROM trace_services WHERE service = ?)"
            args.append(service)
        sql += " ORDER BY start_ns DESC, trace_id LIMIT ?"
        args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        services = self._services([r[0] for r in rows])
        return [
            TraceSummary(
                trace_id=r[0],
                root_service=r[1],
                root_name=r[2],
                start_unix_nano=r[3],
                duration_ns=r[4],
                span_count=r[5],
                error=bool(r[6]),
                services=services.get(r[0], ()),
            )
            for r in rows
        ]

    def _services(self, trace_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for trace_id in trace_ids:
            found = self._db.execute(
                "SELECT service FROM trace_services WHERE trace_id = ? ORDER BY service",
                (trace_id,),
            )
            out[trace_id] = [r[0] for r in found]
        return {k: tuple(v) for k, v in out.items()}

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of a trace by start time; [] when the store has none."""
        rows = self._db.execute(
            "SELECT trace_id, span_id, parent_span_id, name, service, kind, start_ns, end_ns, "
            "status, attributes FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
            (trace_id.lower(),),
        )
        return [
            Span(
                trace_id=r[0],
                span_id=r[1],
                parent_span_id=r[2],
                name=r[3],
                service=r[4],
                kind=r[5],
                start_unix_nano=r[6],
                end_unix_nano=r[7],
                status=r[8],
                attributes=json.loads(r[9]),
            )
            for r in rows
        ]
