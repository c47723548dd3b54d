"""`ami logs NAME`: an instance's or a workload's logs, from the mesh's state dir.

Files, per instance id (`web-0.default`): `logs/<id>.log` (the app's stdout and
stderr), `logs/<id>.envoy.log` (its Envoy), `logs/<id>.access.log` (its Envoy's
access log, `docs/observability.md`). A gateway has no app: its log is its Envoy's.
The node agent and the control plane write `logs/node.log` and
`logs/controlplane.log`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from amimesh.runtime.state import StateDir

POLL_S = 0.2


@dataclass(frozen=True)
class InstanceLogs:
    id: str
    name: str
    workload: str
    has_app: bool


def instances(st: StateDir) -> list[InstanceLogs]:
    """The instances of the mesh, from their agent configs."""
    out = []
    for path in sorted(st.instances.glob("*/agent.json")):
        try:
            data = json.loads(path.read_text())
            proxy = data["proxy"]
            out.append(
                InstanceLogs(proxy["id"], data["name"], proxy["workload"], data["app"] is not None)
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def select(
    st: StateDir, name: str, *, envoy: bool = False, access: bool = False
) -> list[tuple[str, Path]]:
    """(instance name, log file) for `name`: an instance id, an instance name or a
    workload name (then all its replicas). `access`: the access log of its Envoy."""
    found = [i for i in instances(st) if name in (i.id, i.name)]
    if not found:
        found = [i for i in instances(st) if i.workload == name]
    return [(i.name, st.logs / (i.id + _suffix(envoy or not i.has_app, access))) for i in found]


def _suffix(envoy: bool, access: bool = False) -> str:
    if access:
        return ".access.log"
    return ".envoy.log" if envoy else ".log"


class _Tail:
    """A file read from where the last read stopped, in whole lines."""

    def __init__(self, label: str, path: Path) -> None:
        self.label = label
        self.path = path
        self.offset = 0
        self._partial = b""

    def lines(self, *, final: bool = False) -> list[str]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # truncated or replaced: start over
            self.offset, self._partial = 0, b""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = self._partial + f.read()
            self.offset = f.tell()
        *complete, self._partial = data.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        return [line.decode("utf-8", "replace") for line in complete]


def show(files: list[tuple[str, Path]], *, follow: bool = False, out: TextIO = sys.stdout) -> None:
    """Print the files (each line prefixed by its instance when there are several);
    with `follow`, keep printing what they gain until interrupted."""
    tails = [_Tail(label, path) for label, path in files]
    width = max((len(t.label) for t in tails), default=0)

    def pump(final: bool) -> None:
        for t in tails:
            for line in t.lines(final=final):
                out.write(f"{t.label:<{width}} | {line}\n" if len(tails) > 1 else line + "\n")
        out.flush()

    pump(final=not follow)
    while follow:
        time.sleep(POLL_S)
        pump(final=False)
