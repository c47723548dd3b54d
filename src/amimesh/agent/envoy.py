"""One Envoy process: start it from a bootstrap file, wait until it is live, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from amimesh.agent.bootstrap import envoy_command


class EnvoyError(RuntimeError):
    """Envoy exited or never became ready; the message carries its log's tail."""


class EnvoyProcess:
    def __init__(
        self,
        config_path: Path,
        admin_port: int,
        log_path: Path,
        *,
        log_level: str = "warning",
        concurrency: int = 2,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config_path = config_path
        self.admin_port = admin_port
        self.log_path = log_path
        self._args = [
            *envoy_command(config_path, log_level=log_level, concurrency=concurrency),
            *extra_args,
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def admin(self, path: str, *, method: str = "GET", timeout: float = 5.0) -> str:
        """GET (or POST) a path of the admin interface on loopback."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body.decode()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once the admin `/ready` says LIVE (all initial config warmed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise EnvoyError(f"envoy exited early:\n{self.log_tail()}")
            try:
                if self.admin("/ready", timeout=1.0).strip() == "LIVE":
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise EnvoyError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate Envoy (SIGTERM, then SIGKILL after `timeout`); returns its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode
