"""A child process in its own session, under asyncio: spawn, wait, stop its whole group."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal the process group led by `pid`; False if there is none any more."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Child:
    """A process started with `start_new_session`, so it and everything it starts form
    one group that `stop` ends, and a terminal's Ctrl-C reaches only the parent."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start `argv` with stdout and stderr appended to `log`, stdin from /dev/null.

        Raises OSError when it cannot run (no such command or directory, not executable).
        """
        log.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        finally:
            os.close(out)
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal); what the process started
        and left behind in its group is killed once it exits."""
        code = await self._proc.wait()
        kill_group(self.pid)
        return code

    async def stop(self, timeout_s: float) -> int:
        """SIGTERM the group, SIGKILL it after `timeout_s`; returns the exit code."""
        if self._proc.returncode is None:
            kill_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout_s)
            except TimeoutError:
                kill_group(self.pid, signal.SIGKILL)
        return await self.wait()

    def kill(self) -> None:
        """SIGKILL the group now, without waiting (clean-up on the way out)."""
        if self._proc.returncode is None:
            kill_group(self.pid)
