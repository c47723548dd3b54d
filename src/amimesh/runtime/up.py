"""`ami up DIR`: run a mesh in the foreground, show it starting, stop it on Ctrl-C.

`run` is the Python API behind the command: it prints each instance as it becomes
ready (or fails), then the gateway and API URLs and what to try, and keeps the mesh
up until SIGINT or SIGTERM (`ami down`). A second signal kills what is left at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from amimesh.runtime.supervisor import (
    DEFAULT_CERT_TTL_S,
    AccessLogFormat,
    MeshRunning,
    Supervisor,
    UpConfig,
)

STARTUP_TIMEOUT_S = 60.0
SUPERVISOR_LOG = "supervisor.log"
POLL_S = 0.05
WATCH_S = 0.1
API_TIMEOUT_S = 5.0
T = TypeVar("T")


class Progress:
    """Prints instance state changes, from the node agent's status rows: each first
    outcome while starting, then every later exit, restart and recovery."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.pending: set[str] = set()
        self._last: dict[str, tuple[str, int]] = {}
        self._reasons: dict[str, str] = {}
        self.quiet = False  # once the mesh stops, its instances' ends are no news

    @property
    def settled(self) -> bool:
        return bool(self._last) and not self.pending

    def update(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.changed(row)
        present = {str(r.get("id")) for r in rows}
        for iid in [i for i in self._last if i not in present]:  # retired by the node
            del self._last[iid]
            self.pending.discard(iid)
            if not self.quiet:
                name = iid.rsplit(".", 1)[0]
                self.console.print(f"  [dim]-[/dim] {name} stopped")

    def changed(self, row: dict[str, Any]) -> None:
        iid, state = str(row.get("id")), str(row.get("state"))
        name = str(row.get("instance", iid))
        restarts = int(row.get("restarts") or 0)
        if iid not in self._last and state == "starting":
            self.pending.add(iid)
        reason = str(row.get("reason") or "")
        probe = str(row.get("probe") or "")
        if state == "starting" and probe and probe != self._reasons.get(iid):
            # Why it is not ready yet: a wrong port, a probe's answer.
            self._reasons[iid] = probe
            if "listens on" in probe:
                self.console.print(f"  [yellow]…[/yellow] {name}: {escape(probe)}")
        previous = self._last.get(iid)
        if (state, restarts) == previous or state == "starting" or self.quiet:
            if previous is None:
                self._last[iid] = (state, restarts)
            return
        if previous is not None and previous[0] == state and state != "ready":
            self._last[iid] = (state, restarts)
            return
        self._last[iid] = (state, restarts)
        elapsed = f"{time.monotonic() - self.t0:.1f}s"
        if state == "ready":
            again = f" (restarts: {restarts})" if restarts else ""
            self.console.print(f"  [green]✓[/green] {name} ready{again}  [dim]{elapsed}[/dim]")
        elif state == "completed":
            self.console.print(f"  [green]✓[/green] {name} completed  [dim]{elapsed}[/dim]")
        elif state == "not-ready":
            self.console.print(f"  [yellow]•[/yellow] {name} not ready: {escape(reason)}")
        else:
            code = row.get("exit_code")
            why = f"code {code}" if code is not None else escape(reason.splitlines()[0])
            then = "restarting" if state == "backoff" else "not restarted"
            self.console.print(
                f"  [red]✗[/red] {name} exited ({why}), {then}: "
                f"[bold]ami logs {name}[/bold]  [dim]{elapsed}[/dim]"
            )
        self.pending.discard(iid)


async def serve(config: UpConfig, console: Console, log_level: str = "info") -> int:
    progress = Progress(console)
    sup = Supervisor(config)
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
        again = " (adopting the running control plane and node agent)" if sup.adopted else ""
        console.print(
            f"Starting the mesh of [bold]{escape(str(sup.config_dir))}[/bold] "
            f"(config: {escape(str(sup.root))}){again}"
        )
        # A signal while starting stops the start too (it may wait long for a node
        # agent that does not come).
        started, _ = await _unless_stopped(sup.start(), stop)
        if not started:
            return 0
        _, found = await _unless_stopped(_config_errors(sup), stop)
        errors = found or []
        for err in errors:
            console.print("[yellow]config error, left out:[/yellow] ", end="")
            console.print(err, markup=False)
        deadline = loop.time() + STARTUP_TIMEOUT_S
        shown_plan_errors: set[str] = set()
        with console.status("Starting the mesh…"):
            while not stop.is_set() and loop.time() < deadline:
                status = sup.node_status()
                for message in status.get("plan_errors", ()):
                    if message not in shown_plan_errors:
                        shown_plan_errors.add(message)
                        console.print(f"[red]cannot run:[/red] {message}", markup=False)
                progress.update(status.get("instances", []))
                if progress.settled or (status and not status.get("instances")):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        if not stop.is_set():
            _summary(console, sup, progress)
            while not stop.is_set():  # later exits, restarts and recoveries
                progress.update(sup.status())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WATCH_S)
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


