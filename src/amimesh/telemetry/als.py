"""The control plane's access log receiver: Envoy's access log service over gRPC.

Each proxy streams its entries (`translate.metrics_log`); the first message of a stream
names the proxy (its node, with the metadata the control plane reads back into a
`Proxy`) and the log (`ami.http.outbound`, ...). Every entry becomes one observation of
Istio's metrics (`MeshMetrics`), labelled by `labels.Directory`.

Label sets repeat, so an entry's labels are cached by the raw values they come from;
the cache is dropped whenever the mesh (snapshot or connected proxies) changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import Any

import grpc  # type: ignore[import-untyped]
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import json_format

from amimesh.model.proxy import Proxy, proxy_from_metadata
from amimesh.model.snapshot import Snapshot
from amimesh.telemetry import flags
from amimesh.telemetry.labels import (
    DESTINATION,
    MUTUAL_TLS,
    NONE,
    SOURCE,
    UNKNOWN,
    Directory,
    Peer,
    ServiceName,
    protocol,
    proxy_peer,
    split_host_port,
)
from amimesh.telemetry.metrics import MeshMetrics, TcpKey
from amimesh.translate import metrics_log

log = logging.getLogger(__name__)

MAX_CACHED = 10_000


def _ms(duration: Any) -> float:
    return float(duration.seconds * 1000 + duration.nanos / 1e6)


def _address(addr: Any) -> str:
    sock = addr.socket_address
    return f"{sock.address}:{sock.port_value}" if sock.address else ""


def _peer_uri(common: Any) -> str:
    for san in common.tls_properties.peer_certificate_properties.subject_alt_name:
        if san.uri:
            return str(san.uri)
    return ""


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
        self.generation = 0

    def current(self) -> Directory:
        snap = self._snapshot()
        proxies = list(self._proxies())
        key = (snap.version, frozenset(p.id for p in proxies))
        if key != self._key or self._current is None:
            self._current = Directory(snap, proxies, self.trust_domain)
            self._key = key
            self.generation += 1
        return self._current


class StreamReporter:
    """Turns one stream's entries into metric observations, as `proxy` reports them."""

    def __init__(
        self,
        metrics: MeshMetrics,
        directories: Directories,
        proxy: Proxy,
        direction: str,
    ) -> None:
        self.metrics = metrics
        self.directories = directories
        self.proxy = proxy
        self.inbound = direction == "inbound"
        self.me = proxy_peer(proxy, directories.trust_domain)
        self._cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self._generation = -1

    def _directory(self) -> Directory:
        d = self.directories.current()
        if self.directories.generation != self._generation or len(self._cache) > MAX_CACHED:
            self._cache.clear()
            self._generation = self.directories.generation
        return d

    def _sides(
        self,
        d: Directory,
        common: Any,
        peer_header: str,
        authority: str,
    ) -> tuple[str, Peer, Peer, ServiceName, str]:
        """(reporter, source, destination, service, connection_security_policy)."""
        if self.inbound:
            uri = _peer_uri(common)
            source = d.peer_named(peer_header) if peer_header else None
            if source is None:
                source = d.by_principal.get(uri) if uri else None
            if source is None:
                source = Peer(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)
            # The principals are what the mutual TLS handshake proved, or unknown.
            source = replace(source, principal=uri or UNKNOWN)
            me = self.me if uri else replace(self.me, principal=UNKNOWN)
            host, port = split_host_port(_address(common.downstream_local_address))
            service = d.service_at(host, port, authority)
            return DESTINATION, source, me, service, MUTUAL_TLS if uri else NONE
        dest = d.peer_at(_address(common.upstream_remote_address))
        service = d.service_of_cluster(common.upstream_cluster, authority)
        return SOURCE, self.me, dest, service, UNKNOWN

    def http(self, entries: Iterable[Any]) -> None:
        d = self._directory()
        for e in entries:
            common = e.common_properties
            request = e.request
            response = e.response
            req_headers = request.request_headers
            peer_header = req_headers.get(metrics_log.PEER_HEADER, "")
            proto = protocol(req_headers.get("content-type", ""))
            code = str(response.response_code.value)
            grpc_status = ""
            if proto == "grpc":
                grpc_status = response.response_trailers.get(
                    "grpc-status", response.response_headers.get("grpc-status", "")
                )
            response_flags = flags.short_form(common.response_flags)
            raw = (
                peer_header,
                _peer_uri(common) if self.inbound else "",
                common.downstream_local_address.socket_address.port_value,
                common.upstream_cluster,
                _address(common.upstream_remote_address),
                request.authority,
                proto,
                code,
                grpc_status,
                response_flags,
            )
            key = self._cache.get(raw)
            if key is None:
                reporter, src, dst, svc, policy = self._sides(
                    d, common, peer_header, request.authority
                )
                key = (
                    reporter,
                    *src.values(),
                    *dst.values(),
                    svc.host,
                    svc.name,
                    svc.namespace,
                    proto,
                    code,
                    grpc_status,
                    response_flags,
                    policy,
                )
                self._cache[raw] = key
            duration = common.time_to_last_downstream_tx_byte
            self.metrics.record_http(
                key,
                _ms(duration if duration.ByteSize() else common.duration),
                request.request_headers_bytes + request.request_body_bytes,
                response.response_headers_bytes + response.response_body_bytes,
            )

    def tcp(self, entries: Iterable[Any]) -> None:
        d = self._directory()
        for e in entries:
            common = e.common_properties
            response_flags = flags.short_form(common.response_flags)
            raw = (
                _peer_uri(common) if self.inbound else "",
                common.downstream_local_address.socket_address.port_value,
                common.upstream_cluster,
                _address(common.upstream_remote_address),
                response_flags,
            )
            key: TcpKey | None = self._cache.get(raw)
            if key is None:
                reporter, src, dst, svc, policy = self._sides(d, common, "", "")
                key = (
                    reporter,
                    *src.values(),
                    *dst.values(),
                    svc.host,
                    svc.name,
                    svc.namespace,
                    "tcp",
                    response_flags,
                    policy,
                )
                self._cache[raw] = key
            props = e.connection_properties
            self.metrics.record_tcp(
                key, int(props.sent_bytes), int(props.received_bytes), _ms(common.duration)
            )


