"""What telemetry costs: data-plane throughput with it on, control-plane CPU ingesting it.

Figures (one JSON line each; `--quick` runs shorter):

- `telemetry_max_rps_ratio`: maximum throughput through two Ami sidecars with mutual
  TLS (client → sidecar → sidecar → nginx, as bench/dataplane.py sets up, with the real
  control plane) with all telemetry on — Istio metrics (stats loggers in each proxy,
  flushed to the control plane), tracing at 1% (OpenTelemetry to the control plane)
  and file access logs — over the same path with all of it off (a mesh-wide
  Telemetry), in the same run, alternating rounds. Target ≥ 0.9.
- `controlplane_cpu_pct_at_100_proxies`: the control plane's CPU (percent of one core,
  `ami controlplane` as its own process) with 100 proxies connected (an xDS stream
  each) and idle (a proxy's stats sink sends nothing while nothing changes); beside it
  the same control plane with no proxy (the baseline) and under load: every proxy
  busy, its sink sending `--series-per-proxy` changed label sets every flush interval,
  as Envoy does. Under load the control plane's work does not grow with requests per
  second, only with the number of label sets. Target ≤ 10% idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import psutil
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

import dataplane
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.translate import metrics_log
from amimesh.xds.client import AdsClient
from common import free_port
from xds_convergence import ALL_TYPES, start_controlplane

ALL_OFF = dataplane.TELEMETRY_OFF
TRACING_1PCT = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: all-on, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 1}]
"""


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "telemetry", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


# --- data-plane throughput -----------------------------------------------------------------


def telemetry_spec(name: str, *, logs: bool, tracing: bool, metrics: bool) -> str:
    """A mesh-wide Telemetry turning each of the three on (tracing at 1%) or off."""
    spec = [
        f"  accessLogging: [{{disabled: {str(not logs).lower()}}}]",
        "  tracing: [{randomSamplingPercentage: 1}]"
        if tracing
        else "  tracing: [{disableSpanReporting: true}]",
    ]
    if not metrics:
        spec.append("  metrics: [{providers: [{name: prometheus}], overrides: [{disabled: true}]}]")
    return (
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
        f"metadata: {{name: {name}, namespace: istio-system}}\nspec:\n" + "\n".join(spec) + "\n"
    )


# With --breakdown: each feature alone, over all off.
ALONE = {
    "metrics": telemetry_spec("metrics", logs=False, tracing=False, metrics=True),
    "tracing": telemetry_spec("tracing", logs=False, tracing=True, metrics=False),
    "access_logs": telemetry_spec("logs", logs=True, tracing=False, metrics=False),
}


def throughput(seconds: float, rounds: int, workers: int, breakdown: bool = False) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ami-telemetry-"))
    with dataplane.nginx(workdir) as port, dataplane.paths(workdir, port, access_logs=True) as p:
        mesh = p.mesh_thread
        url, extra = p.mesh_mtls

        def telemetry(text: str) -> None:
            mesh.apply(text, "telemetry-bench")

        modes = [("off", ALL_OFF), ("on", TRACING_1PCT)]
        if breakdown:
            modes += list(ALONE.items())
        rps: dict[str, list[float]] = {mode: [] for mode, _ in modes}
        # CPU microseconds per request, by process kind (with --breakdown).
        cpu: dict[str, dict[str, list[float]]] = {mode: {} for mode, _ in modes}
        dataplane.hey(url, extra, seconds=1, workers=workers, qps_per_worker=None)  # warm
        for _ in range(rounds):
            for mode, text in modes:
                telemetry(text)
                before = cpu_by_kind()
                _, r, errors = dataplane.hey(
                    url, extra, seconds=seconds, workers=workers, qps_per_worker=None
                )
                after = cpu_by_kind()
                for kind, used in after.items():
                    per = 1e6 * (used - before.get(kind, 0.0)) / max(r * seconds, 1.0)
                    cpu[mode].setdefault(kind, []).append(per)
                if errors:
                    raise RuntimeError(f"telemetry {mode}: {errors} failed requests")
                rps[mode].append(r)
        on, off = statistics.median(rps["on"]), statistics.median(rps["off"])
        ingested = mesh.cp.metrics.points
        emit("telemetry_max_rps_ratio", on / off, "ratio", rounds=rounds, seconds=seconds)
        emit("max_rps_telemetry_on", on, "rps")
        emit("max_rps_telemetry_off", off, "rps")
        for mode in ALONE if breakdown else ():
            emit(f"max_rps_ratio_{mode}_alone", statistics.median(rps[mode]) / off, "ratio")
        for mode in cpu if breakdown else ():
            for kind, values in sorted(cpu[mode].items()):
                emit(f"cpu_us_per_request_{kind}", statistics.median(values), "us", mode=mode)
        emit("metric_points_ingested", ingested, "data points")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far: the Envoys, nginx, and this process (the control plane
    runs in a thread of it); hey's own is left out."""
    me = psutil.Process()
    out = {"controlplane": sum(me.cpu_times()[:2])}
    children = {c.pid for c in me.children(recursive=True)}
    for proc in psutil.process_iter(["name"]):
        kind = proc.info["name"]
        if kind == "nginx" or (kind == "envoy" and proc.pid in children):
            try:
                out[kind] = out.get(kind, 0.0) + sum(proc.cpu_times()[:2])
            except psutil.Error:
                continue
    return out


# --- control-plane CPU -----------------------------------------------------------------------


