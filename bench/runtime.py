"""The local runtime: time to a ready shop, sidecar memory, and data-plane cost.

Figures (one JSON line each):
- `up_to_ready_s`: `ami up examples/shop` until every instance is ready (the node agent's
  status.json, as `ami up` reads it) and the shop's page answers through the gateway.
- `sidecar_private_mb`, `sidecar_rss_mb`: mean Private_Dirty and RSS of the shop's
  Envoys at idle (from /proc/PID/smaps_rollup).
- `dataplane_p50_added_ms`, `dataplane_p99_added_ms` at a fixed rate (1000 rps), and
  `dataplane_max_rps_ratio`: client → sidecar → sidecar → nginx against the same
  client → nginx direct, and against a minimal hand-written Envoy pair (`_vs_minimal`).
  See `dataplane.py`.
- `mtls_p50_added_ms`, `mtls_p99_added_ms` (against direct, `_vs_plaintext_mesh` and
  `_vs_minimal_mtls`) and `mtls_max_rps_ratio` (against a minimal hand-written Envoy
  mTLS pair); beside them what that minimal pair itself adds
  (`minimal_mtls_p50_added_ms`, `minimal_mtls_p99_added_ms`) and the ratio with the
  mesh's default telemetry turned off (`mtls_max_rps_ratio_telemetry_off`).
- `cert_issue_ms_p50`, `cert_issue_ms_p99`: CSR to certificate in hand through the
  control plane's API (`identity.py`, which this runs in its quick form).
- The process model (`process_model.py`): `platform_private_mb_per_instance` at 1, 11
  and 50 instances, `instance_ready_added_ms_p50`/`_p99` (a scale-up against the same
  app started by hand), `controlplane_restart_failed_requests`,
  `controlplane_restart_resync_s`, `node_agent_restart_failed_requests`.
- Beside `up_to_ready_s`, `shop_apps_alone_s`: the sum of the shop's apps' own start
  times (each started by hand, to its first good answer).
Needs `hey` and `nginx` (Debian: hey, nginx-light); `make bench-runtime` installs them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import dataplane  # noqa: E402
import process_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "runtime", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


def smaps(pid: int) -> tuple[float, float]:
    """(Private_Dirty, Rss) of a process in MB, from smaps_rollup."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = float(value) / 1024
    return fields["Private_Dirty"], fields["Rss"]


def envoys_of(root_pid: int) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(root_pid).children(recursive=True)
        if p.name() == "envoy" or (p.cmdline()[:1] and p.cmdline()[0].endswith("/envoy"))
    ]


