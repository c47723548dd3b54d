"""`ami intercept`, also the Python API: ask the control plane for an intercept, keep
its lease, run the command with the intercept instance's environment in the
foreground, and end the intercept when the command ends or on SIGINT/SIGTERM.

    intercept.run("api", ["python3", "app.py"], header="x-dev=alice")

The command inherits the terminal (stdin, stdout, stderr: a debugger works) and the
environment an app of the workload gets (`PORT`, `HTTP_PROXY`, `AMI_*`, the
Workload's `env`: `agent.env.app_env` of the intercept instance's plan), over the
caller's own. It runs in the caller's directory. It dies with this process
(`PR_SET_PDEATHSIG` on Linux), and the control plane ends an intercept whose lease
this process stopped renewing.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from amimesh.agent import config as agent_config
from amimesh.agent.env import app_env
from amimesh.cli.client import ApiError, MeshClient, NotRunning, connect
from amimesh.runtime import state

PLAN_WAIT_S = 60.0
POLL_S = 0.1
# After SIGINT or SIGTERM: how long the command may take to end by itself (a Ctrl-C
# of the terminal reached it too), then after a SIGTERM, before SIGKILL.
OWN_EXIT_S = 0.5
TERM_S = 5.0
PR_SET_PDEATHSIG = 1


def _say(text: str) -> None:
    print(f"ami intercept: {text}", file=sys.stderr, flush=True)


def run(
    workload: str,
    command: list[str],
    *,
    namespace: str = "default",
    header: str | None = None,
    port: int | None = None,
    mesh: str | None = None,
) -> int:
    """Intercept `workload` with `command` until it ends (or this process is told to
    stop); the command's exit code (2: nothing could be started)."""
    if not command:
        _say("give the command to run after --")
        return 2
    try:
        client = connect(mesh)
        st = state.find(mesh)
        made = client.request(
            "POST",
            "/api/v1/intercepts",
            body=json.dumps(
                {"namespace": namespace, "workload": workload, "header": header, "port": port}
            ).encode(),
        )
    except (NotRunning, ApiError, FileNotFoundError) as e:
        _say(f"error: {e}")
        return 2
    held = _Held(client, made)
    stop = _Stop()
    try:
        config = held.wait_for_plan(st.instances / made["instance"] / "agent.json", stop)
        if config is None:
            return 128 + stop.signum if stop.signum is not None else 2
        env = app_env(config, os.environ, str(Path(sys.executable).parent))
        env["AMI_WORKLOAD"] = workload  # the intercepted one, not the intercept's own
        _say(
            f"{namespace}/{workload} intercepted ({made['id']}): "
            + (f"requests with {made['header']}" if made["header"] else "every request")
            + f" reach your command on 127.0.0.1:{env.get('PORT', '?')} as "
            + (config.identity.spiffe_id if config.identity else "the workload")
            + "; Ctrl-C ends it"
        )
        try:
            child = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
        except OSError as e:
            _say(f"error: cannot run {command[0]!r}: {e}")
            return 2
        return _supervise(child, held, stop)
    finally:
        stop.restore()
        held.end()


class _Stop:
    """SIGINT and SIGTERM, noted (and the handlers put back at the end)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old = {s: signal.signal(s, self._note) for s in (signal.SIGINT, signal.SIGTERM)}

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


class _Held:
    """The intercept and its lease, renewed every fifth of it."""

    def __init__(self, client: MeshClient, made: dict[str, Any]) -> None:
        self.client = client
        self.id = str(made["id"])
        self.every_s = max(0.2, float(made.get("lease_s", 10.0)) / 5)
        self.due = time.monotonic() + self.every_s
        self.lost = ""
        self.ended = False

    def renew_if_due(self) -> None:
        if time.monotonic() < self.due or self.lost:
            return
        self.due = time.monotonic() + self.every_s
        try:
            self.client.request("PUT", f"/api/v1/intercepts/{self.id}")
        except ApiError as e:
            if e.status == 404:
                self.lost = "the control plane ended the intercept"
        except NotRunning:
            pass  # retried at the next turn; the lease outlasts a short absence

    def wait_for_plan(self, path: Path, stop: _Stop) -> agent_config.AgentConfig | None:
        deadline = time.monotonic() + PLAN_WAIT_S
        while time.monotonic() < deadline and stop.signum is None and not self.lost:
            self.renew_if_due()
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return agent_config.read(path)
            time.sleep(POLL_S)
        if stop.signum is None:
            _say("error: " + (self.lost or "the node agent did not plan the intercept's instance"))
        return None

    def end(self) -> None:
        if self.ended or self.lost:
            return
        self.ended = True
        with contextlib.suppress(ApiError, NotRunning):
            self.client.request("DELETE", f"/api/v1/intercepts/{self.id}")


def _supervise(child: subprocess.Popen[bytes], held: _Held, stop: _Stop) -> int:
    while child.poll() is None:
        held.renew_if_due()
        if stop.signum is not None or held.lost:
            if held.lost:
                _say(held.lost)
            code = _stop(child)
            return 128 + stop.signum if stop.signum is not None else code
        time.sleep(POLL_S)
    return child.returncode


def _stop(child: subprocess.Popen[bytes]) -> int:
    for sig, wait_s in ((None, OWN_EXIT_S), (signal.SIGTERM, TERM_S), (signal.SIGKILL, TERM_S)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return child.wait(wait_s)
    return child.wait()


def _die_with_parent() -> None:
    """In the child: SIGTERM when this process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
