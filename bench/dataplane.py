"""Data-plane cost of the mesh: client → sidecar → sidecar → nginx, against baselines.

Paths to the same nginx, measured in one run with `hey`:
- direct: the client talks to nginx;
- minimal: two hand-written static Envoys (an HTTP proxy listener that forwards to
  the second Envoy, which forwards to nginx) — what any Envoy pair costs;
- minimal_mtls: the same pair with mutual TLS between the two Envoys (certificate
  files), what any Envoy mTLS pair costs;
- mesh: two Ami sidecars configured by the real control plane over xDS (the client
  uses the outbound listener as its HTTP proxy, as an app does through HTTP_PROXY),
  plain text between them (a DestinationRule with `tls: DISABLE`);
- mesh_mtls: the same sidecars with Ami's automatic mutual TLS (certificates by SDS).
Latency at a fixed rate (per-request times from `hey -o csv`), and maximum throughput.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.agent import sds
from amimesh.agent.bootstrap import bootstrap, write_bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity import csr
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.spiffe import workload_id
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from common import free_port, pct

TYPES = "type.googleapis.com/envoy.extensions.filters."
HCM_TYPE = TYPES + "network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = TYPES + "http.router.v3.Router"
TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# Two Services select the same server instance: `server` with automatic mutual TLS,
# `server-plain` with TLS disabled by its DestinationRule (PERMISSIVE accepts both).
MESH_CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: server-plain}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server-plain}
spec:
  host: server-plain
  trafficPolicy: {tls: {mode: DISABLE}}
"""


def require(tool: str) -> str:
    path = shutil.which(tool) or (
        f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None
    )
    if path is None:
        raise SystemExit(
            f"{tool} is needed: apt-get install {'nginx-light' if tool == 'nginx' else tool}"
        )
    return path


TELEMETRY_OFF = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: all-off, namespace: istio-system}
spec:
  accessLogging: [{disabled: true}]
  tracing: [{disableSpanReporting: true}]
  metrics: [{providers: [{name: prometheus}], overrides: [{disabled: true}]}]
