"""A child process in its own session, under asyncio: spawn, wait, stop its whole group.

A process another node agent started (before it died) is adopted by pid: it is the
same process only if its start time in /proc matches the one recorded at spawn, and
its end is seen through a pidfd (it is not our child, so its exit code is unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

# The exit code of an adopted process, whose real code only its first parent could read.
UNKNOWN_EXIT = 255


class AlreadyRunning(RuntimeError):
    """Another process holds the lock: one control plane and one node agent per mesh."""


def hold_lock(path: Path) -> int:
    """Hold an exclusive lock on `path` for as long as this process lives (the fd is
    returned and never closed); raises AlreadyRunning if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"{path} is held by another process") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal the process group led by `pid`; False if there is none any more."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def naming(directory: Path) -> list[int]:
    """The processes with an argument under `directory` (an Envoy started with `-c
    DIR/instances/ID/envoy.json` names its instance's home): what is left of a mesh
    can be found by its state even when no record of it was written."""
    prefix = str(directory).rstrip("/").encode() + b"/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(prefix) for a in args[1:]):
            found.append(int(entry))
    return found


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat), None if it is gone
    or a zombie: with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


class Child:
    """A process started with `start_new_session`, so it and everything it starts form
    one group that `stop` ends, and a terminal's Ctrl-C reaches only the parent. Its
    output goes to a file, never to a pipe: it outlives the node agent that started it."""

    def __init__(self, pid: int, proc: asyncio.subprocess.Process | None = None) -> None:
        self.pid = pid
        self._proc = proc
        self._code: int | None = None
        self.started = start_time(pid) or 0

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
            creating = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=cwd,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                )
            )
            try:
                proc = await asyncio.shield(creating)
            except asyncio.CancelledError:
                # Cancelled while the process was being made (its instance stopped
                # meanwhile): it may run already, and nobody would ever end it.
                with contextlib.suppress(OSError):
                    started = await creating
                    kill_group(started.pid)
                    await started.wait()
                raise
        finally:
            os.close(out)
        return cls(proc.pid, proc)

    @classmethod
    def adopt(cls, pid: int, started: int) -> Child | None:
        """The running process `pid` if it is the one that started at `started`."""
        if pid <= 0 or start_time(pid) != started:
            return None
        return cls(pid)

    @property
    def returncode(self) -> int | None:
        if self._proc is not None:
            return self._proc.returncode
        if self._code is None and start_time(self.pid) != self.started:
            self._code = UNKNOWN_EXIT
        return self._code

    async def _wait_process(self) -> int:
        if self._proc is not None:
            return await self._proc.wait()
        if self._code is not None:
            return self._code
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._code = UNKNOWN_EXIT
            return self._code
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, readable)
        try:
            if start_time(self.pid) == self.started:
                await asyncio.shield(gone)
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        self._code = UNKNOWN_EXIT
        return self._code

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal); what the process started
        and left behind in its group is killed once it exits."""
        code = await self._wait_process()
        kill_group(self.pid)
        return code

    async def stop(self, timeout_s: float) -> int:
        """SIGTERM the group, SIGKILL it after `timeout_s`; returns the exit code."""
        if self.returncode is None:
            kill_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._wait_process()), timeout_s)
            if self.returncode is None:
                kill_group(self.pid, signal.SIGKILL)
        return await self.wait()

    def kill(self) -> None:
        """SIGKILL the group now, without waiting (clean-up on the way out)."""
        if self.returncode is None:
            kill_group(self.pid)