async def _unless_stopped(
    step: Coroutine[Any, Any, T], stop: asyncio.Event
) -> tuple[bool, T | None]:
    """(True, `step`'s result), or (False, None) with `step` cancelled once `stop` is
    set first."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False, None
    return True, task.result()


async def _config_errors(sup: Supervisor) -> list[str]:
    """The config errors the control plane found (once its API answers)."""
    token = sup.state.read_token()
    request = urllib.request.Request(
        f"{sup.api}/api/v1/status", headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback

    def fetch() -> list[str] | None:
        try:
            with opener.open(request, timeout=API_TIMEOUT_S) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError):
            return None
        return [str(e) for e in data.get("config_errors", [])]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while loop.time() < deadline:
        errors = await asyncio.to_thread(fetch)
        if errors is not None:
            return errors
        await asyncio.sleep(POLL_S)
    return []


def _summary(console: Console, sup: Supervisor, progress: Progress) -> None:
    for iid in sorted(progress.pending):
        console.print(f"  [yellow]…[/yellow] {iid} is still starting")
    rows = sup.status()
    ready = sum(1 for r in rows if r["ready"])
    completed = sum(1 for r in rows if r["state"] == "completed")
    done = f", {completed} completed" if completed else ""
    name = sup.state.path.name
    console.print(f"\nMesh [bold]{name}[/bold] is up: {ready}/{len(rows)} instance(s) ready{done}")
    gateway_urls = sup.gateway_urls()
    for url in gateway_urls:
        console.print(f"  gateway  {url}")
    if not gateway_urls:
        console.print("  gateway  none (no Gateway selects istio: ingressgateway)")
    console.print(f"  API      {sup.api}  (token: {sup.state.token_file})")
    console.print(f"  dashboard {sup.api}/dashboard/  (ami dashboard)")
    console.print(f"  state    {sup.state.path}")
    # The state root, when not the default, must reach the other commands too.
    root = sup.config.state_root
    ami = f"AMI_STATE_DIR={root} ami" if root is not None else "ami"
    plain = [u for u in gateway_urls if u.startswith("http://")]
    tries = [f"curl {url}" for url in plain[:1]]
    root_cert = sup.state.ca / "root-cert.pem"
    https = [u for u in gateway_urls if u.startswith("https://")]
    tries += [f"curl --cacert {root_cert} {url}" for url in https[:1]]
    tries.append(f"{ami} status")
    # The user's own workloads first: not the platform's (a broker, a listener).
    platform = ("knative-", "istio-", "tekton-")
    workloads = [
        w
        for _, w in sorted(
            {
                (str(r.get("namespace", "")).startswith(platform), r["workload"])
                for r in rows
                if r["kind"] == "sidecar"
            }
        )
    ]
    tries += [f"{ami} logs {w} -f" for w in workloads[:1]]
    tries += [f"{ami} identity {w}" for w in workloads[:1]]
    tries.append(f"{ami} down {name}   (or Ctrl-C)")
    console.print("Try:")
    for line in tries:
        console.print(f"  {line}", markup=False)


DEFAULT_GITOPS_POLL_S = 3.0


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
    gitops_poll_s: float | None = None,
    reload: bool = False,
) -> int:
    """Run the mesh of `config_dir` until interrupted; the process exit code.

    `cert_ttl_s` is the workload certificates' lifetime (default 24 h); `ca_certs_dir`
    a user-supplied CA (Istio's cacerts layout) instead of the mesh's own root;
    `access_log_format` how every proxy's access log is written ("json" or "text");
    `trace_forward` an OTLP/gRPC receiver (`host:port`) that gets every trace export too;
    `gitops_poll_s` how often Argo CD Applications' repositories are fetched (default
    3 s); `reload` live reload of the Workloads with a `workingDir` and of Knative
    Services (docs/devloop.md). Traces are kept in `STATE/traces.db`."""
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
        gitops_poll_s=gitops_poll_s if gitops_poll_s is not None else DEFAULT_GITOPS_POLL_S,
        cert_ttl_s=cert_ttl_s if cert_ttl_s is not None else DEFAULT_CERT_TTL_S,
        log_level=log_level,
        reload=reload,
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
