"""Three NATS JetStream servers on loopback with routes between them, for the
durability runs of the eventing tests and `bench/eventing.py --durability`."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

from amimesh.eventing import jetstream
from amimesh.runtime import nats as nats_server

USER, PASSWORD = "ami", "cluster-secret"
STREAM = "KNB_default_default"


def distinct_ports(n: int) -> list[int]:
    """`n` free loopback ports, all different (each held while the next is found)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


class Cluster:
    """Three JetStream servers on loopback, routes between them."""

    def __init__(self, root: Path) -> None:
        ports = distinct_ports(6)
        self.ports, routes = ports[:3], ports[3:]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}
        self._root = root
        for i in range(3):
            name = f"n{i}"
            others = ",".join(f"nats://127.0.0.1:{r}" for j, r in enumerate(routes) if j != i)
            argv = [
                nats_server.binary(),
                "-a", "127.0.0.1",
                "-p", str(self.ports[i]),
                "-n", name,
                "-js", "-sd", str(root / name),
                "--cluster_name", "ami",
                "--cluster", f"nats://127.0.0.1:{routes[i]}",
                "--routes", others,
                "--user", USER, "--pass", PASSWORD,
            ]  # fmt: skip
            self._argv[name] = argv
            self.start(name)

    def start(self, name: str) -> None:
        """Start node `name` (again: with its store, it rejoins the cluster)."""
        with open(self._root / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                self._argv[name], stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def servers(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def ask(self, what: Any) -> Any:
        async def run() -> Any:
            nc = await jetstream.connect(self.servers, USER, PASSWORD)
            try:
                return await what(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(run())

    def ready(self) -> bool:
        async def info(js: Any) -> Any:
            return await js.account_info()

        try:
            return bool(self.ask(info))
        except Exception:
            return False

    def stream(self) -> Any:
        async def info(js: Any) -> Any:
            return await js.stream_info(STREAM)

        return self.ask(info)

    def stop(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait(10)
