"""What telemetry costs: data-plane throughput with it on, control-plane CPU ingesting it.

Figures (one JSON line each; `--quick` runs shorter):

- `telemetry_max_rps_ratio`: maximum throughput through two Ami sidecars with mutual
  TLS (client → sidecar → sidecar → nginx, as bench/dataplane.py sets up, with the real
  control plane) with all telemetry on — Istio metrics (access log stream to the
  control plane), tracing at 1% (OpenTelemetry to the control plane) and file access
  logs — over the same path with all of it off (a mesh-wide Telemetry), in the same
  run, alternating rounds. Target ≥ 0.9.
- `controlplane_cpu_pct_at_100_proxies`: the control plane's CPU (percent of one core,
  `ami controlplane` as its own process) with 100 proxies connected (an xDS stream and
  an access log stream each, as Envoy holds them) and idle; beside it the same control
  plane with no proxy (the baseline) and under load (every proxy streaming
  `--entries-per-proxy` entries per second, in one-second batches as Envoy sends them).
  Target ≤ 10% idle.
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
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import struct_pb2

import dataplane
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.resources import parse_documents
from amimesh.translate import metrics_log
from amimesh.xds.client import AdsClient
from common import free_port
from xds_convergence import ALL_TYPES, start_controlplane

ALL_OFF = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: all-off, namespace: istio-system}
spec:
  accessLogging: [{disabled: true}]
  tracing: [{disableSpanReporting: true}]
  metrics: [{providers: [{name: prometheus}], overrides: [{disabled: true}]}]
"""
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


def throughput(seconds: float, rounds: int, workers: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ami-telemetry-"))
    with dataplane.nginx(workdir) as port, dataplane.paths(workdir, port, access_logs=True) as p:
        mesh = p.mesh_thread
        url, extra = p.mesh_mtls

        def telemetry(text: str) -> None:
            result = parse_documents(text, "telemetry-bench")
            assert result.ok, [str(e) for e in result.errors]
            mesh.cp.store.set_source("telemetry-bench", result)
            asyncio.run_coroutine_threadsafe(mesh.cp.xds.wait_synced(timeout=30), mesh.loop).result(
                40
            )
            time.sleep(0.5)  # listeners drain and warm

        rps: dict[str, list[float]] = {"on": [], "off": []}
        dataplane.hey(url, extra, seconds=1, workers=workers, qps_per_worker=None)  # warm
        for _ in range(rounds):
            for mode, text in (("off", ALL_OFF), ("on", TRACING_1PCT)):
                telemetry(text)
                _, r, errors = dataplane.hey(
                    url, extra, seconds=seconds, workers=workers, qps_per_worker=None
                )
                if errors:
                    raise RuntimeError(f"telemetry {mode}: {errors} failed requests")
                rps[mode].append(r)
        on, off = statistics.median(rps["on"]), statistics.median(rps["off"])
        ingested = mesh.cp.metrics.entries
        emit("telemetry_max_rps_ratio", on / off, "ratio", rounds=rounds, seconds=seconds)
        emit("max_rps_telemetry_on", on, "rps")
        emit("max_rps_telemetry_off", off, "rps")
        emit("access_log_entries_ingested", ingested, "entries")


# --- control-plane CPU -----------------------------------------------------------------------


def sim_proxy(i: int) -> Proxy:
    return Proxy(
        id=f"sim-{i}.default",
        workload=f"sim-{i}",
        labels={"app": f"sim-{i % 10}", "version": "v1"},
        outbound_port=15001,
        inbound=(InboundPort(port=9080, listen_port=30000 + i, app_port=8080),),
    )


def entry(i: int) -> accesslog_pb2.HTTPAccessLogEntry:
    e = accesslog_pb2.HTTPAccessLogEntry()
    c = e.common_properties
    c.upstream_cluster = f"outbound|9080||sim-{(i + 1) % 10}.default.svc.cluster.local"
    c.upstream_remote_address.socket_address.address = "127.0.0.1"
    c.upstream_remote_address.socket_address.port_value = 30000 + (i + 1) % 100
    c.time_to_last_downstream_tx_byte.FromMilliseconds(3)
    e.request.authority = f"sim-{(i + 1) % 10}:9080"
    e.request.request_headers_bytes = 300
    e.request.request_headers[metrics_log.PEER_HEADER] = f"sim-{i}.default"
    e.response.response_code.value = 200
    e.response.response_body_bytes = 1200
    return e


async def als_stream(channel: Any, proxy: Proxy, rate: list[int], stop: asyncio.Event) -> None:
    """An access log stream as Envoy holds one: identifier first, then a batch a second
    of `rate[0]` entries (none while it is 0)."""
    stub = als_pb2_grpc.AccessLogServiceStub(channel)
    template = entry(int(proxy.workload.split("-")[1]))
    node = base_pb2.Node(id=proxy.id, metadata=struct_pb2.Struct())
    node.metadata.update(proxy.metadata())

    async def messages() -> Any:
        first = True
        while not stop.is_set():
            n = rate[0]
            if n:
                msg = als_pb2.StreamAccessLogsMessage()
                if first:
                    msg.identifier.node.CopyFrom(node)
                    msg.identifier.log_name = metrics_log.log_name("http", "outbound")
                    first = False
                msg.http_logs.log_entry.extend([template] * n)
                yield msg
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass

    await stub.StreamAccessLogs(messages())


def cpu_pct(proc: psutil.Process, seconds: float) -> float:
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / seconds


async def controlplane_cpu(proxies: int, seconds: float, per_proxy: int) -> None:
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
            tasks.append(asyncio.create_task(als_stream(channels[-1], p, rate, stop)))
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
        await asyncio.sleep(1.5)
        loaded = await asyncio.to_thread(cpu_pct, proc, seconds)
        params = {"proxies": proxies, "seconds": seconds}
        emit("controlplane_cpu_pct_at_100_proxies", idle, "percent_of_core", **params)
        emit("controlplane_cpu_pct_no_proxies", base, "percent_of_core", seconds=seconds)
        emit(
            "controlplane_cpu_pct_under_load",
            loaded,
            "percent_of_core",
            entries_per_s=proxies * per_proxy,
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
    ap.add_argument("--entries-per-proxy", type=int, default=10, help="per second, under load")
    ap.add_argument("--workers", type=int, default=16, help="hey workers at max throughput")
    ap.add_argument("--skip-dataplane", action="store_true")
    ap.add_argument("--skip-controlplane", action="store_true")
    args = ap.parse_args(argv)
    seconds = 4.0 if args.quick else 10.0
    rounds = 2 if args.quick else 4
    if not args.skip_dataplane:
        throughput(seconds, rounds, args.workers)
    if not args.skip_controlplane:
        asyncio.run(
            controlplane_cpu(args.proxies, 5.0 if args.quick else 15.0, args.entries_per_proxy)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
