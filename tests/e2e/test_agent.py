"""One instance's data plane as the node agent runs it (`agent.Agent`, in-process on a
loop of its own): a real Envoy, a real app, its events."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import queue
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from amimesh.agent import certs, events, machine
from amimesh.agent import config as ac
from amimesh.agent.agent import Agent
from amimesh.agent.identities import Identities
from amimesh.model.proxy import InboundPort, Proxy
from tests.e2e.harness import Mesh, free_port

pytestmark = [pytest.mark.envoy]

APP = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open("env.json", "w") as f:
    json.dump({"env": dict(os.environ), "cwd": os.getcwd(), "python": sys.executable}, f)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        sick = self.path == "/health" and os.path.exists("sick")
        body = b"sick" if sick else f"hello from {os.environ['AMI_INSTANCE']}".encode()
        self.send_response(500 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


class AgentProc:
    """An `Agent` running on its own event loop in a thread, with its event stream.
    With `ca` and `token`, its identity comes from the control plane's CA as the node
    agent gets it."""

    def __init__(self, config: ac.AgentConfig, *, ca: str = "", token: str = "") -> None:
        self.config = config
        self.events: queue.Queue[dict[str, object]] = queue.Queue()
        self.seen: list[dict[str, object]] = []
        self.code: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._agent: Agent | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(ca, token),))
        self._thread.start()
        self._ready.wait(10)

    async def _main(self, ca: str, token: str) -> None:
        identities = Identities(certs.CaClient(ca, token).sign) if ca else None
        self._loop = asyncio.get_running_loop()
        self._agent = Agent(
            self.config,
            report=self.events.put,
            environ=os.environ,
            python_bin=str(Path(sys.executable).parent),
            identities=identities,
        )
        self._ready.set()
        try:
            self.code.set_result(await self._agent.run())
        except BaseException as e:
            self.code.set_exception(e)
        finally:
            if identities is not None:
                await identities.close()

    def next(self, *, probes: bool = False) -> dict[str, object]:
        """The next event; a failing probe's news (`probe`) only if `probes`. Envoy's
        process starting (`envoy-started`, for the pid record) is news of its own,
        never the state's: it is left out."""
        while True:
            try:
                event = self.events.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"no event; events so far: {self.seen}") from None
            self.seen.append(event)
            if event["event"] == "envoy-started":
                continue
            if probes or event["event"] != "probe":
                return dict(event)

    def until(self, name: str) -> dict[str, object]:
        while True:
            event = self.next(probes=name == "probe")
            if event["event"] == name:
                return event

    def terminate(self) -> None:
        assert self._loop is not None and self._agent is not None
        self._loop.call_soon_threadsafe(self._agent.post, machine.Terminate())

    def wait(self, timeout: float) -> int:
        return self.code.result(timeout)

    def close(self) -> None:
        if not self.code.done():
            self.terminate()
            with contextlib.suppress(Exception):
                self.code.result(30)
        self._thread.join(10)


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.close()


def config(
    mesh: Mesh,
    tmp_path: Path,
    command: tuple[str, ...],
    *,
    probe: bool = True,
    hold_app: bool = True,
) -> ac.AgentConfig:
    app_port, listen = free_port(), free_port()
    inbound = (InboundPort(port=8080, listen_port=listen, app_port=app_port, name="http"),)
    proxy = Proxy(
        id="hello-0.default",
        workload="hello",
        labels={"app": "hello"},
        outbound_port=free_port() if probe else 0,
        inbound=inbound if probe else (),
        admin_port=free_port(),
    )
    return ac.AgentConfig(
        name="hello-0",
        proxy=proxy,
        xds=ac.XdsSpec(port=mesh.cp.xds_port),
        envoy=ac.EnvoySpec(
            bootstrap=str(tmp_path / "envoy.json"), log=str(tmp_path / "envoy.log"), drain_s=0.1
        ),
        app=ac.AppSpec(
            command=command,
            cwd=str(tmp_path),
            log=str(tmp_path / "app.log"),
            env={"GREETING": "hi"},
            probe=ac.ProbeSpec(kind="http", port=app_port, path="/health", period_s=0.2)
            if probe
            else None,
            stop_timeout_s=3,
        ),
        grace_s=0.4,
        hold_app=hold_app,
    )


def start(agents: list[AgentProc], cfg: ac.AgentConfig, **identity: str) -> AgentProc:
    agent = AgentProc(cfg, **identity)
    agents.append(agent)
    return agent


