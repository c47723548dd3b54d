"""Child processes of `ami up` and the node agent: exit codes, logs, their groups."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from amimesh.agent.process import Child
from amimesh.agent.spawn import start, start_time


def running_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or ()):
            found.append(p)
    return found


async def test_a_childs_exit_code_is_read_and_nothing_is_left(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("before\n")
    child = Child.spawn(["sh", "-c", "echo out; echo err >&2; exit 3"], log=log)
    assert await child.wait() == 3
    assert child.returncode == 3
    # Appended to the log, both streams; the exited child is reaped, not a zombie.
    assert log.read_text() == "before\nout\nerr\n"
    assert not psutil.pid_exists(child.pid)
    killed = Child.spawn([sys.executable, "-c", "import time; time.sleep(60)"], log=log)
    assert killed.returncode is None
    os.kill(killed.pid, signal.SIGKILL)
    assert await killed.wait() == -signal.SIGKILL


async def test_a_child_started_before_the_loop_is_waited_for_in_it(tmp_path: Path) -> None:
    # `ami up` starts the control plane and the node agent before its event loop.
    proc = start(["sh", "-c", "sleep 0.2; exit 7"], log=tmp_path / "out.log")
    child = Child.of(proc)
    assert child.started == start_time(proc.pid)
    assert await child.wait() == 7


def test_a_command_that_cannot_run_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Child.spawn(["/nonexistent/command"], log=tmp_path / "out.log")


async def test_a_started_child_is_stopped_with_its_group(tmp_path: Path) -> None:
    marker = f"child-{uuid.uuid4().hex}"
    argv = [
        "sh",
        "-c",
        f"sleep 60 & exec {sys.executable} -c 'import time; time.sleep(60)' {marker}",
    ]
    child = Child.spawn(argv, log=tmp_path / "out.log")
    assert child.returncode is None
    await child.stop(5)
    assert child.returncode is not None
    assert running_with(marker) == []
