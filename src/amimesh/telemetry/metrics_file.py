"""The mesh's Istio metrics kept on disk, so that a control plane started again goes
on counting where the last one stopped (Prometheus sees no counter reset).

    kept = MetricsFile(metrics, state_dir / "metrics.json")
    kept.load()                  # at start
    await kept.run()             # writes every few seconds while something changed
    kept.save()                  # at stop

What a `kill -9` loses is what arrived since the last write (at most `PERIOD_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from amimesh.telemetry.metrics import HttpSeries, MeshMetrics, TcpSeries

log = logging.getLogger(__name__)

PERIOD_S = 5.0
MAX_FILE = 256 * 1024 * 1024


def dump(metrics: MeshMetrics) -> dict[str, Any]:
    http, tcp = metrics.snapshot()
    return {
        "http": [
            {
                "key": list(key),
                "count": s.count,
                "histograms": [
                    {"counts": h.counts, "sum": h.sum}
                    for h in (s.duration, s.request_bytes, s.response_bytes)
                ],
            }
            for key, s in http.items()
        ],
        "tcp": [
            {"key": list(key), "values": [s.sent, s.received, s.opened, s.closed]}
            for key, s in tcp.items()
        ],
    }


def restore(metrics: MeshMetrics, data: dict[str, Any]) -> None:
    """Put back what `dump` wrote (series already there are replaced)."""
    http, tcp = {}, {}
    for item in data.get("http", []):
        series = HttpSeries()
        series.count = int(item["count"])
        for target, h in zip(
            (series.duration, series.request_bytes, series.response_bytes),
            item["histograms"],
            strict=True,
        ):
            if len(h["counts"]) == len(target.counts):
                target.counts = [int(n) for n in h["counts"]]
                target.sum = float(h["sum"])
        http[tuple(str(k) for k in item["key"])] = series
    for item in data.get("tcp", []):
        tcp[tuple(str(k) for k in item["key"])] = TcpSeries(*(int(v) for v in item["values"]))
    metrics.restore(http, tcp)


class MetricsFile:
    def __init__(self, metrics: MeshMetrics, path: Path) -> None:
        self.metrics = metrics
        self.path = path
        self._saved_points = -1

    def load(self) -> None:
        try:
            if not self.path.exists():
                return
            if self.path.stat().st_size > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            restore(self.metrics, json.loads(self.path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("metrics of the last run not taken back from %s: %s", self.path, e)
            return
        self._saved_points = self.metrics.points
        log.info("metrics of the last run taken back from %s", self.path)

    def save(self) -> None:
        if self.metrics.points == self._saved_points:
            return
        points = self.metrics.points
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(dump(self.metrics), f)
            tmp.replace(self.path)
            self._saved_points = points

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PERIOD_S)
            self.save()
