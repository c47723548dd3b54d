"""Helpers every benchmark script shares."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def free_port() -> int:
    """A loopback port that is free now (never hard-code one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
