"""`ami up DIR`: run a mesh in the foreground, show it starting, stop it on Ctrl-C.

`run` is the Python API behind the command: it prints each instance as it becomes
ready (or fails), then the gateway and API URLs and what to try, and keeps the mesh
up until SIGINT or SIGTERM (`ami down`). A second signal kills what is left at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from amimesh.identity.ca import CaError
from amimesh.identity.service import DEFAULT_TTL
from amimesh.model.proxy import AccessLogFormat
from amimesh.runtime import gateway
from amimesh.runtime.instance import InstanceRunner
from amimesh.runtime.supervisor import MeshRunning, Supervisor, UpConfig

STARTUP_TIMEOUT_S = 60.0
SUPERVISOR_LOG = "supervisor.log"


class Progress:
    """Prints instance state changes: each first outcome while starting, then every
    later exit, restart and recovery."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.pending: set[str] = set()
        self.settled = asyncio.Event()
        self._last: dict[str, str] = {}
        self.quiet = False  # once the mesh stops, its instances' ends are no news

    def expect(self, ids: set[str]) -> None:
        self.pending = ids - set(self._last)
        if not self.pending:
            self.settled.set()

    def changed(self, runner: InstanceRunner) -> None:
        iid, state = runner.spec.id, runner.state
        previous = self._last.get(iid)
        if state == previous or state == "starting" or self.quiet:
            return
        self._last[iid] = state
        name = runner.spec.name
        elapsed = f"{time.monotonic() - self.t0:.1f}s"
        if runner.stopping:
            if state == "exited":
                self.console.print(f"  [dim]-[/dim] {name} stopped  [dim]{elapsed}[/dim]")
        elif state == "ready":
            again = f" (restarts: {runner.restarts.count})" if runner.restarts.count else ""
            self.console.print(f"  [green]✓[/green] {name} ready{again}  [dim]{elapsed}[/dim]")
        elif state == "completed":
            self.console.print(f"  [green]✓[/green] {name} completed  [dim]{elapsed}[/dim]")
        elif state == "not-ready":
            self.console.print(f"  [yellow]•[/yellow] {name} not ready")
        else:
            why = escape(runner.reason.splitlines()[0] if runner.reason else "")
            why = why or f"code {runner.exit_code}"
            then = "restarting" if state == "backoff" else "not restarted"
            self.console.print(
                f"  [red]✗[/red] {name} exited ({why}), {then}: "
                f"[bold]ami logs {name}[/bold]  [dim]{elapsed}[/dim]"
            )
        self.pending.discard(iid)
        if not self.pending:
            self.settled.set()


