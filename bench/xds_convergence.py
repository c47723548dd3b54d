"""xDS convergence: how fast a config change reaches every proxy, and at what cost.

The real control plane (`ami controlplane --config DIR`) runs in its own process and
watches a directory with S services, each with a Kubernetes Service, two
WorkloadEntries (v1, v2), a DestinationRule with two subsets and a VirtualService
splitting 80/20. N simulated proxies (ADS clients that subscribe and ACK like Envoy)
connect from this process; with `--envoys K`, K real Envoys connect as well.

Each change rewrites one service's VirtualService file (new weights) and times the
moment every proxy has ACKed a new route table. As the baseline, the same number of
clients receive the same route table from a minimal ADS fan-out in this run (no
translation, no file watch): the floor of the gRPC push on this machine.

With `--sidecar-hosts H`, the bench instead measures what Istio's Sidecar saves: the
same mesh and proxies twice, first with no Sidecar, then with one Sidecar per service
that scopes its proxies to H hosts (their own and the next H-1); each run prints the
initial sync time, the control plane's CPU for it and its RSS, the config bytes a
proxy holds (`config_bytes_per_proxy`) and the control plane's CPU per change, with
`sidecar_hosts` 0 or H; then the ratios of the scoped run to the unscoped one.

Prints one JSON line per figure: {"bench": "xds_convergence", "figure", "value", "unit", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from amimesh.agent.bootstrap import bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE
from amimesh.xds.client import AdsClient
from common import free_port, pct

sys.path.insert(0, str(Path(__file__).parent))
import xds_baseline  # noqa: E402

ALL_TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
CLIENTS_PER_CHANNEL = 50


def service_yaml(i: int, weight_v1: int = 80) -> str:
    name = f"svc-{i}"
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-v1}}
spec: {{address: 127.0.0.1, ports: {{http: {20000 + 2 * i}}}, labels: {{app: {name}, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-v2}}
spec: {{address: 127.0.0.1, ports: {{http: {20001 + 2 * i}}}, labels: {{app: {name}, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  http:
    - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
      route: [{{destination: {{host: {name}, subset: v2}}}}]
    - route:
        - {{destination: {{host: {name}, subset: v1}}, weight: {weight_v1}}}
        - {{destination: {{host: {name}, subset: v2}}, weight: {100 - weight_v1}}}
      timeout: 5s
"""


def write_config(root: Path, services: int, sidecar_hosts: int = 0) -> None:
    for i in range(services):
        text = service_yaml(i)
        if sidecar_hosts:
            text += "---\n" + sidecar_yaml(i, services, sidecar_hosts)
        (root / f"svc-{i}.yaml").write_text(text)


def sidecar_yaml(i: int, services: int, hosts: int) -> str:
    """A Sidecar for the proxies of svc-i: they import svc-i and the next hosts-1."""
    names = [f"./svc-{(i + k) % services}.default.svc.cluster.local" for k in range(hosts)]
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: svc-{i}}}
spec:
  workloadSelector: {{labels: {{app: svc-{i}}}}}
  egress: [{{hosts: {json.dumps(sorted(set(names)))}}}]
