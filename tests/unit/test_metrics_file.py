"""The mesh's metrics written to disk and read back by a control plane started again."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from amimesh.telemetry import metrics_file
from amimesh.telemetry.labels import LABELS, TCP_LABELS
from amimesh.telemetry.metrics import DURATION_BUCKETS, MeshMetrics
from amimesh.translate import metrics_log

HTTP_KEY = tuple(f"h{i}" for i in range(len(LABELS)))
TCP_KEY = tuple(f"t{i}" for i in range(len(TCP_LABELS)))


def counted() -> MeshMetrics:
    m = MeshMetrics()
    counts = tuple([1] + [0] * len(DURATION_BUCKETS))
    m.add_http(HTTP_KEY, metrics_log.REQUEST_DURATION, DURATION_BUCKETS, counts, 3.5)
    m.add_tcp(TCP_KEY, metrics_log.TCP_OPENED, 2)
    m.add_tcp(TCP_KEY, metrics_log.TCP_SENT, 100)
    return m


def test_metrics_outlive_the_process(tmp_path: Path) -> None:
    before = counted()
    kept = metrics_file.MetricsFile(before, tmp_path / "metrics.json")
    kept.save()
    after = MeshMetrics()
    metrics_file.MetricsFile(after, tmp_path / "metrics.json").load()
    assert generate_latest(after.registry) == generate_latest(before.registry)
    # and go on counting from there
    counts = tuple([0, 1] + [0] * (len(DURATION_BUCKETS) - 1))
    after.add_http(HTTP_KEY, metrics_log.REQUEST_DURATION, DURATION_BUCKETS, counts, 1.0)
    http, tcp = after.snapshot()
    assert http[HTTP_KEY].count == 2 and http[HTTP_KEY].duration.sum == 4.5
    assert (tcp[TCP_KEY].opened, tcp[TCP_KEY].sent) == (2, 100)


def test_a_broken_file_starts_from_zero(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    m = MeshMetrics()
    metrics_file.MetricsFile(m, tmp_path / "metrics.json").load()
    assert m.snapshot() == ({}, {})
