"""Which TCP ports a process and its descendants listen on, read from /proc.

Told when a readiness probe is refused: an app that listens on 9080 instead of $PORT
is named with the port it took, instead of staying `starting` with no reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

LISTEN = "0A"


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo += children.get(p, [])
    return found


def socket_inodes(pids: Iterable[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def parse_listeners(table: str) -> dict[int, int]:
    """inode → port of the listening sockets of a /proc/net/tcp (or tcp6) table."""
    out = {}
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[3] == LISTEN:
            out[int(cols[9])] = int(cols[1].rsplit(":", 1)[1], 16)
    return out


def listening_ports(pid: int) -> set[int]:
    """The TCP ports `pid` and its descendants listen on (empty if it is gone)."""
    pids = descendants(pid)
    inodes = socket_inodes(pids)
    if not inodes:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                listeners = parse_listeners(f.read())
        except OSError:
            continue
        ports |= {port for inode, port in listeners.items() if inode in inodes}
    return ports
