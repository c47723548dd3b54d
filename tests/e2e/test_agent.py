"""`ami agent` as the runtime runs it: a real Envoy, a real app, events on stdout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from amimesh.agent import config as ac
from amimesh.agent import events
from amimesh.model.proxy import InboundPort, Proxy
from tests.e2e.harness import Mesh, free_port

pytestmark = [pytest.mark.envoy]

AMI = [sys.executable, "-m", "amimesh.cli.main"]

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
    """An `ami agent` child with its event stream."""

    def __init__(self, config_path: Path) -> None:
        self.proc = subprocess.Popen(
            [*AMI, "agent", "--config", str(config_path), "--parent-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.seen: list[dict[str, object]] = []

    def next(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"agent ended; events so far: {self.seen}"
        event = json.loads(line)
        self.seen.append(event)
        return dict(event)

    def until(self, name: str) -> dict[str, object]:
        while True:
            event = self.next()
            if event["event"] == name:
                return event

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.close()


def config(
    mesh: Mesh, tmp_path: Path, command: tuple[str, ...], *, probe: bool = True
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
    )


def start(agents: list[AgentProc], cfg: ac.AgentConfig, tmp_path: Path) -> AgentProc:
    path = ac.write(tmp_path / "agent.json", cfg)
    agent = AgentProc(path)
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
    agent = start(agents, cfg, tmp_path)
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

    # SIGTERM: not-ready at once, the app stopped only after the grace, then Envoy.
    t0 = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.next() == events.not_ready(events.STOPPING)
    assert agent.next() == events.exited(-15)
    assert time.monotonic() - t0 >= cfg.grace_s
    assert agent.next() == events.stopped(0)
    assert agent.proc.wait(10) == 0
    assert gone(app_pid["pid"]) and gone(envoy_pid)


def test_job_ends_its_sidecar_with_its_exit_code(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    cfg = config(
        mesh, tmp_path, ("python", "-c", "print('job done'); raise SystemExit(3)"), probe=False
    )
    agent = start(agents, cfg, tmp_path)
    envoy_pid = agent.until("envoy-ready")["pid"]
    assert agent.next()["event"] == "started"
    assert [agent.next() for _ in range(4)] == [
        events.ready(),
        events.not_ready(events.EXITED),
        events.exited(3),
        events.stopped(3),
    ]
    assert agent.proc.wait(10) == 3
    assert isinstance(envoy_pid, int) and gone(envoy_pid)
    assert (tmp_path / "app.log").read_text() == "job done\n"


def test_a_command_that_cannot_run_fails(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    cfg = config(mesh, tmp_path, ("no-such-command-here",), probe=False)
    agent = start(agents, cfg, tmp_path)
    envoy_pid = agent.until("envoy-ready")["pid"]
    failed = agent.next()
    assert failed["event"] == "failed" and "no-such-command-here" in str(failed["reason"])
    assert agent.next() == events.stopped(127)
    assert agent.proc.wait(10) == 127
    assert isinstance(envoy_pid, int) and gone(envoy_pid)


def test_the_end_of_stdin_stops_the_agent(
    mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    cfg = config(mesh, tmp_path, ("python", "-c", "import time; time.sleep(60)"), probe=False)
    agent = start(agents, cfg, tmp_path)
    agent.until("ready")
    assert agent.proc.stdin is not None
    agent.proc.stdin.close()  # as when the runtime dies
    agent.until("stopped")
    assert agent.proc.wait(10) == 0