def sim_proxy(i: int) -> Proxy:
    return Proxy(
        id=f"sim-{i}.default",
        workload=f"sim-{i}",
        labels={"app": f"sim-{i % 10}", "version": "v1"},
        outbound_port=15001,
        inbound=(InboundPort(port=9080, listen_port=30000 + i, app_port=8080),),
    )


def export(i: int, series: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """What proxy `i`'s stats sink sends after a busy flush interval: the three HTTP
    histograms for `series` label sets (response codes) of its calls to the next
    simulated service."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    metrics = req.resource_metrics.add().scope_metrics.add().metrics
    for metric in metrics_log.HTTP_METRICS:
        m = metrics.add(name=metrics_log.metric_name(metrics_log.OUTBOUND, metric))
        bounds = (
            metrics_log.DURATION_BUCKETS
            if metric == metrics_log.REQUEST_DURATION
            else metrics_log.BYTES_BUCKETS
        )
        for code in range(series):
            point = m.histogram.data_points.add(count=100, sum=300.0)
            point.explicit_bounds.extend(bounds)
            counts = [0] * (len(bounds) + 1)
            counts[2] = 100
            point.bucket_counts.extend(counts)
            tags = {
                "code": str(200 + code),
                "grpc": "",
                "flags": "-",
                "host": f"127.0.0.1:{30000 + (i + 1) % 100}",
                "cluster": f"outbound|9080||sim-{(i + 1) % 10}.default.svc.cluster.local",
            }
            for k, v in tags.items():
                point.attributes.add(key=k).value.string_value = v
    return req


async def sink(channel: Any, proxy: Proxy, series: list[int], stop: asyncio.Event) -> None:
    """A proxy's stats sink: an export every flush interval while `series[0]` label sets
    change (none while it is 0, as Envoy sends nothing then)."""
    stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = ((metrics_log.NODE_HEADER, proxy.id),)
    i = int(proxy.workload.split("-")[1])
    while not stop.is_set():
        if series[0]:
            await stub.Export(export(i, series[0]), metadata=metadata)
        try:
            await asyncio.wait_for(stop.wait(), metrics_log.FLUSH_INTERVAL_S)
        except TimeoutError:
            pass


def cpu_pct(proc: psutil.Process, seconds: float) -> float:
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / seconds


async def controlplane_cpu(proxies: int, seconds: float, per_proxy: int) -> None:
    """The control plane's CPU with `proxies` connected: none, idle, and each sending
    `per_proxy` label sets every flush interval."""
    workdir = Path(tempfile.mkdtemp(prefix="ami-telemetry-cp-"))
    config = workdir / "config"
    config.mkdir()
    for i in range(10):
        (config / f"sim-{i}.yaml").write_text(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: sim-{i}}}\n"
            f"spec:\n  selector: {{app: sim-{i}}}\n  ports: [{{name: http, port: 9080}}]\n"
        )
    port = free_port()
    cp = start_controlplane(config, port, workdir)
    proc = psutil.Process(cp.pid)
    stop = asyncio.Event()
    rate = [0]
    tasks: list[asyncio.Task[None]] = []
    channels: list[Any] = []
    try:
        await asyncio.sleep(1)
        base = await asyncio.to_thread(cpu_pct, proc, seconds)
        clients = []
        for i in range(proxies):
            if i % 50 == 0:
                channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
            p = sim_proxy(i)
            clients.append(AdsClient(channels[-1], p.id, metadata=p.metadata(), mode="delta"))
            tasks.append(asyncio.create_task(sink(channels[-1], p, rate, stop)))
        await asyncio.gather(*(c.start() for c in clients))
        await asyncio.wait_for(
            asyncio.gather(
                *(c.wait_until(lambda c: all(t in c.acked for t in ALL_TYPES)) for c in clients)
            ),
            120,
        )
        await asyncio.sleep(2)  # settle after the initial sync
        idle = await asyncio.to_thread(cpu_pct, proc, seconds)
        rate[0] = per_proxy
        await asyncio.sleep(metrics_log.FLUSH_INTERVAL_S + 0.5)
        loaded = await asyncio.to_thread(cpu_pct, proc, seconds)
        params = {"proxies": proxies, "seconds": seconds}
        emit("controlplane_cpu_pct_at_100_proxies", idle, "percent_of_core", **params)
        emit("controlplane_cpu_pct_no_proxies", base, "percent_of_core", seconds=seconds)
        emit(
            "controlplane_cpu_pct_under_load",
            loaded,
            "percent_of_core",
            series_per_proxy=per_proxy,
            flush_interval_s=metrics_log.FLUSH_INTERVAL_S,
            **params,
        )
        for c in clients:
            await c.stop()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
        cp.terminate()
        cp.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter runs (under two minutes)")
    ap.add_argument("--proxies", type=int, default=100)
    ap.add_argument(
        "--series-per-proxy", type=int, default=10, help="label sets changed per flush, under load"
    )
    ap.add_argument("--workers", type=int, default=16, help="hey workers at max throughput")
    ap.add_argument("--skip-dataplane", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="also each feature alone")
    ap.add_argument("--skip-controlplane", action="store_true")
    args = ap.parse_args(argv)
    seconds = 4.0 if args.quick else 10.0
    rounds = 2 if args.quick else 4
    if not args.skip_dataplane:
        throughput(seconds, rounds, args.workers, args.breakdown)
    if not args.skip_controlplane:
        asyncio.run(
            controlplane_cpu(args.proxies, 5.0 if args.quick else 15.0, args.series_per_proxy)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
