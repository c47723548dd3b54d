"""Loopback ports for a mesh's processes: allocated, never hard-coded.

The kernel picks a free port (bind to 0); the allocator remembers what it handed out,
so two instances of one mesh never get the same port even before either binds it.
Another process may still take a port between allocation and use: the instance then
fails to start and the runtime restarts it with backoff.
"""

from __future__ import annotations

import errno
import socket

LOOPBACK = "127.0.0.1"


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
    def __init__(self, host: str = LOOPBACK) -> None:
        self.host = host
        self._taken: set[int] = set()

    def allocate(self) -> int:
        """A port that is free now and was not handed out before."""
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((self.host, 0))
                port = int(s.getsockname()[1])
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise RuntimeError("no free port found")

    def claim(self, port: int) -> bool:
        """Take `port` if it is free and not handed out; False otherwise."""
        if port in self._taken or not is_free(port, self.host):
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
