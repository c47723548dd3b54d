"""What a proxy's connection managers and TCP proxies report, in one place.

Every HTTP connection manager and TCP proxy a proxy has (sidecar inbound, outbound and
upstream listeners; gateway servers) takes its access logs and tracing from one
`Reporting`:

- the file access log (`access_log`), unless a Telemetry turns it off;
- the stats loggers (`metrics_log`) that count Istio's standard metrics for the
  control plane, unless a Telemetry turns metrics off;
- tracing (`tracing`), when a Telemetry or the default turns it on.

`peer` is the value of the peer header (`metrics_log.PEER_HEADER`) the proxy's
outbound connection managers set on each request, so that the destination's proxy
reports who called it.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2

from amimesh.model import telemetry
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import access_log, metrics_log, tracing


@dataclass(frozen=True)
class Reporting:
    file_log: access_log.AccessLogConfig | None
    # The Istio metrics it reports (the Telemetry's); None: none at all.
    metrics: telemetry.MetricsPolicy | None
    peer: str
    trace: tracing.TracingConfig | None
    proxy: Proxy

    def http_logs(self, direction: str) -> list[accesslog_pb2.AccessLog]:
        """The access logs of an HTTP connection manager of `direction`."""
        out = access_log.logs(self.file_log, direction)
        if self.metrics is not None:
            stats = metrics_log.stats_for(self.metrics.off, direction)
            found = metrics_log.http_log(direction, stats)
            if found is not None:
                out.append(found)
        return out

    def tcp_logs(self, direction: str) -> list[accesslog_pb2.AccessLog]:
        """The access logs of a TCP proxy of `direction`."""
        out = access_log.logs(self.file_log, direction)
        if self.metrics is not None:
            stats = metrics_log.stats_for(self.metrics.off, direction)
            counted = metrics_log.tcp_logs(direction, stats)
            if counted:
                # The stats loggers need an entry when the upstream connects; the file
                # log keeps one line per connection.
                for entry in out:
                    entry.filter.CopyFrom(metrics_log.except_connected())
                out.extend(counted)
        return out

    def tracing(self, direction: str) -> tracing.HcmTracing | None:
        """The tracing of an HTTP connection manager of `direction`; None: none."""
        if self.trace is None:
            return None
        return tracing.hcm_tracing(self.trace, self.proxy, direction)


def silent(proxy: Proxy) -> Reporting:
    """Reports nothing: no access logs, no metrics, no tracing."""
    return Reporting(
        file_log=None, metrics=None, peer=metrics_log.peer_value(proxy), trace=None, proxy=proxy
    )


def of(snap: Snapshot, proxy: Proxy) -> Reporting:
    """What `proxy` reports under the snapshot's Telemetry resources."""
    ns, labels = proxy.namespace, proxy.labels
    return under(
        proxy,
        snap.access_log_policy(ns, labels),
        snap.metrics_policy(ns, labels),
        snap.tracing_policy(ns, labels),
    )


def under(
    proxy: Proxy,
    access: telemetry.AccessLogPolicy,
    metrics: telemetry.MetricsPolicy,
    trace: telemetry.TracingPolicy,
) -> Reporting:
    """What `proxy` reports under the Telemetry policies that apply to it."""
    return Reporting(
        file_log=access_log.config_for(proxy, access),
        metrics=metrics if metrics.enabled else None,
        peer=metrics_log.peer_value(proxy),
        trace=tracing.config_for(proxy, trace),
        proxy=proxy,
    )
