"""The control plane's receiver of the proxies' metrics: OTLP over gRPC.

Each proxy's stats sink sends, every few seconds, what its stats loggers counted since
the last time (`translate.metrics_log`): per metric, one data point per distinct set
of raw tags, as deltas. The stream names its proxy by gRPC metadata
(`metrics_log.NODE_HEADER`). Each data point becomes Istio's labels (`labels.Directory`:
who is at that address, which service that cluster is) and is added to `MeshMetrics`.

Tag sets repeat from one flush to the next, so their labels are cached per proxy;
the cache is dropped whenever the mesh (snapshot or connected proxies) changes. The
tag overrides of the Telemetry that decides the proxy's metrics (`model.telemetry`:
a removed label, or one set to a literal) are applied here, per metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

from amimesh.model import telemetry
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.telemetry.labels import (
    DESTINATION,
    LABELS,
    MUTUAL_TLS,
    NONE,
    SOURCE,
    TCP_LABELS,
    UNKNOWN,
    UNKNOWN_PEER,
    Directory,
    Peer,
    ServiceName,
    proxy_peer,
    split_host_port,
)
from amimesh.telemetry.metrics import MeshMetrics
from amimesh.translate import metrics_log as ml

log = logging.getLogger(__name__)

MAX_CACHED = 10_000


class Directories:
    """The current `Directory`, rebuilt when the snapshot or the set of proxies changes."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        proxies: Callable[[], Iterable[Proxy]],
        trust_domain: str,
    ) -> None:
        self._snapshot = snapshot
        self._proxies = proxies
        self.trust_domain = trust_domain
        self._key: tuple[int, frozenset[str]] | None = None  # (snapshot version, proxy ids)
        self._current: Directory | None = None
        self._by_id: dict[str, Proxy] = {}
        self.generation = 0

    def current(self) -> Directory:
        snap = self._snapshot()
        proxies = list(self._proxies())
        key = (snap.version, frozenset(p.id for p in proxies))
        if key != self._key or self._current is None:
            self._current = Directory(snap, proxies, self.trust_domain)
            self._by_id = {p.id: p for p in proxies}
            self._key = key
            self.generation += 1
        return self._current

    def proxy(self, node_id: str) -> Proxy | None:
        """The connected proxy `node_id`, as of the last `current()`."""
        return self._by_id.get(node_id)


def _labels(
    d: Directory, me: Peer, direction: str, tags: Mapping[str, str]
) -> tuple[str, Peer, Peer, ServiceName, str]:
    """(reporter, source, destination, service, connection_security_policy) of a data
    point with raw `tags` that the proxy `me` reported in `direction`."""
    if direction == ml.INBOUND:
        uri = tags.get(ml.PRINCIPAL, "")
        peer = tags.get(ml.PEER, "")
        source = d.peer_named(peer) if peer else None
        if source is None:
            source = d.by_principal.get(uri) if uri else None
        # The principals are what the mutual TLS handshake proved, or unknown.
        source = replace(source or UNKNOWN_PEER, principal=uri or UNKNOWN)
        dest = me if uri else replace(me, principal=UNKNOWN)
        host, port = split_host_port(tags.get(ml.LOCAL, ""))
        service = d.service_at(host, port, "")
        return DESTINATION, source, dest, service, MUTUAL_TLS if uri else NONE
    dest = d.peer_at(tags.get(ml.HOST, ""))
    service = d.service_of_cluster(tags.get(ml.CLUSTER, ""), "")
    return SOURCE, me, dest, service, UNKNOWN


def http_key(d: Directory, me: Peer, direction: str, tags: Mapping[str, str]) -> tuple[str, ...]:
    """The values of `labels.LABELS` for an HTTP data point."""
    reporter, src, dst, svc, policy = _labels(d, me, direction, tags)
    grpc_status = tags.get(ml.GRPC, "")
    return (
        reporter,
        *src.values(),
        *dst.values(),
        svc.host,
        svc.name,
        svc.namespace,
        "grpc" if grpc_status else "http",
        tags.get(ml.CODE, "0") or "0",
        grpc_status,
        tags.get(ml.FLAGS, "-") or "-",
        policy,
    )


def tcp_key(d: Directory, me: Peer, direction: str, tags: Mapping[str, str]) -> tuple[str, ...]:
    """The values of `labels.TCP_LABELS` for a TCP data point."""
    reporter, src, dst, svc, policy = _labels(d, me, direction, tags)
    return (
        reporter,
        *src.values(),
        *dst.values(),
        svc.host,
        svc.name,
        svc.namespace,
        "tcp",
        tags.get(ml.FLAGS, "-") or "-",
        policy,
    )


# The Istio metrics each of Ami's stats carries (`metrics_log.STAT_OF`, inverted).
METRICS_OF_STAT: dict[str, tuple[str, ...]] = {}
for _metric, _stat in ml.STAT_OF.items():
    METRICS_OF_STAT[_stat] = (*METRICS_OF_STAT.get(_stat, ()), _metric)


