"""Child processes of the node agent: a start cancelled half way leaves nothing."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import psutil

from amimesh.agent.process import Child


def running_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or ()):
            found.append(p)
    return found


async def test_a_start_cancelled_after_the_fork_ends_the_process(tmp_path: Path) -> None:
    marker = f"child-{uuid.uuid4().hex}"
    argv = [sys.executable, "-c", "import time; time.sleep(60)", marker]
    for turns in range(4):  # cancelled at each point of the start
        task = asyncio.ensure_future(Child.spawn(argv, log=tmp_path / "out.log"))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done = await asyncio.gather(task, return_exceptions=True)
        if isinstance(done[0], Child):  # it had started: ours to stop
            await done[0].stop(5)
        assert running_with(marker) == []


async def test_a_started_child_is_stopped_with_its_group(tmp_path: Path) -> None:
    marker = f"child-{uuid.uuid4().hex}"
    argv = [
        "sh",
        "-c",
        f"sleep 60 & exec {sys.executable} -c 'import time; time.sleep(60)' {marker}",
    ]
    child = await Child.spawn(argv, log=tmp_path / "out.log")
    assert child.returncode is None
    await child.stop(5)
    assert child.returncode is not None
    assert running_with(marker) == []