def gone(pid: int, timeout: float = 10.0) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_sidecar_then_app_probe_and_graceful_stop(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    (tmp_path / "app.py").write_text(APP)
    cfg = config(mesh, tmp_path, ("python", "app.py"))
    agent = start(agents, cfg)
    envoy_pid = agent.until("envoy-ready")["pid"]
    app_pid = agent.next()
    assert app_pid["event"] == "started"
    assert agent.next() == events.ready()
    assert isinstance(envoy_pid, int) and isinstance(app_pid["pid"], int)

    # The environment of docs/runtime.md, and `python` is the interpreter Ami runs on.
    seen = json.loads((tmp_path / "env.json").read_text())
    env = seen["env"]
    inbound = cfg.proxy.inbound[0]
    assert env["PORT"] == env["PORT_HTTP"] == str(inbound.app_port)
    assert env["HTTP_PROXY"] == f"http://127.0.0.1:{cfg.proxy.outbound_port}"
    assert env["AMI_INSTANCE"] == "hello-0" and env["AMI_WORKLOAD"] == "hello"
    assert env["GREETING"] == "hi"
    assert Path(seen["cwd"]) == tmp_path
    assert Path(seen["python"]).parent == Path(sys.executable).parent

    # Mesh traffic reaches the app through the sidecar's inbound listener.
    url = f"http://127.0.0.1:{inbound.listen_port}/"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.read() == b"hello from hello-0"

    # A failing probe reports not-ready; a passing one ready again.
    (tmp_path / "sick").touch()
    assert agent.next() == events.not_ready(events.PROBE_FAILED)
    (tmp_path / "sick").unlink()
    assert agent.next() == events.ready()

    # Terminate: not-ready at once, the app stopped only after the grace, then Envoy.
    t0 = time.monotonic()
    agent.terminate()
    assert agent.next() == events.not_ready(events.STOPPING)
    assert agent.next() == events.exited(-15)
    assert time.monotonic() - t0 >= cfg.grace_s
    assert agent.next() == events.stopped(0)
    assert agent.wait(10) == 0
    assert gone(app_pid["pid"]) and gone(envoy_pid)


def test_job_ends_its_sidecar_with_its_exit_code(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    cfg = config(
        mesh, tmp_path, ("python", "-c", "print('job done'); raise SystemExit(3)"), probe=False
    )
    agent = start(agents, cfg)
    envoy_pid = agent.until("envoy-ready")["pid"]
    assert agent.next()["event"] == "started"
    assert [agent.next() for _ in range(4)] == [
        events.ready(),
        events.not_ready(events.EXITED),
        events.exited(3),
        events.stopped(3),
    ]
    assert agent.wait(10) == 3
    assert isinstance(envoy_pid, int) and gone(envoy_pid)
    assert (tmp_path / "app.log").read_text() == "job done\n"


def test_a_command_that_cannot_run_fails(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    cfg = config(mesh, tmp_path, ("no-such-command-here",), probe=False)
    agent = start(agents, cfg)
    envoy_pid = agent.until("envoy-ready")["pid"]
    failed = agent.next()
    assert failed["event"] == "failed" and "no-such-command-here" in str(failed["reason"])
    assert agent.next() == events.stopped(127)
    assert agent.wait(10) == 127
    assert isinstance(envoy_pid, int) and gone(envoy_pid)


def test_app_and_envoy_start_at_once_and_ready_needs_both(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    (tmp_path / "app.py").write_text(APP)
    cfg = config(mesh, tmp_path, ("python", "app.py"), hold_app=False)
    agent = start(agents, cfg)
    first_two = {str(agent.next()["event"]) for _ in range(2)}
    assert first_two == {"envoy-ready", "started"}
    assert agent.next() == events.ready()
    url = f"http://127.0.0.1:{cfg.proxy.inbound[0].listen_port}/"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.read() == b"hello from hello-0"
    agent.terminate()
    agent.until("stopped")
    assert agent.wait(10) == 0


def test_a_probe_refused_names_the_port_the_app_listens_on(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    wrong = free_port()
    server = (
        "import http.server as h; "
        f"h.ThreadingHTTPServer(('127.0.0.1', {wrong}), h.SimpleHTTPRequestHandler).serve_forever()"
    )
    cfg = config(mesh, tmp_path, ("python", "-c", server), hold_app=False)
    agent = start(agents, cfg)
    app_port = cfg.proxy.inbound[0].app_port
    while True:
        event = agent.until("probe")
        if str(wrong) in str(event["problem"]):
            break
    assert event["problem"] == (
        f"connection refused on 127.0.0.1:{app_port}: the app listens on {wrong} instead "
        f"(it should listen on $PORT={app_port})"
    )
    agent.terminate()
    agent.until("stopped")