async def serve(config: UpConfig, console: Console, log_level: str = "info") -> int:
    progress = Progress(console)
    sup = Supervisor(config, on_change=progress.changed)
    try:
        sup.claim()
    except MeshRunning as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    handler = _log_to_file(sup.state.logs / SUPERVISOR_LOG, log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            console.print("[red]killing what is left[/red]")
            sup.kill()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        console.print(
            f"Starting the mesh of [bold]{escape(str(sup.config_dir))}[/bold] "
            f"(config: {escape(str(sup.root))})"
        )
        try:
            await sup.start()
        except (gateway.GatewayPortError, CaError) as e:
            console.print(f"[red]error:[/red] {e}")
            return 1
        for err in sup.config_errors:
            console.print("[yellow]config error, left out:[/yellow] ", end="")
            console.print(str(err), markup=False)
        for message in sup.plan_errors.values():
            console.print(f"[red]cannot run:[/red] {message}", markup=False)
        everyone = set(sup.runners) | ({sup.gateway.spec.id} if sup.gateway else set())
        progress.expect(everyone)
        with console.status(f"Starting {len(everyone)} instance(s)…"):
            settled = asyncio.create_task(progress.settled.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                [settled, stopped],
                timeout=STARTUP_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            settled.cancel()
            stopped.cancel()
            await asyncio.gather(settled, stopped, return_exceptions=True)
        if not stop.is_set():
            _summary(console, sup, progress)
            await stop.wait()
        return 0
    finally:
        progress.quiet = True
        console.print("Stopping the mesh…")
        await sup.stop()
        console.print(f"Stopped. Logs: {sup.state.logs}")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        logging.getLogger().removeHandler(handler)
        handler.close()


def _summary(console: Console, sup: Supervisor, progress: Progress) -> None:
    for iid in sorted(progress.pending):
        console.print(f"  [yellow]…[/yellow] {iid} is still starting")
    rows = sup.status()
    ready = sum(1 for r in rows if r["ready"])
    completed = sum(1 for r in rows if r["state"] == "completed")
    done = f", {completed} completed" if completed else ""
    name = sup.state.path.name
    console.print(f"\nMesh [bold]{name}[/bold] is up: {ready}/{len(rows)} instance(s) ready{done}")
    for url in sup.gateway_urls:
        console.print(f"  gateway  {url}")
    if not sup.gateway_urls:
        console.print("  gateway  none (no Gateway selects istio: ingressgateway)")
    console.print(f"  API      http://127.0.0.1:{sup.cp.api_port}  (token: {sup.state.token_file})")
    console.print(f"  dashboard http://127.0.0.1:{sup.cp.api_port}/dashboard/  (ami dashboard)")
    console.print(f"  state    {sup.state.path}")
    # The state root, when not the default, must reach the other commands too.
    root = sup.config.state_root
    ami = f"AMI_STATE_DIR={root} ami" if root is not None else "ami"
    tries = [f"curl {url}" for url in sup.gateway_urls[:1]]
    root_cert = sup.state.ca / "root-cert.pem"
    https = [u for u in sup.gateway_urls if u.startswith("https://")]
    tries += [f"curl --cacert {root_cert} {url}" for url in https[:1]]
    tries.append(f"{ami} status")
    workloads = sorted({r["workload"] for r in rows if r["kind"] == "sidecar"})
    tries += [f"{ami} logs {w} -f" for w in workloads[:1]]
    tries += [f"{ami} identity {w}" for w in workloads[:1]]
    tries.append(f"{ami} down {name}   (or Ctrl-C)")
    console.print("Try:")
    for line in tries:
        console.print(f"  {line}", markup=False)


def run(
    config_dir: Path,
    *,
    state_root: Path | None = None,
    gateway_port: int | None = None,
    log_level: str = "info",
    cert_ttl_s: float | None = None,
    ca_certs_dir: Path | None = None,
    access_log_format: AccessLogFormat = "json",
    trace_forward: str | None = None,
) -> int:
    """Run the mesh of `config_dir` until interrupted; the process exit code.

    `cert_ttl_s` is the workload certificates' lifetime (default 24 h); `ca_certs_dir`
    a user-supplied CA (Istio's cacerts layout) instead of the mesh's own root;
    `access_log_format` how every proxy's access log is written ("json" or "text");
    `trace_forward` an OTLP/gRPC receiver (`host:port`) that gets every trace export too.
    Traces are kept in `STATE/traces.db`."""
    console = Console(highlight=False, emoji=False, soft_wrap=True)
    if not config_dir.is_dir():
        console.print(f"[red]error:[/red] not a directory: {config_dir}")
        return 2
    if ca_certs_dir is not None and not ca_certs_dir.is_dir():
        console.print(f"[red]error:[/red] --ca-certs: not a directory: {ca_certs_dir}")
        return 2
    config = UpConfig(
        config_dir=config_dir,
        state_root=state_root,
        gateway_port=gateway_port,
        ca_certs_dir=ca_certs_dir,
        access_log_format=access_log_format,
        trace_forward=trace_forward,
        cert_ttl_s=cert_ttl_s if cert_ttl_s is not None else DEFAULT_TTL.total_seconds(),
    )
    return asyncio.run(serve(config, console, log_level))


def _log_to_file(path: Path, level: str) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
