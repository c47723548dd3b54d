"""`ami down [MESH]`: stop a running mesh and wait until it is gone.

With its `ami up` alive, that is asked to stop (SIGTERM) and does it in order. When
`ami up` is gone (killed) but its control plane or node agent runs on, `ami down`
stops them itself: the node agent first (it drains every instance), then the control
plane; any instance process still recorded is killed, so nothing is left.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from amimesh.agent.process import start_time
from amimesh.runtime import state, supervisor


class DownError(RuntimeError):
    pass


def down(mesh: str | None = None, *, root: Path | None = None, timeout_s: float = 60.0) -> str:
    """Stop the mesh `mesh` (default: the current one); returns its name. Raises
    FileNotFoundError if no such mesh runs, DownError if it does not stop within
    `timeout_s`."""
    st = state.find(mesh, root)
    info: dict[str, Any] = json.loads(st.info_file.read_text())
    name = str(info.get("name", st.path.name))
    pid = int(info.get("pid", 0))
    if pid and state.pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone([pid], timeout_s):
            raise DownError(f"mesh {name} (pid {pid}) did not stop in {timeout_s:g}s")
        return name
    # `ami up` died: stop what it left, in order.
    for who in ("node", "controlplane"):
        mpid = int(info.get(f"{who}_pid", 0))
        if mpid and start_time(mpid) == info.get(f"{who}_started"):
            os.kill(mpid, signal.SIGTERM)
            if not _wait_gone([mpid], timeout_s):
                os.kill(mpid, signal.SIGKILL)
    supervisor.kill_instances(st)
    supervisor.release(st)
    return name


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(state.pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False
