"""Istio's standard metrics, aggregated in the control plane from what the proxies'
stats sinks send (`metrics_receiver`), served in Prometheus' text format by
`prometheus-client`.

`MeshMetrics` keeps, per label set, the counters and histograms of Istio's metrics:

- HTTP and gRPC: `istio_requests_total`, `istio_request_duration_milliseconds` (Envoy's
  default buckets), `istio_request_bytes` and `istio_response_bytes` (buckets 1 to 1e9
  by powers of ten);
- TCP: `istio_tcp_sent_bytes_total`, `istio_tcp_received_bytes_total` (counted when
  the connection closes), `istio_tcp_connections_opened_total`,
  `istio_tcp_connections_closed_total`.

It also keeps a short history (`SLOT_S`-second slots, `HISTORY_S` seconds) per edge of
the service graph, from which `window` answers requests/s, error rate and latency
percentiles over the last seconds (the dashboard and `ami top`).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from amimesh.telemetry.labels import LABELS, TCP_LABELS
from amimesh.translate import metrics_log
from amimesh.translate.metrics_log import BYTES_BUCKETS, DURATION_BUCKETS

SLOT_S = 5
HISTORY_S = 300

HttpKey = tuple[str, ...]  # values of LABELS, in order
TcpKey = tuple[str, ...]  # values of TCP_LABELS, in order

# Positions in an HTTP key.
_REPORTER = LABELS.index("reporter")
_SRC = LABELS.index("source_workload")
_SRC_NS = LABELS.index("source_workload_namespace")
_DST = LABELS.index("destination_workload")
_DST_NS = LABELS.index("destination_workload_namespace")
_DST_SVC = LABELS.index("destination_service")
_PROTOCOL = LABELS.index("request_protocol")
_CODE = LABELS.index("response_code")
_GRPC = LABELS.index("grpc_response_status")
_POLICY = LABELS.index("connection_security_policy")


class Histogram:
    """Bucket counts and a sum, as Prometheus' histograms keep them."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def add_buckets(self, bounds: tuple[float, ...], counts: tuple[int, ...], total: float) -> None:
        """Add counts of buckets with upper `bounds` (the last count: above them all).
        Buckets that differ from this histogram's go to the first bucket holding their
        upper bound."""
        if bounds == self.bounds and len(counts) == len(self.counts):
            for i, n in enumerate(counts):
                self.counts[i] += n
        else:
            last = len(self.counts) - 1
            for i, n in enumerate(counts):
                at = bisect.bisect_left(self.bounds, bounds[i]) if i < len(bounds) else last
                self.counts[at] += n
        self.sum += total

    def add(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else _le(bound), float(total)))
        return out

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated within its bucket as Prometheus'
        `histogram_quantile` does; None without observations."""
        total = sum(self.counts)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            if seen + n >= rank and n > 0:
                if i == len(self.bounds):
                    return self.bounds[-1]
                lower = self.bounds[i - 1] if i > 0 else 0.0
                return lower + (self.bounds[i] - lower) * (rank - seen) / n
            seen += n
        return self.bounds[-1]


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


class HttpSeries:
    __slots__ = ("count", "duration", "request_bytes", "response_bytes")

    def __init__(self) -> None:
        self.count = 0
        self.duration = Histogram(DURATION_BUCKETS)
        self.request_bytes = Histogram(BYTES_BUCKETS)
        self.response_bytes = Histogram(BYTES_BUCKETS)


@dataclass
class TcpSeries:
    sent: int = 0
    received: int = 0
    opened: int = 0
    closed: int = 0


@dataclass(frozen=True)
class Edge:
    """One edge of the service graph: a workload calling a service's workload."""

    reporter: str
    source_workload: str
    source_namespace: str
    destination_service: str
    destination_workload: str
    destination_namespace: str
    protocol: str
    mtls: bool