def up(state: Path, timeout: float) -> tuple[subprocess.Popen[bytes], float]:
    """Start `ami up examples/shop`; returns the process and the seconds to ready."""
    env = os.environ | {"AMI_STATE_DIR": str(state)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "amimesh.cli.main", "up", str(SHOP)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = t0 + timeout
    info_file: Path | None = None
    while time.perf_counter() < deadline:
        found = list(state.glob("*/mesh.json"))
        if found:
            info_file = found[0]
            break
        if proc.poll() is not None:
            raise RuntimeError(f"ami up exited with {proc.returncode}")
        time.sleep(0.02)
    if info_file is None:
        raise TimeoutError("ami up wrote no mesh.json")
    # Readiness as the node agent writes it for `ami up` (status.json), so that timing
    # it puts no load on the control plane; then the page through the gateway.
    status_file = info_file.parent / "status.json"
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.perf_counter() < deadline:
            try:
                info = json.loads(info_file.read_text())
                instances = json.loads(status_file.read_text()).get("instances", [])
                ready = instances and all(
                    i.get("ready") or i.get("state") == "completed" for i in instances
                )
                urls = info.get("gateway_urls") or []
                if ready and urls:
                    page = http.get(urls[0].rstrip("/") + "/productpage")
                    if page.status_code == 200 and "reviews" in page.text.lower():
                        return proc, time.perf_counter() - t0
            except (OSError, httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)
    raise TimeoutError("the shop did not become ready")


def down(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def process_figures(work: Path, *, quick: bool) -> None:
    counts = (1, 11) if quick else (1, 11, 50)
    for n, figures in process_model.memory(work, counts).items():
        for name, value in figures.items():
            if name != "instances":
                emit(name, value, "MB", instances=figures["instances"], replicas=n)
    for name, value in process_model.scale_ups(work, 5 if quick else 20).items():
        emit(name, value, "ms")
    for name, value in process_model.restarts(work).items():
        unit = "s" if name.endswith("_s") else "requests"
        emit(name, value, unit)


def shop_apps_alone_s() -> float:
    """Each of the shop's apps started by hand, one after the other, with the command,
    directory and environment the node agent would give it (`plan`, `app_env`), timed
    to its readiness probe's first pass; the sum."""
    import asyncio

    from amimesh.agent import probe
    from amimesh.agent.env import app_env
    from amimesh.model.snapshot import build_snapshot
    from amimesh.resources import Workload
    from amimesh.resources.files import load_path
    from amimesh.runtime import plan
    from amimesh.runtime.ports import PortAllocator
    from amimesh.runtime.state import StateDir

    resources = load_path(SHOP / "mesh").resources
    services = build_snapshot(resources).services.values()
    ports = PortAllocator()
    total = 0.0
    with tempfile.TemporaryDirectory(prefix="ami-bench-apps-") as tmp:
        for w in [r for r in resources if isinstance(r, Workload)]:
            spec = plan.workload_instance(
                w,
                0,
                services=services,
                allocate=ports.allocate,
                state=StateDir(Path(tmp)),
                xds_port=1,
                config_dir=SHOP,
            )
            app = spec.agent.app
            assert app is not None
            env = app_env(spec.agent, os.environ, str(Path(sys.executable).parent))
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                list(app.command),
                cwd=app.cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                check = app.probe
                assert check is not None
                process_model.wait(lambda c=check: asyncio.run(probe.failure(c)) == "", 30)
                total += time.perf_counter() - t0
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return total


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="local runtime benchmark")
    p.add_argument("--quick", action="store_true", help="same figures from a shorter run")
    p.add_argument("--rate", type=int, default=1000, help="fixed request rate for latency")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each load run")
    p.add_argument("--ups", type=int, default=3, help="how many times to time `ami up`")
    p.add_argument("--skip-up", action="store_true", help="only the data-plane figures")
    p.add_argument(
        "--process-model",
        action="store_true",
        help="only `ami up` and the process model's figures (no data-plane load runs)",
    )
    args = p.parse_args(argv)
    # As `make bench` does: the sources byte-compiled, as an installed Ami's are.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src"), str(ROOT / "examples")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if args.quick:
        args.seconds, args.ups = 5.0, 1
    if not args.skip_up:
        times: list[float] = []
        private: list[float] = []
        rss: list[float] = []
        for _ in range(args.ups):
            with tempfile.TemporaryDirectory(prefix="ami-bench-state-") as state:
                proc, seconds = up(Path(state), timeout=120)
                try:
                    times.append(seconds)
                    time.sleep(2)  # idle
                    for e in envoys_of(proc.pid):
                        d, r = smaps(e.pid)
                        private.append(d)
                        rss.append(r)
                finally:
                    down(proc)
        times.sort()
        emit("up_to_ready_s", times[len(times) // 2], "s", runs=len(times))
        emit("shop_apps_alone_s", shop_apps_alone_s(), "s")
        emit("sidecar_private_mb", sum(private) / len(private), "MB", envoys=len(private))
        emit("sidecar_rss_mb", sum(rss) / len(rss), "MB", envoys=len(rss))
        with tempfile.TemporaryDirectory(prefix="ami-bench-") as work:
            process_figures(Path(work), quick=args.quick)
    if args.process_model:
        return 0
    subprocess.run(
        [sys.executable, str(Path(__file__).parent / "identity.py"), "--quick"], check=True
    )
    figures = dataplane.measure(seconds=args.seconds, rate=args.rate, max_workers=32)
    for name, value in figures.items():
        unit = "ratio" if "ratio" in name else ("rps" if name.endswith("rps") else "ms")
        emit(name, value, unit, rate=args.rate, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
