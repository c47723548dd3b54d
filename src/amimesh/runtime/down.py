"""`ami down [MESH]`: stop a running mesh and wait until it is gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from amimesh.runtime import state


class DownError(RuntimeError):
    pass


def down(mesh: str | None = None, *, root: Path | None = None, timeout_s: float = 60.0) -> str:
    """SIGTERM the `ami up` of `mesh` (default: the current one) and wait for it to exit;
    returns the mesh's name. Raises FileNotFoundError if no such mesh runs, DownError if
    it does not stop within `timeout_s`."""
    st = state.find(mesh, root)
    info = st.read_info()
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        # The supervisor died without cleaning up (SIGKILL): only its record is left.
        st.info_file.unlink(missing_ok=True)
        return info.name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not state.pid_alive(info.pid):
            return info.name
        time.sleep(0.1)
    raise DownError(f"mesh {info.name} (pid {info.pid}) did not stop in {timeout_s:g}s")