@dataclass
class EdgeStats:
    requests: int = 0
    errors: int = 0
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))

    def add(self, other: EdgeStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.duration.add(other.duration)


def is_error(key: HttpKey) -> bool:
    """A failed request: a 5xx (or no response), or a gRPC status other than OK."""
    code = key[_CODE]
    if code == "0" or code.startswith("5"):
        return True
    return key[_PROTOCOL] == "grpc" and key[_GRPC] not in ("", "0")


def edge_of(key: tuple[str, ...], tcp: bool = False) -> Edge:
    names = TCP_LABELS if tcp else LABELS
    get = dict(zip(names, key, strict=True))
    return Edge(
        reporter=get["reporter"],
        source_workload=get["source_workload"],
        source_namespace=get["source_workload_namespace"],
        destination_service=get["destination_service"],
        destination_workload=get["destination_workload"],
        destination_namespace=get["destination_workload_namespace"],
        protocol=get["request_protocol"],
        mtls=get["connection_security_policy"] == "mutual_tls",
    )


class MeshMetrics:
    """The mesh's Istio metrics. `add_http` and `add_tcp` are called for every data
    point a proxy sends (from the event loop); `registry` serves them to Prometheus."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.http: dict[HttpKey, HttpSeries] = {}
        self.tcp: dict[TcpKey, TcpSeries] = {}
        self._slots: deque[tuple[int, dict[Edge, EdgeStats]]] = deque()
        self._edges: dict[tuple[str, ...], Edge] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.points = 0  # data points ingested

    # --- ingestion -----------------------------------------------------------------------

    def _slot(self) -> dict[Edge, EdgeStats]:
        start = int(self._clock()) // SLOT_S * SLOT_S
        if not self._slots or self._slots[-1][0] != start:
            self._slots.append((start, {}))
            while self._slots and self._slots[0][0] <= start - HISTORY_S:
                self._slots.popleft()
        return self._slots[-1][1]

    def _edge(self, key: tuple[str, ...], tcp: bool) -> Edge:
        edge = self._edges.get(key)
        if edge is None:
            edge = self._edges[key] = edge_of(key, tcp)
        return edge

    def add_http(
        self,
        key: HttpKey,
        metric: str,
        bounds: tuple[float, ...],
        counts: tuple[int, ...],
        total: float,
    ) -> None:
        """Add one histogram delta of `metric` (`metrics_log.HTTP_METRICS`) to the
        series `key`; the duration histogram's count is the number of requests."""
        with self._lock:
            self.points += 1
            series = self.http.get(key)
            if series is None:
                series = self.http[key] = HttpSeries()
            if metric == metrics_log.REQUEST_DURATION:
                target = series.duration
                requests = sum(counts)
                series.count += requests
                stats = self._edge_stats(key, False)
                stats.requests += requests
                if is_error(key):
                    stats.errors += requests
                stats.duration.add_buckets(bounds, counts, total)
            elif metric == metrics_log.REQUEST_BYTES:
                target = series.request_bytes
            else:
                target = series.response_bytes
            target.add_buckets(bounds, counts, total)

    def add_tcp(self, key: TcpKey, metric: str, value: int) -> None:
        """Add a counter delta of `metric` (`metrics_log.TCP_METRICS`) to the series
        `key`; a closed connection counts on its graph edge."""
        with self._lock:
            self.points += 1
            series = self.tcp.get(key)
            if series is None:
                series = self.tcp[key] = TcpSeries()
            if metric == metrics_log.TCP_OPENED:
                series.opened += value
            elif metric == metrics_log.TCP_CLOSED:
                series.closed += value
                self._edge_stats(key, True).requests += value
            elif metric == metrics_log.TCP_SENT:
                series.sent += value
            elif metric == metrics_log.TCP_RECEIVED:
                series.received += value

    def _edge_stats(self, key: tuple[str, ...], tcp: bool) -> EdgeStats:
        """The current slot's stats of the graph edge of `key`."""
        slot = self._slot()
        edge = self._edge(key, tcp)
        stats = slot.get(edge)
        if stats is None:
            stats = slot[edge] = EdgeStats()
        return stats

    def restore(self, http: dict[HttpKey, HttpSeries], tcp: dict[TcpKey, TcpSeries]) -> None:
        """Take back the series of a run before (`metrics_file`)."""
        with self._lock:
            self.http.update(http)
            self.tcp.update(tcp)

    # --- queries -------------------------------------------------------------------------

    def window(self, seconds: float) -> dict[Edge, EdgeStats]:
        """Each edge's requests, errors and latencies over the last `seconds`."""
        now = self._clock()
        since = now - seconds
        out: dict[Edge, EdgeStats] = {}
        with self._lock:
            for start, edges in self._slots:
                if start + SLOT_S <= since:
                    continue
                for edge, stats in edges.items():
                    total = out.get(edge)
                    if total is None:
                        total = out[edge] = EdgeStats()
                    total.add(stats)
        return out

    def snapshot(self) -> tuple[dict[HttpKey, HttpSeries], dict[TcpKey, TcpSeries]]:
        """Copies of the series, for exposition."""
        with self._lock:
            http = {}
            for key, s in self.http.items():
                c = HttpSeries()
                c.count = s.count
                c.duration.add(s.duration)
                c.request_bytes.add(s.request_bytes)
                c.response_bytes.add(s.response_bytes)
                http[key] = c
            tcp = {
                k: TcpSeries(s.sent, s.received, s.opened, s.closed) for k, s in self.tcp.items()
            }
        return http, tcp


class _Collector(Collector):
    def __init__(self, metrics: MeshMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        http, tcp = self._metrics.snapshot()
        labels = list(LABELS)
        requests = CounterMetricFamily("istio_requests_total", "Requests (Istio)", labels=labels)
        duration = HistogramMetricFamily(
            "istio_request_duration_milliseconds", "Request duration (Istio)", labels=labels
        )
        req_bytes = HistogramMetricFamily(
            "istio_request_bytes", "Request size: headers and body (Istio)", labels=labels
        )
        resp_bytes = HistogramMetricFamily(
            "istio_response_bytes", "Response size: headers and body (Istio)", labels=labels
        )
        for key, s in http.items():
            values = list(key)
            # A histogram with no observation is a metric its reporter does not report
            # (a Telemetry turned it off): left out, not shown as zero.
            if s.count:
                requests.add_metric(values, s.count)
                duration.add_metric(values, s.duration.cumulative(), s.duration.sum)
            if any(s.request_bytes.counts):
                req_bytes.add_metric(values, s.request_bytes.cumulative(), s.request_bytes.sum)
            if any(s.response_bytes.counts):
                resp_bytes.add_metric(values, s.response_bytes.cumulative(), s.response_bytes.sum)
        tcp_labels = list(TCP_LABELS)
        sent = CounterMetricFamily(
            "istio_tcp_sent_bytes_total", "Bytes sent in TCP connections (Istio)", labels=tcp_labels
        )
        received = CounterMetricFamily(
            "istio_tcp_received_bytes_total",
            "Bytes received in TCP connections (Istio)",
            labels=tcp_labels,
        )
        opened = CounterMetricFamily(
            "istio_tcp_connections_opened_total",
            "TCP connections opened (Istio)",
            labels=tcp_labels,
        )
        closed = CounterMetricFamily(
            "istio_tcp_connections_closed_total",
            "TCP connections closed (Istio)",
            labels=tcp_labels,
        )
        for key, t in tcp.items():
            values = list(key)
            sent.add_metric(values, t.sent)
            received.add_metric(values, t.received)
            opened.add_metric(values, t.opened)
            closed.add_metric(values, t.closed)
        yield from (requests, duration, req_bytes, resp_bytes, sent, received, opened, closed)