"""


def start_controlplane(config: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    log = open(workdir / "controlplane.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "amimesh.cli.main",
            "controlplane",
            "--config",
            str(config),
            "--xds-port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "xDS on" not in line:
        proc.kill()
        raise RuntimeError(f"control plane did not start: {line!r}; see {workdir}")
    return proc


def proxy_for(i: int, services: int) -> Proxy:
    svc = f"svc-{i % services}"
    return Proxy(
        id=f"sidecar-{i}",
        workload=f"{svc}-v1",
        labels={"app": svc, "version": "v1"},
        outbound_port=15001,
        inbound=(InboundPort(port=9080, listen_port=30000 + i % 30000, app_port=8080),),
    )


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import grpc  # type: ignore[import-untyped]

    workdir = Path(tempfile.mkdtemp(prefix="ami-bench-"))
    config = workdir / "config"
    config.mkdir()
    write_config(config, args.services)
    port = free_port()
    cp = start_controlplane(config, port, workdir)
    cp_ps = psutil.Process(cp.pid)
    envoys: list[EnvoyProcess] = []
    channels: list[Any] = []
    clients: list[AdsClient] = []
    params = {"proxies": args.proxies, "services": args.services, "mode": args.mode}
    figures: list[dict[str, Any]] = []

    def figure(name: str, value: float, unit: str, **extra: Any) -> None:
        figures.append(
            {"bench": "xds_convergence", "figure": name, "value": round(value, 3), "unit": unit}
            | params
            | extra
        )
        print(json.dumps(figures[-1]), flush=True)

    try:
        # --- initial sync ------------------------------------------------------------
        me = psutil.Process()
        cpu_cp0, cpu_me0 = cpu_seconds(cp_ps), cpu_seconds(me)
        t0 = time.perf_counter()
        for i in range(args.proxies):
            if i % CLIENTS_PER_CHANNEL == 0:
                channels.append(
                    grpc.aio.insecure_channel(
                        f"127.0.0.1:{port}",
                        options=[("grpc.max_receive_message_length", -1)],
                    )
                )
            p = proxy_for(i, args.services)
            clients.append(AdsClient(channels[-1], p.id, metadata=p.metadata(), mode=args.mode))
        await asyncio.gather(*(c.start() for c in clients))
        await asyncio.wait_for(
            asyncio.gather(
                *(c.wait_until(lambda c: all(t in c.acked for t in ALL_TYPES)) for c in clients)
            ),
            args.timeout,
        )
        for i in range(args.envoys):
            envoys.append(start_envoy(workdir, port, i, args))
        for e in envoys:
            e.wait_ready(args.timeout)
        figure("initial_sync_s", time.perf_counter() - t0, "s", envoys=args.envoys)
        # Where the initial sync's CPU went: the control plane, and the simulated
        # proxies (decoding what they are sent) in this process.
        figure("initial_sync_controlplane_cpu_s", cpu_seconds(cp_ps) - cpu_cp0, "s")
        figure("initial_sync_clients_cpu_s", cpu_seconds(me) - cpu_me0, "s")
        figure("controlplane_rss_mb", cp_ps.memory_info().rss / 2**20, "MB")

        # --- changes -----------------------------------------------------------------
        latencies: list[float] = []
        cpu: list[float] = []
        for n in range(args.changes):
            svc = n % args.services
            before = [c.acked.get(ROUTE) for c in clients]
            cpu0 = cpu_seconds(cp_ps)
            t_change = time.perf_counter()
            (config / f"svc-{svc}.yaml").write_text(service_yaml(svc, 79 - n % 50))
            done = await asyncio.wait_for(
                asyncio.gather(*(acked(c, old) for c, old in zip(clients, before, strict=True))),
                args.timeout,
            )
            latencies.append((max(done, default=t_change) - t_change) * 1000)
            # Let the control plane settle (ACK handling) before reading its CPU time.
            await asyncio.sleep(args.settle)
            cpu.append(cpu_seconds(cp_ps) - cpu0)
        figure("change_to_all_ack_p50_ms", statistics.median(latencies), "ms", changes=args.changes)
        figure("change_to_all_ack_p99_ms", pct(latencies, 0.99), "ms", changes=args.changes)
        figure("controlplane_cpu_s_per_change", statistics.median(cpu), "s")
        figure("controlplane_rss_mb_after_changes", cp_ps.memory_info().rss / 2**20, "MB")

        table = next(iter(clients[0].resources[ROUTE].values()))
        held = {t: dict(clients[0].resources[t]) for t in ALL_TYPES}
        for c in clients:
            await c.stop()
        clients.clear()

        # --- real Envoys alone: change until every Envoy has applied it ---------------
        if envoys:
            pollers = [AdminStats(e.admin_port) for e in envoys]
            envoy_latencies: list[float] = []
            for n in range(args.changes):
                svc = n % args.services
                before = [p.rds_updates() for p in pollers]
                t_change = time.perf_counter()
                (config / f"svc-{svc}.yaml").write_text(service_yaml(svc, 29 + n % 50))
                t_done = await asyncio.to_thread(wait_envoys, pollers, before, args.timeout)
                envoy_latencies.append((t_done - t_change) * 1000)
                await asyncio.sleep(args.settle)
            for p in pollers:
                p.close()
            figure(
                "envoy_change_to_all_applied_p50_ms",
                statistics.median(envoy_latencies),
                "ms",
                envoys=args.envoys,
            )
            figure(
                "envoy_change_to_all_applied_p99_ms",
                pct(envoy_latencies, 0.99),
                "ms",
                envoys=args.envoys,
            )

        # --- baseline: the bare gRPC fan-out of the same route table ------------------
        base = await xds_baseline.fan_out(
            table, args.proxies, args.mode, rounds=args.baseline_rounds
        )
        figure("baseline_initial_sync_s", await xds_baseline.initial_sync(held, args.proxies), "s")
        figure("baseline_fanout_p50_ms", statistics.median(base), "ms")
        figure("baseline_fanout_p99_ms", pct(base, 0.99), "ms")
        figure(
            "change_to_all_ack_p50_over_baseline",
            statistics.median(latencies) / max(statistics.median(base), 1e-6),
            "ratio",
        )
        return figures
    finally:
        for c in clients:
            await c.stop()
        for ch in channels:
            await ch.close()
        for e in envoys:
            e.stop()
        cp.terminate()
        try:
            cp.wait(10)
        except subprocess.TimeoutExpired:
            cp.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def start_envoy(workdir: Path, xds_port: int, i: int, args: argparse.Namespace) -> EnvoyProcess:
    p = Proxy(
        id=f"envoy-{i}",
        workload=f"svc-{i % args.services}-v1",
        labels={"app": f"svc-{i % args.services}", "version": "v1"},
        outbound_port=free_port(),
    )
    admin = free_port()
    cfg = bootstrap(
        p, xds_host="127.0.0.1", xds_port=xds_port, admin_port=admin, delta=args.mode == "delta"
    )
    path = workdir / f"{p.id}.json"
    path.write_text(json.dumps(cfg))
    e = EnvoyProcess(path, admin, workdir / f"{p.id}.log", concurrency=1)
    e.start()
    return e


async def acked(c: AdsClient, old: str | None) -> float:
    """When `c` has ACKed a route table other than `old`."""
    await c.wait_until(lambda c: c.acked.get(ROUTE) != old)
    return time.perf_counter()


class AdminStats:
    """Reads one Envoy's RDS update counter over a kept-alive admin connection."""

    PATH = "/stats?filter=^http\\.outbound\\.rds\\.outbound\\.update_success$"

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def rds_updates(self) -> int:
        self._conn.request("GET", self.PATH)
        text = self._conn.getresponse().read().decode()
        return int(text.split(":")[1]) if ":" in text else 0

    def close(self) -> None:
        self._conn.close()


