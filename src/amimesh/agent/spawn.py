"""Starting a process of the mesh, with no event loop: in a session of its own, its
output appended to a file, never a pipe (it outlives whoever started it).

`ami up` starts the control plane and the node agent with this before it loads its
event loop and console (`runtime.launch`); `process.Child` wraps the same for
everything started later.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def start(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdout and stderr appended to `log`, stdin from /dev/null, as
    the leader of a new session (its group is what stopping it ends).

    Raises OSError when it cannot run (no such command or directory, not executable).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    finally:
        os.close(out)


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