class AccessLogReceiver(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    """Envoy's access log service: streams of entries from every proxy."""

    def __init__(self, metrics: MeshMetrics, directories: Directories) -> None:
        self.metrics = metrics
        self.directories = directories

    async def StreamAccessLogs(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> Any:
        reporter: StreamReporter | None = None
        kind = ""
        async for message in request_iterator:
            if message.HasField("identifier"):
                ident = message.identifier
                parsed = metrics_log.parse_log_name(ident.log_name)
                if parsed is None:
                    log.warning("access log stream %r: not one of Ami's", ident.log_name)
                    return als_pb2.StreamAccessLogsResponse()
                kind, direction = parsed
                proxy = proxy_from_metadata(
                    ident.node.id, json_format.MessageToDict(ident.node.metadata)
                )
                reporter = StreamReporter(self.metrics, self.directories, proxy, direction)
            if reporter is None:
                continue
            try:
                if message.HasField("http_logs"):
                    reporter.http(message.http_logs.log_entry)
                elif message.HasField("tcp_logs"):
                    reporter.tcp(message.tcp_logs.log_entry)
            except Exception:  # one bad entry must not end the proxy's stream
                log.exception("access log entries from %s", reporter.proxy.id)
        return als_pb2.StreamAccessLogsResponse()


def add_to_server(receiver: AccessLogReceiver) -> Callable[[grpc.aio.Server], None]:
    def add(server: grpc.aio.Server) -> None:
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(receiver, server)

    return add