"""


@contextmanager
def nginx(workdir: Path) -> Iterator[int]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello from nginx\\n"; }}
  }}
}}
"""
    )
    proc = subprocess.Popen([require("nginx"), "-c", str(conf), "-g", "daemon off;"])
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def wait_port(port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")


def _tls_files(workdir: Path, ca: CertificateAuthority, name: str) -> dict[str, str]:
    """A key and certificate for a minimal Envoy, as files (a baseline's own test keys)."""
    issued, key = ca.issue(
        workload_id("default", name), ttl=datetime.timedelta(hours=1), now=_now()
    )
    paths = {}
    for part, text in (
        ("cert", issued.certificate_chain),
        ("key", csr.key_pem(key)),
        ("ca", issued.trust_bundle),
    ):
        path = workdir / f"{name}.{part}.pem"
        path.write_text(text)
        path.chmod(0o600)
        paths[part] = str(path)
    return paths


def _tls_context(files: dict[str, str], *, server: bool) -> dict[str, object]:
    common = {
        "tls_certificates": [
            {
                "certificate_chain": {"filename": files["cert"]},
                "private_key": {"filename": files["key"]},
            }
        ],
        "validation_context": {"trusted_ca": {"filename": files["ca"]}},
    }
    if server:
        context: dict[str, object] = {
            "@type": TLS_TYPES + "DownstreamTlsContext",
            "common_tls_context": common,
            "require_client_certificate": True,
        }
    else:
        context = {"@type": TLS_TYPES + "UpstreamTlsContext", "common_tls_context": common}
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _static_envoy(
    workdir: Path,
    name: str,
    listen: int,
    target: int,
    proxy_mode: bool,
    *,
    downstream_tls: dict[str, str] | None = None,
    upstream_tls: dict[str, str] | None = None,
) -> EnvoyProcess:
    """A minimal hand-written Envoy: one listener, one route, one static cluster;
    optionally mutual TLS on its listener or toward its cluster."""
    admin = free_port()
    http_options = {"allow_absolute_url": True} if proxy_mode else {}
    cfg: dict[str, Any] = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "l",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM_TYPE,
                                        "stat_prefix": "l",
                                        "http_protocol_options": http_options,
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "route": {
                                                                "cluster": "c",
                                                                "timeout": "0s",
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {"@type": ROUTER_TYPE},
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "c",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "c",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": target,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }
    resources = cfg["static_resources"]
    if downstream_tls is not None:
        resources["listeners"][0]["filter_chains"][0]["transport_socket"] = _tls_context(
            downstream_tls, server=True
        )
    if upstream_tls is not None:
        resources["clusters"][0]["transport_socket"] = _tls_context(upstream_tls, server=False)
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return EnvoyProcess(path, admin, workdir / f"{name}.log")


Path_ = tuple[str, list[str]]  # (url, extra hey args)


@dataclass
class Paths:
    direct: Path_
    minimal: Path_
    minimal_mtls: Path_
    mesh: Path_
    mesh_mtls: Path_
    envoys: list[EnvoyProcess]
    mesh_thread: _MeshThread

    def all(self) -> list[tuple[str, Path_]]:
        return [
            ("direct", self.direct),
            ("minimal", self.minimal),
            ("minimal_mtls", self.minimal_mtls),
            ("mesh", self.mesh),
            ("mesh_mtls", self.mesh_mtls),
        ]


class _MeshThread:
    """The real control plane on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cp = ControlPlane(ControlPlaneConfig(xds_port=0))
        asyncio.run_coroutine_threadsafe(self.cp.start(), self.loop).result(30)

        self.sds: list[sds.SdsServer] = []

    def serve_secrets(self, ca: CertificateAuthority, proxy: Proxy, socket_file: Path) -> None:
        """An SDS server for one sidecar, with a certificate for its identity."""
        issued, key = ca.issue(
            workload_id(proxy.namespace, proxy.service_account),
            ttl=datetime.timedelta(hours=1),
            now=_now(),
        )
        server = sds.SdsServer(socket_file, name=f"sds {proxy.id}")
        asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(30)
        secrets = sds.Secrets(issued.certificate_chain, csr.key_pem(key), issued.trust_bundle)
        self.loop.call_soon_threadsafe(server.update, secrets)
        self.sds.append(server)

    def apply(self, text: str, source: str) -> None:
        """Apply YAML `text` as `source` and wait until every proxy has it."""
        result = parse_documents(text, source)
        assert result.ok, [str(e) for e in result.errors]
        self.cp.store.set_source(source, result)
        asyncio.run_coroutine_threadsafe(self.cp.xds.wait_synced(timeout=30), self.loop).result(40)
        time.sleep(0.5)  # listeners drain and warm

    def stop(self) -> None:
        for server in self.sds:
            asyncio.run_coroutine_threadsafe(server.stop(), self.loop).result(30)
        asyncio.run_coroutine_threadsafe(self.cp.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextmanager
def paths(workdir: Path, nginx_port: int, access_logs: bool = False) -> Iterator[Paths]:
    """The paths to nginx; with `access_logs`, the sidecars write file access logs (in
    `workdir`) as `ami up` sets them up."""
    envoys: list[EnvoyProcess] = []
    mesh = _MeshThread()
    try:
        ca = CertificateAuthority.self_signed(now=_now())
        # Minimal pairs: proxy-mode Envoy → Envoy → nginx, plain and with mutual TLS.
        m2_port, m1_port = free_port(), free_port()
        envoys.append(_static_envoy(workdir, "minimal-server", m2_port, nginx_port, False))
        envoys.append(_static_envoy(workdir, "minimal-client", m1_port, m2_port, True))
        t2_port, t1_port = free_port(), free_port()
        envoys.append(
            _static_envoy(
                workdir,
                "minimal-mtls-server",
                t2_port,
                nginx_port,
                False,
                downstream_tls=_tls_files(workdir, ca, "minimal-mtls-server"),
            )
        )
        envoys.append(
            _static_envoy(
                workdir,
                "minimal-mtls-client",
                t1_port,
                t2_port,
                True,
                upstream_tls=_tls_files(workdir, ca, "minimal-mtls-client"),
            )
        )
        # Mesh: client sidecar (outbound) → server sidecar (inbound) → nginx.
        result = parse_documents(MESH_CONFIG, "bench")
        assert not mesh.cp.store.set_source("bench", result)
        inbound = free_port()
        server = Proxy(
            id="server-0.default",
            workload="server",
            labels={"app": "server"},
            inbound=(InboundPort(port=8080, listen_port=inbound, app_port=nginx_port),),
            access_log=str(workdir / "server.access.log") if access_logs else "",
        )
        client = Proxy(
            id="client-0.default",
            workload="client",
            labels={"app": "client"},
            outbound_port=free_port(),
            access_log=str(workdir / "client.access.log") if access_logs else "",
        )
        for p in (server, client):
            admin = free_port()
            socket_file = workdir / f"{p.id}.sds.sock"
            mesh.serve_secrets(ca, p, socket_file)
            path = workdir / f"{p.id}.json"
            write_bootstrap(
                path,
                bootstrap(
                    p,
                    xds_host="127.0.0.1",
                    xds_port=mesh.cp.xds_port,
                    admin_port=admin,
                    delta=True,
                    sds_socket=str(socket_file),
                ),
            )
            envoys.append(EnvoyProcess(path, admin, workdir / f"{p.id}.log"))
        mesh.cp.store.register_instance(
            Instance(
                id=server.id, workload="server", labels={"app": "server"}, ports={8080: inbound}
            )
        )
        for e in envoys:
            e.start()
        for e in envoys:
            e.wait_ready()
        asyncio.run_coroutine_threadsafe(mesh.cp.xds.wait_synced(timeout=30), mesh.loop).result(40)
        outbound = ["-x", f"http://127.0.0.1:{client.outbound_port}"]
        yield Paths(
            direct=(f"http://127.0.0.1:{nginx_port}/", []),
            minimal=("http://server:8080/", ["-x", f"http://127.0.0.1:{m1_port}"]),
            minimal_mtls=("http://server:8080/", ["-x", f"http://127.0.0.1:{t1_port}"]),
            mesh=("http://server-plain:8080/", outbound),
            mesh_mtls=("http://server:8080/", outbound),
            envoys=envoys,
            mesh_thread=mesh,
        )
    finally:
        for e in envoys:
            e.stop()
        mesh.stop()


def hey(
    url: str, extra: list[str], *, seconds: float, workers: int, qps_per_worker: float | None
) -> tuple[list[float], float, int]:
    """(latencies in ms of successful requests, requests per second, errors)."""
    args = [
        require("hey"),
        "-z",
        f"{seconds}s",
        "-c",
        str(workers),
        "-o",
        "csv",
        "-disable-compression",
    ]
    if qps_per_worker:
        args += ["-q", str(qps_per_worker)]
    out = subprocess.run([*args, *extra, url], capture_output=True, text=True, timeout=seconds + 60)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    ok = [float(r["response-time"]) * 1000 for r in rows if r.get("status-code") == "200"]
    errors = len(rows) - len(ok)
    offsets = [float(r["offset"]) for r in rows] or [0.0]
    span = max(max(offsets), 1e-9)
    return ok, len(rows) / span, errors


def measure(*, seconds: float, rate: int, max_workers: int) -> dict[str, float]:
    """The data-plane figures; keys are figure names."""
    workdir = Path(tempfile.mkdtemp(prefix="ami-dataplane-"))
    figures: dict[str, float] = {}
    try:
        with nginx(workdir) as port, paths(workdir, port) as p:
            workers = 10
            lat: dict[str, list[float]] = {}
            rps: dict[str, float] = {}
            for name, (url, extra) in p.all():
                hey(url, extra, seconds=1, workers=workers, qps_per_worker=rate / workers)  # warm
                ok, _, errors = hey(
                    url, extra, seconds=seconds, workers=workers, qps_per_worker=rate / workers
                )
                if errors:
                    raise RuntimeError(f"{name}: {errors} failed requests at {rate} rps")
                lat[name] = ok
            for name, (url, extra) in p.all():
                _, rps[name], _ = hey(
                    url, extra, seconds=seconds, workers=max_workers, qps_per_worker=None
                )

            def added(path: str, base: str, q: float) -> float:
                if q == 0.5:
                    return statistics.median(lat[path]) - statistics.median(lat[base])
                return pct(lat[path], q) - pct(lat[base], q)

            for prefix, path, bases in (
                ("dataplane", "mesh", (("", "direct"), ("_vs_minimal", "minimal"))),
                (
                    "mtls",
                    "mesh_mtls",
                    (
                        ("", "direct"),
                        ("_vs_plaintext_mesh", "mesh"),
                        ("_vs_minimal_mtls", "minimal_mtls"),
                    ),
                ),
                ("minimal_mtls", "minimal_mtls", (("", "direct"),)),
            ):
                for suffix, base in bases:
                    figures[f"{prefix}_p50_added_ms{suffix}"] = added(path, base, 0.5)
                    figures[f"{prefix}_p99_added_ms{suffix}"] = added(path, base, 0.99)
            figures["direct_p50_ms"] = statistics.median(lat["direct"])
            figures["direct_p99_ms"] = pct(lat["direct"], 0.99)
            figures["dataplane_max_rps_ratio"] = rps["mesh"] / rps["minimal"]
            figures["dataplane_max_rps_ratio_vs_direct"] = rps["mesh"] / rps["direct"]
            figures["mtls_max_rps_ratio"] = rps["mesh_mtls"] / rps["minimal_mtls"]
            figures["mtls_max_rps_ratio_vs_plaintext_mesh"] = rps["mesh_mtls"] / rps["mesh"]
            figures["direct_max_rps"] = rps["direct"]
            # What the default telemetry costs: the same, with a mesh-wide Telemetry
            # turning metrics, tracing and access logs off (the minimal pair has none).
            p.mesh_thread.apply(TELEMETRY_OFF, "bench-telemetry-off")
            off: dict[str, list[float]] = {"mesh_mtls": [], "minimal_mtls": []}
            for _ in range(2):
                for name in off:
                    url, extra = dict(p.all())[name]
                    _, r, _ = hey(
                        url, extra, seconds=seconds, workers=max_workers, qps_per_worker=None
                    )
                    off[name].append(r)
            figures["mtls_max_rps_ratio_telemetry_off"] = statistics.median(
                off["mesh_mtls"]
            ) / statistics.median(off["minimal_mtls"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures
