"""Loopback ports for a mesh's processes: allocated, never hard-coded.

Ports are picked below the kernel's ephemeral range (`ip_local_port_range`), where
outgoing connections take their local ports: a port handed out there could be the
local end of a long-lived connection (to NATS, to xDS) by the time the app binds it,
and stay so for as long as that connection lives. A free one is picked at random and
checked by binding it; the allocator remembers what it handed out, so two instances
of one mesh never get the same port even before either binds it. Every port handed
out is also noted on this machine for this user (`$TMPDIR/ami-ports-UID/PORT`, its
owner inside) for CLAIM_TTL_S: another mesh's allocator, starting at the same moment,
skips it rather than see it free because its owner has not bound it yet (a control
plane binds some of its ports seconds after `ami up` picked them). Another listener
may still take a port between allocation and use: the instance then fails to start
and the runtime restarts it with backoff.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Where allocated ports come from, when the ephemeral range leaves room below it.
LOWEST = 10000
_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default when
    it cannot be read)."""
    try:
        with open(_RANGE_FILE) as f:
            low, high = (int(x) for x in f.read().split()[:2])
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


# How long a port handed out stays noted for other allocators on this machine.
CLAIM_TTL_S = 600.0


def claims_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"ami-ports-{os.getuid()}"


def _note(port: int, owner: str) -> bool:
    """Note `port` as handed out by `owner`; False when another owner noted it within
    CLAIM_TTL_S. Where no note can be kept (a read-only or foreign directory) every
    port passes: the allocator's own bookkeeping still holds."""
    folder = claims_dir()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.getuid():
            return True
        path = folder / str(port)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if time.time() - path.stat().st_mtime < CLAIM_TTL_S:
                if path.read_text() != owner:
                    return False
            path.write_text(owner)  # stale, or this owner's again: noted anew
            return True
        with os.fdopen(fd, "w") as f:
            f.write(owner)
        return True
    except OSError:
        return True


def is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether `port` can be bound on `host` now (with SO_REUSEADDR, as Envoy binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                return False
            raise
    return True


class PortAllocator:
    """`owner`: who hands the ports out (a mesh's state dir), as noted for the other
    allocators on this machine; a port it noted itself it may take again (`claim`),
    in this process or a later one. Without one, the allocator is its own owner."""

    def __init__(self, host: str = LOOPBACK, owner: str = "") -> None:
        self.host = host
        self.owner = owner or f"{os.getpid()}:{id(self)}:{time.monotonic_ns()}"
        self._taken: set[int] = set()

    def allocate(self) -> int:
        """A port that is free now and was not handed out before, below the ephemeral
        range when there is room (else one the kernel picks)."""
        low = ephemeral_range()[0]
        if low - LOWEST >= 1000:
            for _ in range(200):
                port = random.randrange(LOWEST, low)
                if port in self._taken or not is_free(port, self.host):
                    continue
                if _note(port, self.owner):
                    self._taken.add(port)
                    return port
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((self.host, 0))
                port = int(s.getsockname()[1])
            if port not in self._taken and _note(port, self.owner):
                self._taken.add(port)
                return port
        raise RuntimeError("no free port found")

    def claim(self, port: int) -> bool:
        """Take `port` if it is free and not handed out (by this allocator, or lately
        by another owner on this machine); False otherwise."""
        if port in self._taken or not is_free(port, self.host):
            return False
        if not _note(port, self.owner):
            return False
        self._taken.add(port)
        return True

    def reserve(self, port: int) -> None:
        """Take `port`, in use by a process this allocator's owner adopts."""
        self._taken.add(port)

    def prefer(self, port: int) -> int:
        """`port` if it is >= 1024 and free, else any free port (what a gateway wants)."""
        if port >= 1024 and self.claim(port):
            return port
        return self.allocate()

    def release(self, port: int) -> None:
        self._taken.discard(port)

    @property
    def taken(self) -> frozenset[int]:
        return frozenset(self._taken)