def tag_overrides(
    policy: telemetry.MetricsPolicy, stat: str, direction: str
) -> dict[str, str | None]:
    """The tag overrides that apply to `stat` as a proxy of `direction` reports it:
    those every Istio metric the stat carries agrees on (the duration histogram is
    both REQUEST_COUNT and REQUEST_DURATION)."""
    side = ml.SIDE_OF[direction]
    found = [policy.overrides(m, side) for m in METRICS_OF_STAT.get(stat, ())]
    if not found:
        return {}
    first, *rest = found
    return {k: v for k, v in first.items() if all(k in o and o[k] == v for o in rest)}


def apply_overrides(
    key: tuple[str, ...], labels: tuple[str, ...], overrides: Mapping[str, str | None]
) -> tuple[str, ...]:
    """`key` (values of `labels`) with the overrides of standard labels applied: a
    removed label is empty (Prometheus reads it as absent)."""
    if not overrides:
        return key
    values = list(key)
    for tag, value in overrides.items():
        if tag in labels:
            values[labels.index(tag)] = "" if value is None else value
    return tuple(values)


class ProxyReporter:
    """Turns one proxy's exports into metric updates, as that proxy reports them (with
    the tag overrides of the Telemetry that decides its metrics)."""

    def __init__(self, metrics: MeshMetrics, directories: Directories, node_id: str) -> None:
        self.metrics = metrics
        self.directories = directories
        self.node_id = node_id
        self._cache: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], tuple[str, ...]] = {}
        self._generation = -1
        self._me = UNKNOWN_PEER
        self._policy = telemetry.MetricsPolicy()

    def _directory(self) -> Directory:
        d = self.directories.current()
        if self.directories.generation != self._generation or len(self._cache) > MAX_CACHED:
            self._cache.clear()
            self._generation = self.directories.generation
            proxy = self.directories.proxy(self.node_id)
            self._me = proxy_peer(proxy, self.directories.trust_domain) if proxy else UNKNOWN_PEER
            self._policy = (
                d.snap.metrics_policy(proxy.namespace, proxy.labels)
                if proxy is not None
                else telemetry.MetricsPolicy()
            )
        return d

    def _key(
        self, d: Directory, kind: str, direction: str, stat: str, point: Any
    ) -> tuple[str, ...]:
        tags = tuple(sorted((a.key, a.value.string_value) for a in point.attributes))
        raw = (kind, direction, stat, tags)
        key = self._cache.get(raw)
        if key is None:
            make = http_key if kind == "http" else tcp_key
            labels = LABELS if kind == "http" else TCP_LABELS
            base = make(d, self._me, direction, dict(tags))
            overrides = tag_overrides(self._policy, stat, direction)
            key = self._cache[raw] = apply_overrides(base, labels, overrides)
        return key

    def ingest(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        d = self._directory()
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    name = ml.parse_metric_name(metric.name)
                    if name is None:
                        continue
                    if name.metric in ml.HTTP_METRICS:
                        for point in metric.histogram.data_points:
                            self.metrics.add_http(
                                self._key(d, "http", name.direction, name.metric, point),
                                name.metric,
                                tuple(point.explicit_bounds),
                                tuple(point.bucket_counts),
                                point.sum,
                            )
                    else:
                        for number in metric.sum.data_points:
                            value = number.as_int or int(number.as_double)
                            key = self._key(d, "tcp", name.direction, name.metric, number)
                            self.metrics.add_tcp(key, name.metric, value)


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    """OTLP's metrics service: every proxy's stats sink exports here."""

    def __init__(self, metrics: MeshMetrics, directories: Directories) -> None:
        self.metrics = metrics
        self.directories = directories
        self._reporters: dict[str, ProxyReporter] = {}

    def reporter(self, node_id: str) -> ProxyReporter:
        rep = self._reporters.get(node_id)
        if rep is None:
            if len(self._reporters) > MAX_CACHED:
                self._reporters.clear()
            rep = self._reporters[node_id] = ProxyReporter(self.metrics, self.directories, node_id)
        return rep

    async def Export(  # noqa: N802 (gRPC method name)
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        metadata = dict(context.invocation_metadata() or ())
        node_id = str(metadata.get(ml.NODE_HEADER, ""))
        try:
            self.reporter(node_id).ingest(request)
        except Exception:  # one bad export must not fail the proxy's next ones
            log.exception("metrics from %s", node_id or "an unnamed proxy")
        return metrics_service_pb2.ExportMetricsServiceResponse()


def add_to_server(receiver: MetricsReceiver) -> Callable[[grpc.aio.Server], None]:
    def add(server: grpc.aio.Server) -> None:
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            receiver, server
        )

    return add