def wait_envoys(pollers: list[AdminStats], before: list[int], timeout: float) -> float:
    """When every Envoy has applied one more RDS update than `before` counted.

    One thread polls them in turn, sleeping 5 ms between rounds: enough resolution
    for figures in the hundreds of milliseconds, without busy-polling the machine.
    """
    deadline = time.perf_counter() + timeout
    pending = set(range(len(pollers)))
    while True:
        for i in list(pending):
            if pollers[i].rds_updates() > before[i]:
                pending.discard(i)
        if not pending:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(pending)} Envoys did not apply the change")
        time.sleep(0.005)


async def scoped_cost(args: argparse.Namespace, hosts: int) -> dict[str, float]:
    """Initial sync and change cost of the mesh with every proxy scoped to `hosts` hosts
    by a Sidecar (0: no Sidecar), printed and returned by figure name."""
    import grpc

    workdir = Path(tempfile.mkdtemp(prefix="ami-bench-"))
    config = workdir / "config"
    config.mkdir()
    write_config(config, args.services, hosts)
    port = free_port()
    cp = start_controlplane(config, port, workdir)
    cp_ps = psutil.Process(cp.pid)
    channels: list[Any] = []
    clients: list[AdsClient] = []
    out: dict[str, float] = {}
    params = {
        "proxies": args.proxies,
        "services": args.services,
        "mode": args.mode,
        "sidecar_hosts": hosts,
    }

    def figure(name: str, value: float, unit: str) -> None:
        out[name] = value
        line = {"bench": "xds_convergence", "figure": name, "value": round(value, 3), "unit": unit}
        print(json.dumps(line | params), flush=True)

    try:
        cpu0 = cpu_seconds(cp_ps)
        t0 = time.perf_counter()
        for i in range(args.proxies):
            if i % CLIENTS_PER_CHANNEL == 0:
                channels.append(
                    grpc.aio.insecure_channel(
                        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1)]
                    )
                )
            p = proxy_for(i, args.services)
            clients.append(AdsClient(channels[-1], p.id, metadata=p.metadata(), mode=args.mode))
        await asyncio.gather(*(c.start() for c in clients))
        await asyncio.wait_for(
            asyncio.gather(
                *(c.wait_until(lambda c: all(t in c.acked for t in ALL_TYPES)) for c in clients)
            ),
            args.timeout,
        )
        figure("initial_sync_s", time.perf_counter() - t0, "s")
        figure("initial_sync_controlplane_cpu_s", cpu_seconds(cp_ps) - cpu0, "s")
        figure("controlplane_rss_mb", cp_ps.memory_info().rss / 2**20, "MB")
        held = [
            sum(len(r.value) for t in ALL_TYPES for r in c.resources.get(t, {}).values())
            for c in clients
        ]
        figure("config_bytes_per_proxy", statistics.mean(held), "bytes")
        figure(
            "clusters_per_proxy",
            statistics.mean(len(c.resources.get(CLUSTER, {})) for c in clients),
            "clusters",
        )
        cpu: list[float] = []
        for n in range(args.changes):
            svc = n % args.services
            before = [c.acked.get(ROUTE) for c in clients]
            c0 = cpu_seconds(cp_ps)
            text = service_yaml(svc, 79 - n % 50)
            if hosts:
                text += "---\n" + sidecar_yaml(svc, args.services, hosts)
            (config / f"svc-{svc}.yaml").write_text(text)
            # Only the proxies that import svc get a new route table.
            importers = [
                (c, old)
                for i, (c, old) in enumerate(zip(clients, before, strict=True))
                if not hosts or (svc - i % args.services) % args.services < hosts
            ]
            await asyncio.wait_for(
                asyncio.gather(*(acked(c, old) for c, old in importers)), args.timeout
            )
            await asyncio.sleep(args.settle)
            cpu.append(cpu_seconds(cp_ps) - c0)
        figure("controlplane_cpu_s_per_change", statistics.median(cpu), "s")
        figure("controlplane_rss_mb_after_changes", cp_ps.memory_info().rss / 2**20, "MB")
        return out
    finally:
        for c in clients:
            await c.stop()
        for ch in channels:
            await ch.close()
        cp.terminate()
        try:
            cp.wait(10)
        except subprocess.TimeoutExpired:
            cp.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def sidecar_savings(args: argparse.Namespace) -> None:
    """The mesh without Sidecars, then scoped to `args.sidecar_hosts`, and the ratios."""
    hosts = min(args.sidecar_hosts, args.services)
    full = await scoped_cost(args, 0)
    scoped = await scoped_cost(args, hosts)
    params = {"proxies": args.proxies, "services": args.services, "sidecar_hosts": hosts}
    for name in (
        "config_bytes_per_proxy",
        "initial_sync_s",
        "initial_sync_controlplane_cpu_s",
        "controlplane_rss_mb",
        "controlplane_cpu_s_per_change",
    ):
        ratio = scoped[name] / max(full[name], 1e-9)
        line = {"bench": "xds_convergence", "figure": f"sidecar_{name}_ratio"}
        print(json.dumps(line | {"value": round(ratio, 3), "unit": "ratio"} | params), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--proxies", type=int, default=1000)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--mode", choices=["sotw", "delta"], default="delta")
    p.add_argument("--changes", type=int, default=30)
    p.add_argument(
        "--envoys", type=int, default=0, help="real Envoys besides the simulated proxies"
    )
    p.add_argument("--quick", action="store_true", help="same figures from a shorter run")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--settle", type=float, default=0.2)
    p.add_argument("--baseline-rounds", type=int, default=20)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument(
        "--sidecar-hosts",
        type=int,
        default=0,
        help="compare the mesh without Sidecars and with every proxy scoped to N hosts",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.proxies = min(args.proxies, 200)
        args.services = min(args.services, 50)
        args.changes = min(args.changes, 20)
        args.baseline_rounds = min(args.baseline_rounds, 10)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if args.sidecar_hosts > 0:
        asyncio.run(sidecar_savings(args))
        return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
